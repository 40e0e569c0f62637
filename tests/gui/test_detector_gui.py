"""Issue 12 in the app: the bundled rsna-pneumonia detector runs by default beside the heatmap
model on a chest study; its boxes are drawn with their score, the score slider filters them, and
accepting / rejecting one records a correction naming the detector (real models, real widgets,
real RSNA challenge DICOMs from ../shared)."""
from __future__ import annotations

import pytest

POSITIVE = "00436515"  # an RSNA challenge DICOM with a pneumonia box (tests/test_models_detector.py)


@pytest.fixture
def rsna_folder(shared_data, tmp_path):
    from radview.models import registry

    info = {i.name: i for i in registry.list_models()}.get("rsna-pneumonia")
    if info is None or not info.installed:
        pytest.skip("bundled rsna-pneumonia weights are not installed")
    rsna = shared_data / "rsna-pneumonia"
    src = next((rsna / "stage_2_train_images").glob(f"{POSITIVE}*.dcm"))
    root = tmp_path / "rsna"
    (root / "stage_2_train_images").mkdir(parents=True)
    (root / "stage_2_train_images" / src.name).symlink_to(src)
    # the challenge layout as the samples have it: the image and its rows of the official CSV
    lines = (rsna / "stage_2_train_labels.csv").read_text(encoding="utf-8").splitlines()
    rows = [lines[0]] + [ln for ln in lines[1:] if ln.startswith(src.stem + ",")]
    assert len(rows) > 1
    (root / "stage_2_train_labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _predicted(canvas):
    return [it for it in canvas.box_items if it.predicted]


def test_detector_boxes_on_a_chest_study_by_default(make_window, open_and_wait, rsna_folder, qtbot):
    w = make_window(model=None)  # first launch, nothing configured
    open_and_wait(w, rsna_folder)
    qtbot.waitUntil(lambda: w.viewer.study is not None, timeout=10000)
    study = w.viewer.study
    qtbot.waitUntil(lambda: study.key in w.ai.box_study, timeout=120000)
    ai, canvas = w.ai, w.viewer.active_canvas()
    # both models' answers: the heatmap model's call and the detector's boxes
    assert ai.box_model == "rsna-pneumonia" and ai.model_name and ai.model_name != "rsna-pneumonia"
    qtbot.waitUntil(lambda: study.key in ai.study_preds, timeout=60000)
    assert ai.study_preds[study.key].model == ai.model_name
    sp = ai.box_study[study.key]
    assert sp.model == "rsna-pneumonia" and sp.in_domain
    assert ai.body_parts[study.key].part == "chest"
    pred = ai.box_preds[study.views[0].ref.key]
    assert pred.boxes and all(b.score is not None for b in pred.boxes)
    items = _predicted(canvas)
    assert len(items) == len(pred.boxes)
    # drawn with their score; the slider filters them
    best = max(b.score for b in pred.boxes)
    threshold = next(m for m in ai.models if m.name == "rsna-pneumonia").threshold
    assert ai.threshold == pytest.approx(threshold) and w.ai_panel.threshold.value() == pytest.approx(threshold)
    # the card measured this fixture's image probability above the manifest threshold
    assert best >= threshold, f"the detector missed the positive fixture (best box {best:.2f})"
    assert any(it.isVisible() for it in items)
    assert all(it.isVisible() == (it.box.score >= ai.threshold) for it in items)
    assert any(f"{it.box.score:.2f}" in it.box.label + f" {it.box.score:.2f}" for it in items)
    w.ai_panel.threshold.setValue(min(0.99, best + 0.005))
    qtbot.waitUntil(lambda: not any(it.isVisible() for it in _predicted(canvas)), timeout=3000)
    w.ai_panel.threshold.setValue(0.3)
    qtbot.waitUntil(lambda: any(it.isVisible() for it in _predicted(canvas)), timeout=3000)
    assert any("rsna-pneumonia" in line and "box" in line for line in canvas.annotations["top_right"])
    # `radview gui --screenshot` waits for the boxes model as well as the heatmap model
    from radview.gui.app import boxes_settled

    assert w.is_settled() and boxes_settled(w)
    sp_box = ai.box_study.pop(study.key)  # as before the detector's answer came in
    try:
        assert not boxes_settled(w)
        ai.skips[("rsna-pneumonia", study.key)] = "outside its domain"  # a routed skip also ends the wait
        assert boxes_settled(w)
    finally:
        ai.skips.pop(("rsna-pneumonia", study.key), None)
        ai.box_study[study.key] = sp_box
    assert "rsna-pneumonia" in w.ai_panel.route_label.text()
    # accept the best box: a correction recorded with the detector as the model
    item = max(_predicted(canvas), key=lambda it: it.box.score)
    item.setSelected(True)
    w.box_key(accept=True)
    key = study.views[0].ref.key
    hist = w.store.history(key, level="image")
    assert hist, "accepting a predicted box recorded nothing"
    last = hist[-1]
    assert last.model == "rsna-pneumonia" and last.model_output == (item.box,)
    assert w.store.label(key).boxes[-1].score is None


@pytest.fixture
def plain_dicom_folder(shared_data, tmp_path):
    """A plain DICOM folder (no RSNA CSV beside it): its studies are labelled at study level."""
    from radview.models import registry

    info = {i.name: i for i in registry.list_models()}.get("rsna-pneumonia")
    if info is None or not info.installed:
        pytest.skip("bundled rsna-pneumonia weights are not installed")
    src = next((shared_data / "rsna-pneumonia" / "stage_2_train_images").glob(f"{POSITIVE}*.dcm"))
    root = tmp_path / "plain"
    root.mkdir()
    (root / src.name).symlink_to(src)
    return root


def test_predicted_box_edits_in_a_plain_dicom_folder(make_window, open_and_wait, plain_dicom_folder, qtbot):
    """Accept, reject and edit of a predicted box record image-level box corrections even where
    the item on the label panel is the DICOM study (no label space of the folder's own)."""
    from dataclasses import replace

    w = make_window(model=None)
    open_and_wait(w, plain_dicom_folder)
    qtbot.waitUntil(lambda: w.viewer.study is not None, timeout=10000)
    study = w.viewer.study
    qtbot.waitUntil(lambda: study.key in w.ai.box_study, timeout=120000)
    panel, canvas = w.extra_panels["labelpanel"], w.viewer.active_canvas()
    assert panel.level == "study" and panel.key == study.key  # the case of the bug
    key = study.views[0].ref.key
    w.ai_panel.threshold.setValue(0.05)
    qtbot.waitUntil(lambda: len([it for it in _predicted(canvas) if it.isVisible()]) >= 1, timeout=3000)
    items = sorted(_predicted(canvas), key=lambda it: it.box.score, reverse=True)
    assert w.store.history(key, level="image") == []

    # accept the best box
    items[0].setSelected(True)
    w.box_key(accept=True)
    hist = w.store.history(key, level="image")
    assert len(hist) == 1, "accepting a predicted box recorded nothing"
    ev = hist[-1]
    assert ev.level == "image" and ev.key == key
    assert ev.model == "rsna-pneumonia" and ev.model_output == (items[0].box,)
    assert ev.space == "rsna-pneumonia"
    assert w.store.label(key).boxes == (replace(items[0].box, score=None),)
    assert w.store.history(study.key, level="study") == []  # nothing at the study level

    # reject a predicted box: recorded (the rejected box as the model output), true boxes unchanged
    for it in canvas.scene().selectedItems():
        it.setSelected(False)
    target = next((it for it in _predicted(canvas) if it.box != items[0].box), None) or _predicted(canvas)[0]
    target.setSelected(True)
    w.box_key(accept=False)
    hist = w.store.history(key, level="image")
    assert len(hist) == 2 and hist[-1].level == "image" and hist[-1].model_output == (target.box,)
    assert w.store.label(key).boxes == (replace(items[0].box, score=None),)

    # edit (move) a predicted box on the canvas: it becomes a label box where it was put
    old = next(it for it in _predicted(canvas)).box
    moved = replace(old, x=old.x + 10.0, y=old.y + 5.0)
    canvas.boxChanged.emit(replace(old, label=f"predicted:{old.label}"), moved)
    hist = w.store.history(key, level="image")
    assert len(hist) == 3 and hist[-1].level == "image"
    assert w.store.label(key).boxes[-1] == replace(moved, score=None)
