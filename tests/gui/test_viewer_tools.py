"""Issue 14 in the real window (offscreen): window presets by modality, the help overlay (F1, ?),
the toolbar tools, outlined overlay text and orientation letters on the canvas."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from dicom_factory import write_dicom


def _ramp(h=64, w=80, top=4000):
    return (np.linspace(0, top, h * w).reshape(h, w)).astype(np.uint16)


@pytest.fixture
def films(tmp_path):
    """A CR film with its own window and PatientOrientation, and a CT slice."""
    root = tmp_path / "films"
    write_dicom(root / "cr.dcm", _ramp(), modality="CR", patient_id="P1", bits_stored=12,
                WindowCenter=2000, WindowWidth=3000, PixelSpacing=[0.5, 0.5],
                PatientOrientation=["L", "F"], ViewPosition="PA")
    ct = (np.linspace(0, 2000, 64 * 64).reshape(64, 64)).astype(np.uint16)
    write_dicom(root / "ct.dcm", ct, modality="CT", patient_id="P2", RescaleSlope=1,
                RescaleIntercept=-1024)
    return root


def _show(qtbot, w, name):
    st = next(s for s in w.scan_result.studies if any(v.ref.path.endswith(name) for v in s.views))
    w.show_study(st, 0)
    qtbot.waitUntil(lambda: w.viewer.active_canvas().frame is not None
                    and w.viewer.active_canvas().frame.ref.path.endswith(name), timeout=10000)
    return w.viewer.active_canvas()


def test_presets_follow_the_modality(qtbot, make_window, open_and_wait, films):
    w = make_window(start=False)
    open_and_wait(w, films)
    c = _show(qtbot, w, "cr.dcm")
    names = [p.name for p in w.presets()]
    assert "lung" not in names and "bone" not in names, "a CR film never gets CT windows"
    QTest.keyClick(w, Qt.Key.Key_F4)  # full range
    full = c.current_window()
    assert full.width >= 3999 and c.last_display.min() == 0 and c.last_display.max() == 255
    QTest.keyClick(w, Qt.Key.Key_F5)  # next preset: cycles the film's own list
    seen = {c.current_window().name}
    for _ in range(len(names)):
        QTest.keyClick(w, Qt.Key.Key_F5)
        seen.add(c.current_window().name if c.current_window() is not None else None)
        assert c.last_display.mean() > 5, "no preset turns a film black"
    assert set(names) <= seen | {"VOI LUT"}
    # the W/L menu lists the film's presets, and a user preset saved for CR shows up there
    w.viewer.apply_window(c.current_window().__class__(1234, 567, "LINEAR", "manual"))
    assert w.save_preset("my knee").name == "my knee"
    w.fill_preset_menu(w.wl_menu)
    texts = [a.text() for a in w.wl_menu.actions()]
    assert any(t.startswith("my knee") and "[yours]" in t for t in texts)
    assert not any(t.startswith("lung") for t in texts)
    ct = _show(qtbot, w, "ct.dcm")
    assert {"lung", "bone", "brain"} <= {p.name for p in w.presets()}
    assert "my knee" not in {p.name for p in w.presets()}, "user presets are per modality"
    w.apply_preset("lung")
    assert (ct.current_window().center, ct.current_window().width) == (-600.0, 1500.0)


def test_help_opens_with_f1_and_question_mark_and_lists_gestures(qtbot, make_window):
    w = make_window(start=False)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    for key in (Qt.Key.Key_F1, Qt.Key.Key_Question):
        QTest.keyClick(w, key, Qt.KeyboardModifier.ShiftModifier if key == Qt.Key.Key_Question
                       else Qt.KeyboardModifier.NoModifier)
        assert w.help.isVisible(), key
        rows = dict((t, k) for k, t in w.help.rows)
        joined = " | ".join(f"{k}: {t}" for k, t in w.help.rows)
        assert "Shift+left-drag" in joined and "Draw a box" in joined
        assert "Tool: measure a length (left-drag)" in rows and rows["Tool: measure a length (left-drag)"] == "L"
        assert "F1, ?" in joined
        QTest.keyClick(w.help, Qt.Key.Key_Escape)
        assert not w.help.isVisible()
    # the toolbar carries the box and measurement tools
    on_bar = {a.objectName() for a in w.toolbar.actions()}
    assert {"tool_box", "tool_length", "tool_angle", "tool_rect", "tool_ellipse", "tool_calibrate"} <= on_bar


def test_orientation_letters_follow_the_flip_and_text_is_outlined(qtbot, make_window, open_and_wait, films):
    w = make_window(start=False)
    open_and_wait(w, films)
    c = _show(qtbot, w, "cr.dcm")
    o = c.orientation_letters()
    assert (o.left, o.right, o.top, o.bottom) == ("R", "L", "H", "F")
    w.actions["flip_h"].trigger()
    qtbot.waitUntil(lambda: c.flip_h)
    o = c.orientation_letters()
    assert (o.left, o.right) == ("L", "R")
    # the corner text is drawn with a dark outline: on a white image, dark pixels surround it
    c.set_window(c.current_window().__class__(0, 1, "LINEAR", "white"))
    img = c.grab().toImage()
    h = img.height()
    ys = range(h - 40, h - 4)
    px = [img.pixelColor(x, y).lightness() for y in ys for x in range(6, 120)]
    assert min(px) < 60 and max(px) > 200, "outlined text: dark outline and light fill on white"


def test_study_browser_shows_patient_date_accession_and_sorts_filters(qtbot, make_window, open_and_wait, tmp_path):
    from radview.gui.widgets.study_browser import COLUMNS, SORT_ROLE

    root = tmp_path / "studies"
    for i, (pid, date, acc, n) in enumerate((("P7", "20240131", "ACC-9", 3), ("P3", "20230105", "ACC-1", 1))):
        uid = f"1.2.3.{i}"
        for j in range(n):
            write_dicom(root / f"s{i}" / f"{j}.dcm", _ramp(16, 16), patient_id=pid, study_uid=uid, instance=j + 1,
                        StudyDate=date, AccessionNumber=acc, StudyDescription=f"CHEST {pid}", modality="DX")
    w = make_window(start=False)
    open_and_wait(w, root)
    m = w.browser.model
    col = {name: i for i, name in enumerate(COLUMNS)}
    rows = {}
    for key, node in m.by_study.items():
        idx = m.index_of_node(node)
        rows[node.study.key] = [m.data(idx.siblingAtColumn(col[c])) for c in
                                ("Patient name", "Patient ID", "Date", "Accession", "Modality", "Images")]
    assert sorted(rows.values()) == [["Test Patient", "P3", "2023-01-05", "ACC-1", "DX", 1],
                                     ["Test Patient", "P7", "2024-01-31", "ACC-9", "DX", 3]]
    # filter by accession, in its own column
    w.browser.column_combo.setCurrentIndex(w.browser.column_combo.findData(col["Accession"]))
    w.browser.filter_edit.setText("ACC-9")
    proxy = w.browser.proxy
    visible = []
    for p in range(proxy.rowCount()):
        pidx = proxy.index(p, 0)
        visible += [proxy.index(r, 0, pidx).data(SORT_ROLE) for r in range(proxy.rowCount(pidx))]
    assert visible == ["CHEST P7"]
    w.browser.filter_edit.setText("")
    w.browser.tree.sortByColumn(col["Date"], Qt.SortOrder.AscendingOrder)
    first = w.browser.neighbour(None, 1)
    assert first.description == "CHEST P3"


def test_layout_is_saved_and_restored(qtbot, make_window, radview_home):
    w = make_window(start=False, size=(1000, 700))
    w.docks["studies"].hide()
    w.docks["tags"].show()
    w.docks["tags"].raise_()
    w.shutdown()  # saves the layout (the app does it on close)
    w2 = make_window(start=False, size=(1200, 800))
    assert not w2.docks["studies"].isVisible()  # restored while the window was built
    assert w2.restore_layout()  # geometry too (its size depends on the screen: offscreen is small)
    from radview.gui import settings as cfg

    s = cfg.open_settings()
    assert not s.value("layout/geometry").isEmpty() and not s.value("layout/state").isEmpty()


def test_cine_plays_a_multi_frame_file_at_its_frame_time(qtbot, make_window, open_and_wait, tmp_path):
    frames = np.stack([np.full((24, 32), 200 * (k + 1), np.uint16) for k in range(5)])
    frames[:, :4, :4] = 0  # a dark corner: every frame has contrast
    write_dicom(tmp_path / "cine" / "mf.dcm", frames, modality="XA", bits_stored=12, FrameTime=40)
    w = make_window(start=False)
    open_and_wait(w, tmp_path / "cine")
    c = _show(qtbot, w, "mf.dcm")
    qtbot.waitUntil(lambda: w.cine.bar.isVisible())
    assert w.cine.n == 5 and w.cine.slider.maximum() == 4 and w.cine.timer.interval() == 40
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    QTest.keyClick(w, Qt.Key.Key_Period)
    qtbot.waitUntil(lambda: c.frame.ref.frame == 1)
    assert int(c.frame.stored.max()) == 400 and any(x == "frame 2/5" for x in c.annotations["top_left"])
    QTest.keyClick(w, Qt.Key.Key_X)  # play
    assert w.cine.timer.isActive()
    seen = set()
    qtbot.waitUntil(lambda: seen.add(c.frame.ref.frame) or len(seen) >= 4, timeout=5000)
    QTest.keyClick(w, Qt.Key.Key_X)
    assert not w.cine.timer.isActive()
    # a single-frame study hides the bar
    w.show_study(w.scan_result.studies[0], 0)
    assert w.cine.bar.isVisible()  # same study
    from radview.gui.cine import frame_time_ms

    assert frame_time_ms({"CineRate": 25}) == 40.0 and frame_time_ms({}) == 100.0


def test_priors_hang_side_by_side_current_left(qtbot, make_window, open_and_wait, tmp_path):
    root = tmp_path / "priors"
    for i, date in enumerate(("20230105", "20240131")):
        for j, vp in enumerate(("LL", "PA")):  # stored LAT first: the hanging puts PA first
            write_dicom(root / date / f"{vp}.dcm", _ramp(24, 20, top=1000 * (i + 1) + 100 * j), patient_id="P9",
                        study_uid=f"1.2.9.{i}", instance=j + 1, StudyDate=date, ViewPosition=vp,
                        StudyDescription=f"CHEST {date}")
    write_dicom(root / "other" / "x.dcm", _ramp(24, 20), patient_id="Q1", StudyDate="20220101")
    w = make_window(start=False)
    open_and_wait(w, root)
    current = next(s for s in w.scan_result.studies if s.description == "CHEST 20240131")
    w.show_study(current, 0)
    assert w.compare_prior(True)
    st = w.viewer.study
    assert st.layout == "hanging"
    names = [(v.ref.path.split("/")[-2], v.ref.path.split("/")[-1]) for v in st.views]
    assert names == [("20240131", "PA.dcm"), ("20230105", "PA.dcm"), ("20240131", "LL.dcm"), ("20230105", "LL.dcm")]
    qtbot.waitUntil(lambda: all(c.frame is not None for _vi, c in w.viewer.visible_canvases()))
    pos = {vi: w.viewer._layout.getItemPosition(w.viewer._layout.indexOf(c))[:2]
           for vi, c in w.viewer.visible_canvases()}
    assert pos == {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1)}  # current left, prior right, PA row first
    assert w.viewer.canvas_of(0).annotations["top_left"][0] == "CURRENT"
    assert w.viewer.canvas_of(1).annotations["top_left"][0] == "PRIOR 20230105"
    assert w.actions["compare_prior"].isChecked()
    w.compare_prior(False)
    assert w.viewer.study.key == current.key and w.viewer.columns is None
    other = next(s for s in w.scan_result.studies if s.views[0].ref.path.endswith("x.dcm"))
    w.show_study(other, 0)
    assert not w.compare_prior(True) and "No prior" in w.status_label.text()


def test_magnifier_lens_and_synced_crosshair(qtbot, make_window, open_and_wait, tmp_path):
    root = tmp_path / "two"
    img = np.zeros((64, 64), np.uint16)
    img[::8, :] = 4000  # stripes: magnified, fewer of them cross the lens
    for j in range(2):
        write_dicom(root / f"{j}.dcm", img, patient_id="P1", study_uid="1.2.5", instance=j + 1, bits_stored=12)
    w = make_window(start=False)
    open_and_wait(w, root)
    qtbot.waitUntil(lambda: all(c.frame is not None for _vi, c in w.viewer.visible_canvases()))
    (_a, c0), (_b, c1) = w.viewer.visible_canvases()
    vp = c0.viewport()
    centre = c0.view_point(32, 32).toPoint()
    QTest.mouseMove(vp, centre)
    plain = c0.grab().toImage()
    c0.setFocus()
    QTest.keyPress(c0, Qt.Key.Key_Z)
    QTest.mouseMove(vp, centre)  # the lens follows the cursor
    assert c0.lens is not None
    lensed = c0.grab().toImage()
    QTest.keyRelease(c0, Qt.Key.Key_Z)
    assert c0.lens is None

    def column(im):
        return [im.pixelColor(centre.x() + 3, y).lightness() > 128 for y in range(centre.y() - 60, centre.y() + 60)]

    def runs(col):
        return sum(1 for a, b in zip(col, col[1:]) if a and not b)
    assert runs(column(lensed)) < runs(column(plain)), "the lens magnifies: fewer stripes cross it"
    # the crosshair follows the cursor on the other view
    w.actions["crosshair"].trigger()
    QTest.mouseMove(vp, c0.view_point(16, 48).toPoint())
    assert c0.crosshair is None and c1.crosshair == pytest.approx((16 / 64, 48 / 64), abs=0.03)
    w.actions["crosshair"].trigger()
    assert c1.crosshair is None


def test_tag_values_are_never_truncated(qtbot, tmp_path):
    from radview.gui.widgets.tag_browser import TagBrowser

    long_text = " ".join(f"word{i}" for i in range(150))  # ~1000 characters
    path = write_dicom(tmp_path / "long.dcm", _ramp(8, 8), ImageComments=long_text)
    tb = TagBrowser()
    qtbot.addWidget(tb)
    tb.show()
    tb.show_file(str(path))
    qtbot.waitUntil(lambda: tb.status.text().endswith("elements"), timeout=10000)
    tb.search.setText("ImageComments")
    item = next(tb.tree.topLevelItem(i) for i in range(tb.tree.topLevelItemCount())
                if not tb.tree.topLevelItem(i).isHidden() and tb.tree.topLevelItem(i).text(1) == "ImageComments")
    assert item.text(3) == long_text
    tb.tree.setCurrentItem(item)
    assert tb.detail.toPlainText().endswith(long_text)
    assert tb.tree.textElideMode() == Qt.TextElideMode.ElideNone and tb.tree.wordWrap()
