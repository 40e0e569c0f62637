"""The main window with real widgets offscreen: opening, navigation, window/level, zoom, pan,
errors panel, grid, tags, shortcuts. (No model here: see test_inference.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest


def _wait_frame(qtbot, window, timeout=10000):
    qtbot.waitUntil(lambda: window.viewer.active_canvas().frame is not None, timeout=timeout)
    return window.viewer.active_canvas()


def test_opens_the_sample_folder(qtbot, make_window, open_and_wait):
    from radview.io.samples import sample_folder

    w = make_window()
    result = open_and_wait(w, sample_folder(), timeout=60000)
    assert result.studies, "the embedded samples hold at least the two NEMA radiographs"
    assert len(w.browser.model.by_study) == len(result.studies)
    canvas = _wait_frame(qtbot, w, timeout=30000)
    assert w.viewer.study is not None and w.viewer.study.key == w.browser.neighbour(None, 1).key
    assert canvas.last_display is not None and canvas.last_display.dtype == np.uint8
    # the viewer shows exactly what display_image gives (the pixels `radview render` writes), at
    # the level of the zoom (a fitted 1760 px NEMA film is built from 2x2 means: test below)
    from dataclasses import replace

    from radview.gui.image_item import reduced_stored
    from radview.io.display import display_image

    f, k = canvas.frame, canvas.display_level
    assert np.array_equal(canvas.last_display, display_image(replace(f, stored=reduced_stored(f.stored, k))))


def test_keyboard_navigation_through_images_and_studies(qtbot, make_window, open_and_wait, mura_folder):
    w = make_window()
    open_and_wait(w, mura_folder)
    _wait_frame(qtbot, w)
    w.activateWindow()
    first = w.viewer.study
    assert len(first.views) in (2, 3)
    seen = [(first.key, w.viewer.current)]
    for _ in range(len(first.views)):  # Right walks the views, then crosses to the next study
        QTest.keyClick(w, Qt.Key.Key_Right)
        seen.append((w.viewer.study.key, w.viewer.current))
    assert seen[1] == (first.key, 1)
    assert seen[-1][0] != first.key and seen[-1][1] == 0
    QTest.keyClick(w, Qt.Key.Key_Up)  # previous study
    assert w.viewer.study.key == first.key
    QTest.keyClick(w, Qt.Key.Key_Down)
    assert w.viewer.study.key != first.key
    # the browser follows
    node = w.browser.proxy.mapToSource(w.browser.tree.currentIndex()).internalPointer()
    assert node.study.key == w.viewer.study.key


def test_right_drag_changes_window_and_rendered_pixels(qtbot, make_window, open_and_wait, image_folder):
    w = make_window()
    open_and_wait(w, image_folder)
    c = _wait_frame(qtbot, w)
    before = c.last_display.copy()
    win0 = c.current_window()
    vp = c.viewport()
    start = vp.rect().center()
    QTest.mousePress(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 6):
        QTest.mouseMove(vp, start + QPoint(-12 * step, 9 * step))
    QTest.mouseRelease(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, start + QPoint(-60, 45))
    win1 = c.current_window()
    assert win1.width < win0.width and win1.center < win0.center
    assert not np.array_equal(before, c.last_display)
    assert "W " in w.wl_label.text() and f"{win1.width:.0f}" in w.wl_label.text()
    from radview.io.display import display_image

    assert np.array_equal(c.last_display, display_image(c.frame, window=win1, invert=c.frame.invert))


def test_wheel_zooms_around_cursor_and_middle_drag_pans(qtbot, make_window, open_and_wait, image_folder):
    w = make_window()
    open_and_wait(w, image_folder)
    c = _wait_frame(qtbot, w)
    z0 = c.zoom()
    vp = c.viewport()
    pos = QPointF(vp.width() * 0.3, vp.height() * 0.4)
    under_before = c.mapToScene(pos.toPoint())
    ev = QWheelEvent(pos, c.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    c.wheelEvent(ev)
    assert c.zoom() > z0 * 1.3
    under_after = c.mapToScene(pos.toPoint())
    assert abs(under_after.x() - under_before.x()) < 2 and abs(under_after.y() - under_before.y()) < 2
    center0 = c.mapToScene(vp.rect().center())
    start = vp.rect().center()
    QTest.mousePress(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, start + QPoint(40, 25))
    QTest.mouseRelease(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start + QPoint(40, 25))
    center1 = c.mapToScene(vp.rect().center())
    z = c.zoom()  # the image follows the hand: the view centre moves by -drag / zoom
    assert (center0.x() - center1.x()) * z == pytest.approx(40, abs=2)
    assert (center0.y() - center1.y()) * z == pytest.approx(25, abs=2)
    c.fit()
    assert c.zoom() == pytest.approx(z0, rel=1e-3)
    c.one_to_one()
    assert c.zoom() == pytest.approx(1.0)


def test_invert_rotate_flip_and_pixel_readout(qtbot, make_window, open_and_wait, image_folder):
    w = make_window()
    open_and_wait(w, image_folder)
    c = _wait_frame(qtbot, w)
    before = c.last_display.copy()
    w.actions["invert"].trigger()
    assert np.array_equal(c.last_display.astype(int), 255 - before.astype(int))
    w.actions["rotate_cw"].trigger()
    assert c.rotation == 90
    r = c.image_item.sceneBoundingRect()
    h, wd = c.frame.shape
    assert (round(r.width()), round(r.height())) == (h, wd)  # rotated: width and height swap
    w.actions["flip_h"].trigger()
    assert c.flip_h
    w.actions["reset_view"].trigger()
    assert c.rotation == 0 and not c.flip_h and not c.user_invert
    with qtbot.waitSignal(c.pixelInfo, timeout=2000) as blocker:
        QTest.mouseMove(c.viewport(), c.mapFromScene(c.image_item.mapToScene(QPointF(5.5, 7.5))))
    text = blocker.args[0]
    assert text.startswith("x 5  y 7") and f"stored {int(c.frame.stored[7, 5])}" in text


def test_bad_files_listed_in_errors_panel_while_the_rest_loads(qtbot, make_window, open_and_wait, image_folder):
    (image_folder / "val" / "chest" / "broken.png").write_bytes(b"this is not a png")
    (image_folder / "empty.dcm").write_bytes(b"")
    w = make_window()
    result = open_and_wait(w, image_folder)
    assert len(result.studies) == 5
    bad = {p.rsplit("/", 1)[-1]: reason for p, reason in w.errors.errors()}
    assert "broken.png" in bad and "empty.dcm" in bad
    assert all(reason for reason in bad.values())
    assert w.docks["errors"].isVisibleTo(w) and w.errors_button.isVisibleTo(w)
    _wait_frame(qtbot, w)  # the good images still show


def test_grid_shows_all_views_or_one(qtbot, make_window, open_and_wait, mura_folder):
    w = make_window()
    open_and_wait(w, mura_folder)
    study = next(s for s in w.browser.model.studies if len(s.views) == 3)
    w.show_study(study)
    qtbot.waitUntil(lambda: all(c.frame is not None for _, c in w.viewer.visible_canvases()), timeout=10000)
    assert [vi for vi, _ in w.viewer.visible_canvases()] == [0, 1, 2]
    assert sum(c.isVisible() for c in w.viewer.canvases) == 3
    w.actions["grid_layout"].setChecked(False)
    assert sum(c.isVisible() for c in w.viewer.canvases) == 1
    w.step_image(1)
    assert w.viewer.current == 1 and w.viewer.visible_canvases()[0][0] == 1


def test_browser_filter_and_sort(qtbot, make_window, open_and_wait, image_folder):
    w = make_window()
    open_and_wait(w, image_folder)
    b = w.browser
    assert len(b.visible_studies()) == 5
    b.filter_edit.setText("abd")
    assert len(b.visible_studies()) == 2
    b.column_combo.setCurrentIndex(b.column_combo.findText("Name"))
    b.filter_edit.setText("c1")
    assert [s.views[0].ref.path.rsplit("/", 1)[-1] for s in b.visible_studies()] == ["c1.png"]
    b.filter_edit.setText("")
    b.tree.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    names = [s.views[0].ref.path.rsplit("/", 1)[-1] for s in b.visible_studies()]
    assert names == sorted(names, reverse=True)


def test_filtering_by_patient_keeps_that_patients_studies(qtbot, make_window, open_and_wait, mura_folder):
    """Typing a patient id shows that patient's studies (not an empty patient row), and a
    study's views stay under it; another patient's studies are hidden."""
    w = make_window()
    open_and_wait(w, mura_folder)
    b = w.browser
    assert len(b.visible_studies()) == 2
    b.filter_edit.setText("patient00001")
    shown = b.visible_studies()
    assert [s.key for s in shown] == [s.key for s in b.model.studies if "patient00001" in s.key]
    assert len(shown) == 1 and len(shown[0].views) == 2
    patient = b.proxy.index(0, 0)
    assert b.proxy.rowCount(patient) == 1  # the study row is there to click
    assert b.proxy.rowCount(b.proxy.index(0, 0, patient)) == 2  # and its two views
    b.filter_edit.setText("")
    assert len(b.visible_studies()) == 2


def test_thumbnails_are_made_in_the_background_and_cached(qtbot, make_window, open_and_wait, image_folder):
    w = make_window()
    open_and_wait(w, image_folder)
    study = w.browser.model.studies[0]
    ref = study.views[0].ref
    if w.thumbnails.get(ref) is None:
        with qtbot.waitSignal(w.thumbnails.ready, timeout=10000):
            pass
    qtbot.waitUntil(lambda: w.thumbnails.get(ref) is not None, timeout=10000)
    pm = w.thumbnails.get(ref)
    assert 0 < max(pm.width(), pm.height()) <= 96
    assert any((w.thumbnails.cache_dir).rglob("*.png")), "thumbnails are kept on disk too"


def test_dicom_tag_browser_is_searchable(qtbot, testdata):
    from radview.gui.widgets.tag_browser import TagBrowser

    tb = TagBrowser()
    qtbot.addWidget(tb)
    tb.show_file(testdata("CT_small.dcm"))  # the header is read on a worker
    qtbot.waitUntil(lambda: tb.status.text().endswith("elements"), timeout=10000)
    total = tb.visible_rows()
    assert total > 50
    tb.search.setText("PatientName")
    assert tb.visible_rows() in range(1, 5)
    tb.search.setText("(0028,0010)")  # Rows
    assert tb.visible_rows() >= 1
    tb.search.setText("")
    assert tb.visible_rows() == total


def test_shortcuts_are_remappable_and_stored_under_radview_home(qtbot, make_window, open_and_wait, radview_home):
    from radview.gui import settings as cfg

    cfg.set_shortcut("invert", "Ctrl+Shift+I")
    assert (radview_home / "radview.ini").is_file()
    w = make_window(start=False)
    assert w.actions["invert"].shortcut().toString() == "Ctrl+Shift+I"
    w.show_help()
    assert w.help.isVisible() and any(keys == "Ctrl+Shift+I" for keys, _ in w.help.rows)
    QTest.keyClick(w.help, Qt.Key.Key_Escape)
    assert not w.help.isVisible()
    assert cfg.add_recent("/some/folder")[0] == "/some/folder"


def test_settings_dialog_saves_device_and_keys(qtbot, radview_home):
    from PySide6.QtGui import QKeySequence

    from radview.gui import settings as cfg
    from radview.gui.settings_dialog import SettingsDialog

    d = SettingsDialog()
    qtbot.addWidget(d)
    d.device.setCurrentText("cpu")
    d.edits["fit"].setKeySequence(QKeySequence("Ctrl+Shift+F"))
    d.accept()
    assert cfg.get("device", "auto") == "cpu"
    assert cfg.shortcut("fit") == "Ctrl+Shift+F"
    d2 = SettingsDialog()
    qtbot.addWidget(d2)
    d2.restore_defaults()
    d2.accept()
    assert cfg.shortcut("fit") == "F"


def test_settings_dialog_has_the_pacs_nodes_page(qtbot, radview_home):
    """PACS nodes live in Settings: a node saved on that page is in the user's node book."""
    from radview.gui.settings_dialog import SettingsDialog
    from radview.net.nodes import NodeBook

    d = SettingsDialog()
    qtbot.addWidget(d)
    assert [d.tabs.tabText(i) for i in range(d.tabs.count())] == ["General", "PACS nodes"]
    d.pacs.name.setText("hospital")
    d.pacs.host.setText("127.0.0.1")
    d.pacs.port.setValue(11112)
    d.pacs.called.setText("PACS")
    assert d.pacs.save(), d.pacs.result.text()
    node = NodeBook.load().get("hospital")
    assert (node.host, node.port, node.called_aet) == ("127.0.0.1", 11112, "PACS")


def test_drop_a_folder_opens_it_and_it_joins_the_recent_list(qtbot, make_window, image_folder):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDropEvent

    from radview.gui import settings as cfg

    w = make_window(start=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image_folder))])
    ev = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(w.scanFinished, timeout=20000) as blocker:
        w.dropEvent(ev)
    assert len(blocker.args[0].studies) == 5
    assert cfg.recent_paths()[0] == str(image_folder)
    assert [a.text() for a in w.recent_menu.actions()][0] == str(image_folder)


def test_display_image_is_built_at_the_resolution_shown(qtbot):
    """A 2000x1600 frame in a 400x320 canvas is rendered from its stored values box-averaged
    by the level of the zoom (not at full resolution); 1:1 is full resolution pixel for pixel;
    the item keeps the frame's geometry, the pixel readout and the lens stay exact."""
    from dataclasses import replace

    from radview.gui.canvas import ImageCanvas
    from radview.io.display import block_mean, display_image
    from radview.types import Frame, ImageRef, Window

    rng = np.random.default_rng(0)
    stored = rng.integers(0, 4096, (1600, 2000), dtype=np.uint16)
    frame = Frame(ImageRef("/big.png"), stored, auto_window=Window(2048, 4096, "LINEAR", "auto"))
    c = ImageCanvas()
    qtbot.addWidget(c)
    c.resize(400, 320)
    c.show()
    qtbot.waitExposed(c)
    c.set_frame(frame)
    k = c.display_level
    assert c.zoom() < 0.25 and k == 4  # fitted: ~0.2 device pixels per image pixel
    assert c.last_display.shape == (400, 500)  # 1/16 of the pixels, never the full image
    assert np.array_equal(c.last_display, display_image(replace(frame, stored=block_mean(stored, 4))))
    r = c.image_item.boundingRect()
    assert (r.width(), r.height()) == (2000, 1600)  # heatmap, boxes, measurements: image pixels
    # a window/level change re-renders at the same level (a cheap LUT on 200,000 pixels)
    win = Window(1000, 800, "LINEAR", "manual")
    c.set_window(win)
    assert c.last_display.shape == (400, 500)
    assert np.array_equal(c.last_display, display_image(replace(frame, stored=block_mean(stored, 4)), window=win))
    # the readout reads the stored value under the cursor, whatever the level
    with qtbot.waitSignal(c.pixelInfo, timeout=2000) as blocker:
        QTest.mouseMove(c.viewport(), c.mapFromScene(c.image_item.mapToScene(QPointF(1234.5, 987.5))))
    x, y = (int(v) for v in blocker.args[0].split()[1:4:2])
    assert f"stored {int(stored[y, x])}" in blocker.args[0]
    # the lens magnifies the full-resolution pixels
    assert np.array_equal(c.display_region(100, 50, 140, 90),
                          display_image(replace(frame, stored=stored[50:90, 100:140]), window=win))
    # 1:1: the next turn renders full resolution, exactly display_image of the frame
    c.one_to_one()
    qtbot.waitUntil(lambda: c.display_level == 1, timeout=2000)
    assert c.last_display.shape == (1600, 2000)
    assert np.array_equal(c.last_display, display_image(frame, window=win))
    assert c.image_item.pixmap().width() == 2000
    # back to fit: the reduced level again
    c.fit()
    qtbot.waitUntil(lambda: c.display_level == 4, timeout=2000)
    assert c.last_display.shape == (400, 500)
