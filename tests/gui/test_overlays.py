"""Overlay layers on the canvas: predicted and label boxes with the score threshold, box
editing, the out-of-domain banner from a real model's gate, and the CLI routing."""
from __future__ import annotations

import shutil

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from radview.types import Box


def _canvas_with_image(qtbot, testdata):
    from radview.gui.canvas import ImageCanvas
    from radview.io import load_frame

    c = ImageCanvas()
    c.resize(400, 400)
    qtbot.addWidget(c)
    c.show()
    qtbot.waitExposed(c)
    c.set_frame(load_frame(testdata("CT_small.dcm")))
    return c


def test_box_layer_threshold_and_editing(qtbot, testdata):
    c = _canvas_with_image(qtbot, testdata)
    preds = (Box(10, 10, 30, 20, "opacity", 0.9), Box(60, 60, 20, 20, "opacity", 0.3))
    truth = (Box(12, 12, 28, 18, "opacity"),)
    c.set_boxes(preds, truth)
    assert len(c.box_items) == 3
    c.set_score_threshold(0.5)
    visible = c.visible_boxes()
    assert Box(60, 60, 20, 20, "opacity", 0.3) not in visible and len(visible) == 2  # truth always shown
    c.set_score_threshold(0.2)
    assert len(c.visible_boxes()) == 3
    c.set_show_boxes(False)
    assert c.visible_boxes() == []
    c.set_show_boxes(True)
    # drag the high-score box by 10 image pixels: boxEdited carries it in image coordinates
    item = next(it for it in c.box_items if it.box.score == 0.9)
    vp = c.viewport()
    start = c.mapFromScene(c.image_item.mapToScene(QPointF(25, 20)))
    end = c.mapFromScene(c.image_item.mapToScene(QPointF(35, 20)))
    with qtbot.waitSignal(c.boxEdited, timeout=2000) as blocker:
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        QTest.mouseMove(vp, end)
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    index, box = blocker.args
    assert index == 0 and abs(box.x - 20) <= 1.5 and box.width == 30 and box.score == 0.9
    assert item.box == box


def test_heatmap_layer_matches_blend_cam(qtbot, testdata):
    """The heatmap layer at opacity a over the image gives overlay.blend_cam(image, cam, a)."""
    from PySide6.QtGui import QImage, QPainter

    from radview.gui.ai_controller import heat_rgb
    from radview.gui.canvas import gray_qimage
    from radview.models.overlay import blend_cam, colormap_lut

    c = _canvas_with_image(qtbot, testdata)
    h, w = c.frame.shape
    cam = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    base = c.last_display
    img = gray_qimage(base).convertToFormat(QImage.Format.Format_RGB888)
    p = QPainter(img)
    p.setOpacity(0.4)
    p.drawImage(0, 0, gray_qimage(heat_rgb(cam, colormap_lut("jet"))))
    p.end()
    ptr = img.constBits()
    got = np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3)
    want = blend_cam(base, cam, alpha=0.4, colormap="jet")
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2


def test_out_of_domain_banner(qtbot, make_window, open_and_wait, tiny_model, testdata, tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    shutil.copy(testdata("CT_small.dcm"), folder / "ct.dcm")
    w = make_window(model=tiny_model)
    with qtbot.waitSignal(w.ai.studyReady, timeout=60000):
        open_and_wait(w, folder)
    sp = w.ai.study_preds[w.viewer.study.key]
    assert not sp.in_domain and "CT" in sp.domain_reason
    canvas = w.viewer.active_canvas()
    qtbot.waitUntil(lambda: canvas.banner.startswith("OUT OF DOMAIN"), timeout=10000)
    assert "Modality CT" in canvas.banner
    assert w.ai_panel.domain_label.isVisibleTo(w.ai_panel)
    node = w.browser.model.by_study[sp.study_key]
    assert w.browser.model.data(w.browser.model.index_of_node(node, 5)) == "OUT"


def test_radview_with_a_path_routes_to_gui(tmp_path):
    from radview.cli import main

    assert main([str(tmp_path / "missing")]) == 2  # `radview PATH` is `radview gui PATH`


def test_box_edits_on_the_canvas_become_undoable_corrections(qtbot, make_window, open_and_wait, radiographs,
                                                             tmp_path):
    from tests.fixtures.radiographs import make_rsna_folder

    w = make_window(start=False)
    label = w.extra_panels.get("labelpanel")
    if label is None or label.store is None:
        import pytest

        pytest.skip("the label panel (issue 5) is not available")
    open_and_wait(w, make_rsna_folder(tmp_path / "rsna-pneumonia", radiographs))
    study = next(s for s in w.browser.model.studies if s.views[0].label is not None and s.views[0].label.boxes)
    ref = study.views[0].ref
    w.show_study(study)
    canvas = w.viewer.active_canvas()
    qtbot.waitUntil(lambda: canvas.frame is not None and len(canvas.box_items) >= 2, timeout=20000)
    qtbot.waitUntil(lambda: label.key == ref.key, timeout=5000)
    item = canvas.box_items[0]
    old = item.box
    vp = canvas.viewport()
    inside = QPointF(old.x + old.width / 2, old.y + old.height / 2)
    start = canvas.mapFromScene(canvas.image_item.mapToScene(inside))
    end = canvas.mapFromScene(canvas.image_item.mapToScene(inside + QPointF(40, 0)))
    with qtbot.waitSignal(label.labelled, timeout=5000):
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        QTest.mouseMove(vp, end)
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    boxes = label.store.state(ref.key, "image").label.boxes
    assert old not in boxes and any(abs(b.x - old.x - 40) < 4 and b.y == old.y for b in boxes)
    label.undo_stack.undo()
    assert old in label.store.state(ref.key, "image").label.boxes
