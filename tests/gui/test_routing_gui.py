"""Issue 13 in the app: the body-part column and routing by body part (real bundled models:
body-part and the rsna-pneumonia detector, real widgets offscreen, small generated files)."""
from __future__ import annotations

import numpy as np
import pytest

from guikit import make_png

pytestmark = pytest.mark.usefixtures("bundled_models")
BODY_PART_COLUMN = 7


@pytest.fixture
def bundled_models():
    from radview.models import registry

    infos = {i.name: i for i in registry.list_models()}
    for name in ("body-part", "rsna-pneumonia"):
        if name not in infos or not infos[name].installed:
            pytest.skip(f"bundled model {name} is not installed")


def _image(seed: int, size=(96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[0], 0:size[1]]
    img = 1000 + 800 * np.sin(x / 7.0) * np.cos(y / 9.0) + rng.normal(0, 40, size)
    return np.clip(img, 0, 4095).astype(np.uint16)


@pytest.fixture
def mixed_folder(tmp_path):
    """A chest and a hand (DICOM headers say so), and a PNG whose part only the model can tell."""
    from dicom_factory import write_dicom

    root = tmp_path / "mixed"
    write_dicom(root / "chest.dcm", _image(1), body_part="CHEST", patient_id="P1", bits_stored=12)
    write_dicom(root / "hand.dcm", _image(2), body_part="HAND", patient_id="P2", bits_stored=12)
    make_png(root / "plain.png", 3, size=(64, 56))
    return root


def _study(w, name: str):
    return next(s for s in w.browser.model.studies if any(v.ref.path.endswith(name) for v in s.views))


def _column(w, study) -> str:
    model = w.browser.model
    model.flush()
    return model.data(model.index_of_node(model.by_study[study.key], BODY_PART_COLUMN))


def _routed(w, study) -> bool:
    ai = w.ai
    return study.key in ai.box_study or ("rsna-pneumonia", study.key) in ai.skips


def test_body_part_column_and_routing_skip_the_chest_detector_on_a_hand(make_window, open_and_wait,
                                                                       mixed_folder, qtbot):
    w = make_window(model=None)  # first launch: the defaults
    open_and_wait(w, mixed_folder)
    qtbot.waitUntil(lambda: w.ai.models_ready, timeout=60000)
    assert w.ai.box_model == "rsna-pneumonia" and w.ai.gate == "body-part"
    assert w.ai_panel.current_box_model() == "rsna-pneumonia"
    chest, hand, plain = (_study(w, n) for n in ("chest.dcm", "hand.dcm", "plain.png"))
    qtbot.waitUntil(lambda: all(_routed(w, s) and s.key in w.ai.body_parts for s in (chest, hand, plain)),
                    timeout=120000)
    # the column: the header first, the body-part model where there is none
    assert _column(w, chest) == "chest (header)"
    assert _column(w, hand) == "musculoskeletal (header)"
    text = _column(w, plain)
    part = text.split()[0]
    assert part in ("chest", "abdomen", "musculoskeletal", "other", "unknown")
    assert w.ai.body_parts[plain.key].source in ("model", "none")
    # routing: the chest detector ran on the chest, not on the hand
    assert chest.key in w.ai.box_study and ("rsna-pneumonia", chest.key) not in w.ai.skips
    assert hand.key not in w.ai.box_study
    reason = w.ai.skips[("rsna-pneumonia", hand.key)]
    assert "musculoskeletal" in reason and "chest" in reason
    assert not any(k.startswith(str(hand.views[0].ref.path)) for k in w.ai.box_preds)
    # the panel says so for the hand and offers to run it anyway
    w.show_study(hand)
    qtbot.waitUntil(lambda: w.ai_panel.run_anyway_button.isVisible(), timeout=5000)
    assert "not run" in w.ai_panel.route_label.text()
    assert "musculoskeletal" in w.ai_panel.body_part_label.text()
    assert any("not run" in line for line in w.viewer.active_canvas().annotations["top_right"])
    # the user asks: it runs on the hand, and its gate flags the answer
    w.ai_panel.run_anyway_button.click()
    qtbot.waitUntil(lambda: hand.key in w.ai.box_study, timeout=60000)
    assert not w.ai_panel.run_anyway_button.isVisible()
    assert "rsna-pneumonia" in w.executor.core.requested(hand.key)
    sp = w.ai.box_study[hand.key]
    assert sp.model == "rsna-pneumonia" and not sp.in_domain
    qtbot.waitUntil(lambda: "OUT OF DOMAIN" in w.viewer.active_canvas().banner, timeout=5000)
    assert "rsna-pneumonia" in w.viewer.active_canvas().banner


def test_viewer_only_runs_no_side_model(make_window, open_and_wait, mixed_folder, qtbot):
    """`--model ""` (the viewer only): neither the gate nor the detector is started."""
    w = make_window(model="")
    qtbot.waitUntil(lambda: w.ai.models_ready, timeout=60000)
    open_and_wait(w, mixed_folder)
    qtbot.waitUntil(lambda: not w.executor.busy, timeout=10000)
    assert w.ai.box_model == "" and w.ai.gate == ""
    assert not w.ai.box_study and not w.ai.body_parts and not w.ai.preds


@pytest.fixture
def tiny_chest(radview_home) -> str:
    """A chest classifier (Lite0, random weights) gated by body-part: the heatmap model."""
    import json

    import torch

    from radview import paths
    from radview.models import arch
    from radview.models.manifest import sha256_file

    name = "tiny-chest-gui"
    folder = paths.user_models_dir() / name
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(arch.build("efficientnet_lite0", 1, "binary").state_dict(), folder / "weights.pt")
    (folder / "manifest.json").write_text(json.dumps({
        "format": 1, "name": name, "version": "1", "task": "binary", "classes": ["normal", "abnormal"],
        "arch": "efficientnet_lite0", "input": {"size": [64, 64], "channels": 3},
        "weights": {"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")}, "threshold": 0.5,
        "domain": {"modalities": ["CR", "DX"], "gate_model": "body-part", "gate_classes": ["chest"]}}),
        encoding="utf-8")
    return name


def test_the_heatmap_model_is_routed_too_and_runs_on_a_hand_only_when_asked(make_window, open_and_wait,
                                                                              mixed_folder, tiny_chest, qtbot):
    w = make_window(model=tiny_chest)
    open_and_wait(w, mixed_folder)
    qtbot.waitUntil(lambda: w.ai.model_info is not None, timeout=60000)
    chest, hand, plain = (_study(w, n) for n in ("chest.dcm", "hand.dcm", "plain.png"))
    ai = w.ai

    def settled(s):
        return s.key in ai.study_preds or (tiny_chest, s.key) in ai.skips

    qtbot.waitUntil(lambda: all(settled(s) for s in (chest, hand, plain)), timeout=120000)
    assert chest.key in ai.study_preds and (tiny_chest, chest.key) not in ai.skips
    assert hand.key not in ai.study_preds
    assert not any(v.ref.key in ai.preds for v in hand.views)  # never run on the hand's image
    reason = ai.skips[(tiny_chest, hand.key)]
    assert "musculoskeletal" in reason and tiny_chest in reason and "chest" in reason
    # the browser: the hand's Body part says the heatmap model did not run on it
    assert _column(w, hand) == "musculoskeletal (header) · not run"
    assert _column(w, chest) == "chest (header)"
    # the panel and the canvas say so for the hand, and offer to run it anyway
    w.show_study(hand)
    qtbot.waitUntil(lambda: w.ai_panel.run_anyway_button.isVisible(), timeout=5000)
    assert f"Heatmap · {tiny_chest}: not run" in w.ai_panel.route_label.text()
    lines = w.viewer.active_canvas().annotations["top_right"]
    assert f"{tiny_chest}: not run (musculoskeletal)" in lines
    w.ai_panel.run_anyway_button.click()
    qtbot.waitUntil(lambda: hand.key in ai.study_preds, timeout=60000)
    assert (tiny_chest, hand.key) not in ai.skips
    assert tiny_chest in w.executor.core.requested(hand.key)
    sp = ai.study_preds[hand.key]
    assert sp.model == tiny_chest and not sp.in_domain
    qtbot.waitUntil(lambda: "OUT OF DOMAIN" in w.viewer.active_canvas().banner, timeout=5000)
    assert _column(w, hand) == "musculoskeletal (header)"
    # the button goes when no model of the study is marked skipped: the detector, asked for too, as
    # well (its first load imports torchvision: over 10 s on a loaded 2-core machine): a hang guard
    qtbot.waitUntil(lambda: not w.ai_panel.run_anyway_button.isVisible(), timeout=60000)


def test_run_on_this_study_also_covers_a_skip_that_arrives_after_the_click(make_window, open_and_wait,
                                                                           mixed_folder, tiny_chest, qtbot):
    """"Run on this study" asks for every model routing skipped on the study. A model whose skip
    was still on its way when the user clicked (the detector's routing of the study not done yet)
    is run when that skip arrives, instead of the button coming back for it."""
    from radview.models.executor import Skipped

    w = make_window(model=tiny_chest)
    open_and_wait(w, mixed_folder)
    qtbot.waitUntil(lambda: w.ai.model_info is not None, timeout=60000)
    ai = w.ai
    hand = _study(w, "hand.dcm")
    qtbot.waitUntil(lambda: (tiny_chest, hand.key) in ai.skips and _routed(w, hand), timeout=120000)
    ai.skips.pop(("rsna-pneumonia", hand.key), None)  # as if the detector's skip had not come yet
    w.show_study(hand)
    qtbot.waitUntil(lambda: w.ai_panel.run_anyway_button.isVisible(), timeout=5000)
    w.ai_panel.run_anyway_button.click()
    assert "rsna-pneumonia" not in w.executor.core.requested(hand.key)  # not asked: its skip was not known
    # the detector's skip of the hand arrives now, through the executor's event sink (the Qt adapter)
    w.executor._sink(Skipped(ai.gen, "rsna-pneumonia", hand.key, "study is musculoskeletal; rsna-pneumonia is for chest"))
    qtbot.waitUntil(lambda: "rsna-pneumonia" in w.executor.core.requested(hand.key), timeout=5000)
    assert ("rsna-pneumonia", hand.key) not in ai.skips
    qtbot.waitUntil(lambda: hand.key in ai.study_preds and hand.key in ai.box_study, timeout=120000)
    qtbot.waitUntil(lambda: not w.ai_panel.run_anyway_button.isVisible(), timeout=60000)
    # and a new folder forgets what was asked
    open_and_wait(w, mixed_folder)
    assert not ai.asked
