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
        # the keys of the priors, the links and the series strip; the mouse gestures under a heading
        assert {"PgDown", "PgUp", "Ctrl+L", "Ctrl+Shift+T"} <= {k for k, _t in w.help.rows}
        assert ("", "Mouse and tools") in w.help.rows
        assert any(k == "Drag a measurement's handle" for k, _t in w.help.rows)
        assert any(k.startswith("Right-click a study") and "prior" in t for k, t in w.help.rows)
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


def test_restored_dock_sizes_leave_the_viewer_its_room(qtbot, make_window, radview_home):
    """The app shows the window's shell first and builds the docks after (app.run): the sizes
    restored then were wrong (a 400 px browser came back at 700 px, the viewer squeezed)."""
    from radview.gui.main_window import MainWindow

    w = make_window(start=False, size=(780, 560))
    w.resizeDocks([w.docks["studies"]], [260], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: abs(w.docks["studies"].width() - 260) <= 4)
    saved = w.viewer.width()
    w.shutdown()
    w2 = MainWindow(deferred=True)  # as radview.gui.app.run does it
    qtbot.addWidget(w2)
    try:
        w2.resize(780, 560)
        w2.show()
        qtbot.waitExposed(w2)
        w2.build()
        qtbot.waitUntil(lambda: abs(w2.docks["studies"].width() - 260) <= 4)
        assert abs(w2.viewer.width() - saved) <= 8, (w2.viewer.width(), saved)
    finally:
        w2._layout_saved = True
        w2.shutdown()
        w2.close()


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


# ---------------------------------------------------------------- priors in the browser, picker, links


@pytest.fixture
def three_studies(tmp_path):
    """Patient P9: chest PA + LAT in 2022, 2023 and 2024 (stored LAT first); patient Q1 once."""
    root = tmp_path / "priors3"
    for i, date in enumerate(("20220105", "20230105", "20240131")):
        for j, vp in enumerate(("LL", "PA")):
            write_dicom(root / date / f"{vp}.dcm", _ramp(48, 40, top=1000 * (i + 1) + 100 * j), patient_id="P9",
                        study_uid=f"1.2.9.{i}", instance=j + 1, StudyDate=date, ViewPosition=vp,
                        StudyDescription=f"CHEST {date}", bits_stored=12)
    write_dicom(root / "other" / "x.dcm", _ramp(24, 20), patient_id="Q1", StudyDate="20220101")
    return root


def _study_of(w, date):
    return next(s for s in w.scan_result.studies if s.description == f"CHEST {date}")


def _prior_column(w):
    from radview.gui.widgets.study_browser import PRIORS_COL

    m = w.browser.model
    return {node.study.description or "x": m.data(m.index_of_node(node, PRIORS_COL)) for node in m.by_study.values()}


def test_browser_lists_priors_and_opens_one_as_prior(qtbot, make_window, open_and_wait, three_studies):
    from radview.gui.widgets.study_browser import PRIORS_COL, _PRIOR

    w = make_window(start=False)
    open_and_wait(w, three_studies)
    header = w.browser.tree.header()
    assert header.visualIndex(PRIORS_COL) == 1, "the Priors column is shown second"
    w.show_study(_study_of(w, "20240131"), 0)
    col = _prior_column(w)
    assert col == {"CHEST 20240131": "current · 2", "CHEST 20230105": "prior · 391 d",
                   "CHEST 20220105": "prior · 756 d", "x": ""}
    m = w.browser.model
    node = m.by_study["1.2.9.0"]
    assert m.data(m.index_of_node(node, PRIORS_COL), Qt.ItemDataRole.ForegroundRole) == _PRIOR
    assert "prior of the current study" in m.data(m.index_of_node(node, 0), Qt.ItemDataRole.ToolTipRole)
    # another study on screen: the marks follow it
    w.show_study(_study_of(w, "20230105"), 0)
    assert _prior_column(w) == {"CHEST 20240131": 2, "CHEST 20230105": "current · 1",
                                "CHEST 20220105": "prior · 365 d", "x": ""}
    # the browser's context menu opens the oldest study as the prior (not only the most recent)
    w.show_study(_study_of(w, "20240131"), 0)
    menu = w.browser.context_menu(node)
    act = next(a for a in menu.actions() if a.objectName() == "open_as_prior")
    assert act.isEnabled()
    act.trigger()
    st = w.viewer.study
    assert st.layout == "hanging" and st.key.endswith("|1.2.9.0")
    assert [v.ref.path.split("/")[-2] for v in st.views] == ["20240131", "20220105", "20240131", "20220105"]
    col = _prior_column(w)
    assert col["CHEST 20240131"] == "current · 2", "the hanging keeps the current study marked"
    assert col["CHEST 20220105"] == "▶ prior · 756 d" and col["CHEST 20230105"] == "prior · 391 d"
    # the current study's own menu compares it with its most recent prior
    cur_menu = w.browser.context_menu(m.by_study["1.2.9.2"])
    cur_act = next(a for a in cur_menu.actions() if a.objectName() == "compare_prior")
    cur_act.trigger()
    assert w.viewer.study.key.endswith("|1.2.9.1")
    # a study of another patient is no prior
    other = w.browser.context_menu(m.by_study[next(k for k in m.by_study if not k.startswith("1.2.9"))])
    assert not next(a for a in other.actions() if a.objectName() == "open_as_prior").isEnabled()


def test_prior_picker_and_keys_step_older_and_newer(qtbot, make_window, open_and_wait, three_studies):
    w = make_window(start=False)
    open_and_wait(w, three_studies)
    w.show_study(_study_of(w, "20240131"), 0)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    QTest.keyClick(w, Qt.Key.Key_PageDown)  # not comparing yet: the most recent prior
    assert w.viewer.study.key.endswith("|1.2.9.1") and w.priors_bar.isVisible()
    combo = w.prior_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "2023-01-05 · CHEST 20230105 · 391 days before", "2022-01-05 · CHEST 20220105 · 756 days before"]
    assert combo.currentIndex() == 0
    # the series strip shows the hanging, each view saying which study it is of
    assert [w.series.caption_of(i) for i in range(w.series.count())] == [
        "current · 1 · PA · PA.dcm", "prior 2023-01-05 · 2 · PA · PA.dcm",
        "current · 3 · LL · LL.dcm", "prior 2023-01-05 · 4 · LL · LL.dcm"]
    QTest.keyClick(w, Qt.Key.Key_PageDown)
    assert w.viewer.study.key.endswith("|1.2.9.0") and combo.currentIndex() == 1
    qtbot.waitUntil(lambda: w.viewer.canvas_of(1) is not None and w.viewer.canvas_of(1).frame is not None)
    assert w.viewer.canvas_of(1).annotations["top_left"][0] == "PRIOR 20220105"
    QTest.keyClick(w, Qt.Key.Key_PageDown)
    assert w.viewer.study.key.endswith("|1.2.9.0") and "No older prior" in w.status_label.text()
    QTest.keyClick(w, Qt.Key.Key_PageUp)
    assert w.viewer.study.key.endswith("|1.2.9.1")
    QTest.keyClick(w, Qt.Key.Key_PageUp)
    assert w.viewer.study.key.endswith("|1.2.9.1") and "most recent prior" in w.status_label.text()
    combo.activated.emit(1)  # the picker
    assert w.viewer.study.key.endswith("|1.2.9.0")
    w.compare_prior(False)
    assert w.viewer.study.key == "1.2.9.2" and not w.priors_bar.isVisible()


def _wl_drag(canvas, dx, dy):
    vp = canvas.viewport()
    a = vp.rect().center()
    QTest.mousePress(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, a + type(a)(dx // 2, dy // 2))
    QTest.mouseMove(vp, a + type(a)(dx, dy))
    QTest.mouseRelease(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, a + type(a)(dx, dy))


def test_wl_zoom_and_pan_are_linked_on_request_only(qtbot, make_window, open_and_wait, three_studies):
    from radview.gui.view_link import framing_of

    w = make_window(start=False)
    open_and_wait(w, three_studies)
    w.show_study(_study_of(w, "20240131"), 0)
    assert w.compare_prior(True) and not w.actions["link_views"].isChecked(), "off by default"
    qtbot.waitUntil(lambda: all(c.frame is not None for _vi, c in w.viewer.visible_canvases()))
    cur, pri, lat = w.viewer.canvas_of(0), w.viewer.canvas_of(1), w.viewer.canvas_of(3)
    before = pri.current_window()
    _wl_drag(cur, 60, -30)
    assert cur.current_window() != before and pri.current_window() == before, "not linked: the prior stays"
    cur.zoom_by(2.0)
    assert framing_of(pri).zoom is None
    w.actions["link_views"].trigger()  # Ctrl+L
    assert w.state.links == ((0, 1), (2, 3))
    # linking starts from the active view: the prior takes its window and framing at once
    assert pri.current_window() == cur.current_window()
    assert framing_of(pri).zoom == pytest.approx(framing_of(cur).zoom, rel=1e-3)
    _wl_drag(cur, -40, 20)
    qtbot.waitUntil(lambda: pri.current_window() == cur.current_window())
    assert lat.current_window() != cur.current_window(), "only the row's pair is linked"
    cur.zoom_by(1.5)  # as the wheel does
    cur.pan_by(25, -15)
    fc, fp = framing_of(cur), framing_of(pri)
    assert fc.zoom == pytest.approx(3.0, rel=0.02) and fp.zoom == pytest.approx(fc.zoom, rel=1e-3)
    assert fp.center == pytest.approx(fc.center, abs=0.02)
    # the prior drives the current one just as well
    pri.pan_by(-40, 0)
    assert framing_of(cur).center == pytest.approx(framing_of(pri).center, abs=0.02)
    # unlinked again: each on its own
    w.actions["link_views"].trigger()
    assert w.state.links == ()
    cur.zoom_by(0.5)
    assert framing_of(pri).zoom == pytest.approx(3.0, rel=0.02)
    # another prior keeps the user's choice of linking
    w.actions["link_views"].trigger()
    w.step_prior(1)
    assert w.state.links == ((0, 1), (2, 3)) and w.actions["link_views"].isChecked()


def test_series_strip_shows_the_views_and_chooses_one(qtbot, make_window, open_and_wait, tmp_path):
    root = tmp_path / "three"
    for j in range(3):
        write_dicom(root / f"{j}.dcm", _ramp(32, 24, top=1000 + 1000 * j), patient_id="P1", study_uid="1.2.6",
                    instance=j + 1, bits_stored=12, ViewPosition=("PA", "LL", "AP")[j])
    w = make_window(start=False)
    open_and_wait(w, root)
    strip = w.series
    assert w.docks["series"].isVisible()
    names = [v.ref.path.rsplit("/", 1)[-1] for v in w.viewer.study.views]  # in the scan's view order
    vp = {"0.dcm": "PA", "1.dcm": "LL", "2.dcm": "AP"}
    assert [strip.caption_of(i) for i in range(strip.count())] == [f"{i + 1} · {vp[n]} · {n}"
                                                                   for i, n in enumerate(names)]
    qtbot.waitUntil(lambda: all(w.thumbnails.get(v.ref, large=True) is not None for v in w.viewer.study.views))

    def thumb(i):
        return strip.item(i).icon().pixmap(96, 96).toImage()
    qtbot.waitUntil(lambda: thumb(2).size().height() == 32)  # the picture, not the blank 96 px square
    img = thumb(2)
    assert img.pixelColor(12, 30).lightness() > img.pixelColor(12, 1).lightness(), "the ramp, bright at the bottom"
    QTest.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     strip.visualItemRect(strip.item(2)).center())
    assert w.state.view == 2 and strip.currentRow() == 2
    w.step_image(-1)  # the viewer moves: the strip follows
    assert strip.currentRow() == 1
    strip.setFocus()
    QTest.keyClick(strip, Qt.Key.Key_Home)
    assert w.state.view == 0
    QTest.keyClick(strip, Qt.Key.Key_Right)
    assert w.state.view == 1
    w.actions["series_strip"].trigger()
    assert not w.docks["series"].isVisible()


def test_browser_columns_fit_header_and_body_part(qtbot, make_window, open_and_wait, three_studies):
    from radview.gui.widgets.study_browser import BODY_PART_COL, COLUMNS

    w = make_window(start=False)
    open_and_wait(w, three_studies)
    header = w.browser.tree.header()
    fm = header.fontMetrics()
    for c, name in enumerate(COLUMNS):
        assert header.sectionSize(c) >= fm.horizontalAdvance(name) + 12, name
    text = "musculoskeletal (header)"  # radview.gui.ai_routing.body_part_text's longest kind
    for key in w.browser.model.by_study:
        w.browser.model.set_body_part(key, text, "test")
    w.browser.model.flush()
    qtbot.waitUntil(lambda: header.sectionSize(BODY_PART_COL) >= fm.horizontalAdvance(text), timeout=3000)
