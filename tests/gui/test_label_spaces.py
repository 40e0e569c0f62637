"""Issue 10 in the real window: a mixed folder (MURA-style + class folder + RSNA DICOMs), real
store file, real small models. Label keys follow each study's label space; review with a
chest/abdomen model lists only its space's studies; a correction updates the review metrics,
the browser and the viewer without reopening anything."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from guikit import make_png as _png

REGION = "tiny-region"


@pytest.fixture(scope="session")
def tiny_region_folder(tmp_path_factory) -> Path:
    """A real abd/chest model in the Open-i space (EfficientNet-Lite0, random weights)."""
    import torch

    from radview.models import arch
    from radview.models.manifest import sha256_file

    folder = tmp_path_factory.mktemp("models") / REGION
    folder.mkdir()
    torch.manual_seed(1)
    module = arch.build("efficientnet_lite0", 2, "multiclass")
    torch.save(module.state_dict(), folder / "weights.pt")
    manifest = {
        "format": 1, "name": REGION, "version": "1", "task": "multiclass",
        "classes": ["abd", "chest"], "arch": "efficientnet_lite0",
        "input": {"size": [64, 64], "channels": 3},
        "weights": {"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")},
        "description": "random weights, for GUI tests", "label_space": "openi-chest-abdomen",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture
def tiny_region(tiny_region_folder, radview_home) -> str:
    from radview import paths

    shutil.copytree(tiny_region_folder, paths.user_models_dir() / REGION)
    return REGION


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """MURA-style studies, an Open-i style class folder (val/abd, val/chest) and RSNA DICOMs
    beside their challenge CSV."""
    from dicom_factory import write_dicom

    root = tmp_path / "mixed"
    mura = root / "MURA-v1.1" / "valid" / "XR_WRIST"
    for j, (name, n) in enumerate((("study1_positive", 2), ("study1_negative", 1))):
        for v in range(n):
            _png(mura / f"patient0000{j}" / name / f"image{v + 1}.png", 40 + 3 * j + v, size=(56, 44))
    for i in range(3):
        _png(root / "openi" / "val" / "chest" / f"c{i}.png", i)
    for i in range(3):
        _png(root / "openi" / "val" / "abd" / f"a{i}.png", 10 + i)
    rsna = root / "rsna"
    rows = ["patientId,x,y,width,height,Target"]
    rng = np.random.default_rng(3)
    for i, target in enumerate((1, 0)):
        pid = f"rsna-{i:04d}"
        write_dicom(rsna / f"{pid}.dcm", rng.integers(0, 4000, (64, 64)).astype(np.uint16), bits_stored=12,
                    patient_id=pid, instance=1)
        rows.append(f"{pid},10,12,20,18,1" if target else f"{pid},,,,,0")
    (rsna / "stage_2_train_labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _by_space(studies):
    from radview.spaces import space_of

    out: dict[str, list] = {}
    for st in studies:
        sp = space_of(st) or next((space_of(v.label) for v in st.views if v.label is not None), None)
        out.setdefault(sp.name if sp else "", []).append(st)
    return out


def test_label_keys_follow_each_studys_space_whatever_the_model(qtbot, make_window, open_and_wait,
                                                                  mixed_folder, tiny_region):
    from radview.spaces import label_keys, space_of

    w = make_window(model=tiny_region)
    result = open_and_wait(w, mixed_folder)
    groups = _by_space(result.studies)
    assert {"mura", "rsna-pneumonia"} <= set(groups), groups.keys()
    folder_spaces = [n for n in groups if n.startswith("folder:")]
    assert folder_spaces, f"no class-folder space among {list(groups)}"
    panel = w.extra_panels["labelpanel"]
    qtbot.waitUntil(lambda: w.ai.model_info is not None, timeout=60000)  # the region model is loaded
    seen = {}
    for name, studies in groups.items():
        if not name:
            continue
        w.show_study(studies[0])
        want = {k.key: k.value for k in label_keys(space_of(name))}
        assert panel.keys == want, f"{name}: {panel.keys} != {want}"
        assert set(panel.class_buttons) == set(space_of(name).classes)
        assert panel.box_tools.isVisibleTo(panel) == space_of(name).boxes
        seen[name] = dict(panel.keys)
    assert seen["mura"] == {"N": "normal", "A": "abnormal"}  # never the model's abd/chest
    assert seen["rsna-pneumonia"] == {"N": "normal", "P": "pneumonia"}
    assert seen[folder_spaces[0]] == {"1": "abd", "2": "chest"}


def test_label_keys_reach_the_action_from_the_study_list(qtbot, make_window, open_and_wait, mixed_folder):
    from radview.store import open_store

    w = make_window(start=False)
    result = open_and_wait(w, mixed_folder)
    mura = _by_space(result.studies)["mura"]
    positive = next(s for s in mura if s.label.value == "abnormal")
    w.show_study(positive)
    with qtbot.waitActive(w):
        w.activateWindow()
    w.browser.tree.setFocus()  # the study list has the focus (its type-ahead must not eat N)
    panel = w.extra_panels["labelpanel"]
    panel.advance.setChecked(False)
    with qtbot.waitSignal(panel.labelled, timeout=5000):
        qtbot.keyClick(w.browser.tree, Qt.Key.Key_N)
    assert open_store().label(positive.key, "study").value == "normal"
    assert w.viewer.study.key == positive.key  # the selection did not jump
    # the ONE store event already updated the browser's label column and the viewer overlay
    node = w.browser.model.by_study[positive.key]
    assert w.browser.model.data(w.browser.model.index_of_node(node, 2)) == "normal"
    assert w.browser.model.data(w.browser.model.index_of_node(node, 6)).startswith("✎")
    assert w.viewer.active_canvas().annotations["bottom_right"] == ["label: normal"]
    # undo (Ctrl+Z) comes back everywhere, too
    qtbot.keyClick(w.browser.tree, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert open_store().label(positive.key, "study").value == "abnormal"
    assert w.browser.model.data(w.browser.model.index_of_node(node, 2)) == "abnormal"
    assert w.viewer.active_canvas().annotations["bottom_right"] == ["label: abnormal"]
    assert "No label store" not in panel.message.text()
    # an RSNA film (image-level labels): P from the study list, the study's row and overlay follow
    rsna = next(s for s in _by_space(result.studies)["rsna-pneumonia"]
                if (s.views[0].label or s.label).value == "normal")
    w.show_study(rsna)
    w.browser.tree.setFocus()
    with qtbot.waitSignal(panel.labelled, timeout=5000) as got:
        qtbot.keyClick(w.browser.tree, Qt.Key.Key_P)  # P is pan mode elsewhere: the label key wins here
    assert got.args[0].new_value == "pneumonia" and got.args[0].level == "image"
    assert not w.actions["pan_mode"].isChecked()
    snode = w.browser.model.by_study[rsna.key]
    assert w.browser.model.data(w.browser.model.index_of_node(snode, 2)) == "pneumonia"
    assert w.viewer.active_canvas().annotations["bottom_right"] == ["label: pneumonia"]
    w.show_study(positive)  # back on MURA: P is pan mode again
    assert w.actions["pan_mode"].shortcut().toString() == "P"


def test_reason_resets_after_each_correction_unless_pinned(qtbot, make_window, open_and_wait, mixed_folder):
    w = make_window(start=False)
    result = open_and_wait(w, mixed_folder)
    panel = w.extra_panels["labelpanel"]
    panel.advance.setChecked(False)
    mura = _by_space(result.studies)["mura"]
    w.show_study(mura[0])
    panel.reason.setCurrentIndex(panel.reason.findData("ambiguous"))
    with qtbot.waitSignal(panel.labelled) as got:
        panel.apply_label("normal")
    assert got.args[0].reason == "ambiguous" and panel.reason.currentData() == "wrong_label"
    panel.reason.setCurrentIndex(panel.reason.findData("bad_image"))
    panel.pin_reason.setChecked(True)
    panel.apply_label("abnormal")
    assert panel.reason.currentData() == "bad_image"
    with qtbot.waitSignal(panel.labelled) as got:
        panel.apply_label("normal")
    assert got.args[0].reason == "bad_image"


def test_review_joins_only_the_models_space_and_follows_a_correction(qtbot, make_window, open_and_wait,
                                                                     mixed_folder, tiny_region):
    w = make_window(model=tiny_region)
    review = w.extra_panels["reviewpanel"]
    result = open_and_wait(w, mixed_folder)
    groups = _by_space(result.studies)
    folder_keys = {s.key for n, sts in groups.items() if n.startswith("folder:") for s in sts}
    qtbot.waitUntil(lambda: review.summary() is not None, timeout=120000)
    data = review.data()
    assert set(data.keys) == folder_keys  # no MURA, no RSNA study is compared with abd/chest
    skipped = dict(data.skipped)
    for name in ("mura", "rsna-pneumonia"):
        for st in groups[name]:
            assert st.key in skipped, f"{st.key} ({name}) neither reviewed nor listed as skipped"
    before = review.summary()
    # correct one class-folder study: the review's truths and metrics follow, nothing reopened
    target = next(s for s in groups[next(n for n in groups if n.startswith("folder:"))])
    w.show_study(target)
    panel = w.extra_panels["labelpanel"]
    panel.advance.setChecked(False)
    old = target.views[0].label.value if target.views[0].label else target.label.value
    new = "abd" if old == "chest" else "chest"
    with qtbot.waitSignal(review.summaryChanged, timeout=30000) as got:
        panel.apply_label(new)
    after = got.args[0]
    now = review.data()
    i = now.keys.index(target.key)
    assert now.classes[int(now.y_true[i])] == new and bool(now.corrected[i])
    assert after is not before and after.n_studies == before.n_studies == len(folder_keys)
    assert not np.array_equal(after.confusion_matrix, before.confusion_matrix)
    # the browser and the viewer show it too
    node = w.browser.model.by_study[target.key]
    assert w.browser.model.data(w.browser.model.index_of_node(node, 2)) == new


def test_likely_label_errors_tab_runs_on_the_model_thread(qtbot, make_window, open_and_wait,
                                                           mixed_folder, tiny_region, tmp_path):
    """The review panel mounts H-clean's LabelIssuesView; its button runs the out-of-fold check
    with the selected model's features on the executor and shows the report (or why not)."""
    from guikit import make_png

    for i in range(12):  # enough studies per class for the folds
        make_png(mixed_folder / "openi" / "val" / ("chest" if i % 2 else "abd") / f"x{i}.png", 100 + i)
    w = make_window(model=tiny_region)
    review = w.extra_panels["reviewpanel"]
    open_and_wait(w, mixed_folder)
    qtbot.waitUntil(lambda: review.summary() is not None, timeout=120000)
    review.issues_button.click()
    assert not review.issues_button.isEnabled() and "computing" in review.issues_status.text()
    qtbot.waitUntil(lambda: review.issues_button.isEnabled(), timeout=120000)
    text = review.issues_status.text()
    assert "studies flagged" in text, text
    assert review.label_issues.row_count() >= 0
