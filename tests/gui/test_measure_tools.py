"""Measurement tools on the real canvas (offscreen): a drawn line gives the same number and basis
as `radview measure FILE --line ...`; angle, ROI, user calibration; measurements are store
annotations (undoable appended events), listed, exported as JSON."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from dicom_factory import write_dicom


def _img(h=100, w=120):
    return (np.linspace(100, 3000, h * w).reshape(h, w)).astype(np.uint16)


@pytest.fixture
def spacing_folder(tmp_path):
    root = tmp_path / "spacing"
    write_dicom(root / "a_patient.dcm", _img(), patient_id="A", bits_stored=12, PixelSpacing=[0.5, 0.5])
    write_dicom(root / "b_detector.dcm", _img(), patient_id="B", bits_stored=12, ImagerPixelSpacing=[0.2, 0.2])
    write_dicom(root / "c_ermf.dcm", _img(), patient_id="C", bits_stored=12, ImagerPixelSpacing=[0.2, 0.2],
                EstimatedRadiographicMagnificationFactor=1.1)
    write_dicom(root / "d_none.dcm", _img(), patient_id="D", bits_stored=12, PixelSpacing=[0, 0])
    return root


def _show(qtbot, w, name):
    st = next(s for s in w.scan_result.studies if any(v.ref.path.endswith(name) for v in s.views))
    w.show_study(st, 0)
    qtbot.waitUntil(lambda: w.viewer.active_canvas().frame is not None
                    and w.viewer.active_canvas().frame.ref.path.endswith(name), timeout=10000)
    return w.viewer.active_canvas()


def _drag(canvas, a, b):
    vp = canvas.viewport()
    pa, pb = canvas.view_point(*a).toPoint(), canvas.view_point(*b).toPoint()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pa)
    for t in (0.25, 0.5, 0.75):
        QTest.mouseMove(vp, pa + (pb - pa) * t)
    QTest.mouseMove(vp, pb)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pb)


def _cli(path, *args):
    out = subprocess.run([sys.executable, "-m", "radview", "measure", str(path), *map(str, args), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_length_matches_the_cli_and_names_its_basis(qtbot, make_window, open_and_wait, spacing_folder):
    w = make_window(start=False)
    open_and_wait(w, spacing_folder)
    w.actions["tool_length"].trigger()
    assert w.tool == "length" and w.actions["tool_length"].isChecked()
    expected = {"a_patient.dcm": ("mm", "PixelSpacing", 0.5), "b_detector.dcm": ("mm (detector)", None, 0.2),
                "c_ermf.dcm": ("mm (ERMF 1.1)", None, 0.2 / 1.1), "d_none.dcm": ("px", "none", 1.0)}
    for name, (label, basis, mm_per_px) in expected.items():
        c = _show(qtbot, w, name)
        _drag(c, (10.0, 20.0), (90.0, 20.0))
        key = c.frame.ref.key
        assert not w.notifications, w.notifications
        ms = w.store.measurements([key])[key]
        assert len(ms) == 1
        m = ms[0]
        assert m.kind == "length" and m.label == label
        (x0, y0), (x1, y1) = m.points
        assert m.value == pytest.approx(np.hypot(x1 - x0, y1 - y0) * mm_per_px, abs=1e-4)  # stored to 4 dp
        assert m.value == pytest.approx(80 * mm_per_px, rel=0.03)  # the drag was 80 px long
        cli = _cli(c.frame.ref.path, "--line", x0, y0, x1, y1)
        assert cli["length"] == pytest.approx(m.value, abs=1e-3) and cli["basis"] == m.basis
        if basis:
            assert m.basis == basis
        assert label in m.text and m.text in [it.text(2) for it in
                                              (w.measure_list.tree.topLevelItem(i)
                                               for i in range(w.measure_list.tree.topLevelItemCount()))]
        assert c.measurements and c.measurements[0][1] == m  # drawn on the canvas


def test_undo_redo_delete_append_events_and_export_json(qtbot, make_window, open_and_wait, spacing_folder,
                                                       tmp_path):
    w = make_window(start=False)
    open_and_wait(w, spacing_folder)
    c = _show(qtbot, w, "a_patient.dcm")
    key = c.frame.ref.key
    w.set_tool("length")
    _drag(c, (10.0, 10.0), (50.0, 10.0))
    assert len(w.store.measurements([key]).get(key, [])) == 1
    w.measure_stack.undo()
    assert w.store.measurements([key]).get(key, []) == [] and c.measurements == []
    w.measure_stack.redo()
    assert len(w.store.measurements([key])[key]) == 1 and len(c.measurements) == 1
    w.set_tool("rect")
    _drag(c, (20.0, 30.0), (60.0, 70.0))
    roi = w.store.measurements([key])[key][-1]
    (x0, y0), (x1, y1) = roi.points
    assert roi.kind == "rect" and roi.stats["area"] == pytest.approx(abs((x1 - x0) * (y1 - y0)) * 0.25, rel=1e-3)
    assert roi.stats["pixels"] == pytest.approx(1600, rel=0.1)
    assert "mm²" in roi.text
    # delete from the list: an appended event, undoable
    w.measure_list.tree.setCurrentItem(w.measure_list.tree.topLevelItem(0))
    w.measure_list.delete_selected()
    assert [m.kind for m in w.store.measurements([key])[key]] == ["rect"]
    w.measure_stack.undo()
    assert [m.kind for m in w.store.measurements([key])[key]] == ["length", "rect"]
    ops = [e.op for e in w.store.measurement_history(key)]
    assert ops == ["add", "delete", "restore", "add", "delete", "restore"]
    out = tmp_path / "m.json"
    w.export_measurements(str(out))
    doc = json.loads(out.read_text())
    assert [r["kind"] for r in doc["measurements"]] == ["length", "rect"]
    assert doc["measurements"][0]["basis"] == "PixelSpacing" and doc["measurements"][0]["key"] == key
    # the full JSON export carries them too
    from radview.export import export_labels

    export_labels(w.store, "json", tmp_path / "all.json")
    assert len(json.loads((tmp_path / "all.json").read_text())["measurements"]) == 2


def test_angle_and_user_calibration(qtbot, make_window, open_and_wait, spacing_folder, monkeypatch):
    w = make_window(start=False)
    open_and_wait(w, spacing_folder)
    c = _show(qtbot, w, "d_none.dcm")
    key = c.frame.ref.key
    w.set_tool("angle")
    _drag(c, (90.0, 50.0), (50.0, 50.0))  # first arm: end -> vertex
    assert w.store.measurements([key]).get(key, []) == []  # not done yet
    _drag(c, (50.0, 50.0), (50.0, 10.0))  # second arm
    a = w.store.measurements([key])[key][0]
    assert a.kind == "angle" and a.value == pytest.approx(90.0, abs=2.5)
    monkeypatch.setattr(w, "ask_known_length", lambda measured: 40.0)
    w.actions["tool_calibrate"].trigger()
    assert not w.actions["tool_angle"].isChecked()
    _drag(c, (10.0, 80.0), (90.0, 80.0))  # 80 px = 40 mm
    assert w.user_calibrations[key].basis == "calibration"
    w.set_tool("length")
    _drag(c, (10.0, 20.0), (50.0, 20.0))
    m = w.store.measurements([key])[key][-1]
    assert m.label == "mm (calibrated)" and m.value == pytest.approx(20.0, rel=0.05)
    w.set_tool(None)
    assert c.tool_handler is None


def test_user_calibration_survives_a_reopen_of_the_app(qtbot, make_window, open_and_wait, spacing_folder,
                                                      monkeypatch):
    """Calibrate a film without spacing, close the window and the store (as quitting does), open
    a new window on the same folder: the calibration is read back from the store file."""
    from radview.store import close_stores

    w = make_window(start=False)
    open_and_wait(w, spacing_folder)
    c = _show(qtbot, w, "d_none.dcm")
    key = c.frame.ref.key
    monkeypatch.setattr(type(w), "ask_known_length", lambda self, measured: 40.0)
    w.set_tool("calibrate")
    _drag(c, (10.0, 80.0), (90.0, 80.0))  # 80 px = 40 mm
    assert w.calibration_for(c).basis == "calibration"
    rows = [w.measure_list.tree.topLevelItem(i) for i in range(w.measure_list.tree.topLevelItemCount())]
    assert [(r.text(1), r.text(3)) for r in rows] == [("Calibration", "calibration")]
    assert rows[0].text(2).endswith("px = 40 mm")
    assert c.measurements == [], "a calibration is no measurement on the image"
    w.shutdown()
    w.close()
    close_stores()  # the store file is closed: the next window reads it from disk
    w2 = make_window(start=False)
    open_and_wait(w2, spacing_folder)
    c2 = _show(qtbot, w2, "d_none.dcm")
    assert w2.store is not w.store
    cal = w2.calibration_for(c2)
    assert (cal.basis, cal.label) == ("calibration", "mm (calibrated)")
    assert cal.col_mm == pytest.approx(40.0 / np.hypot(*np.subtract(*w2.store.calibrations()[key].points)), rel=1e-6)
    w2.set_tool("length")
    _drag(c2, (10.0, 20.0), (50.0, 20.0))
    m = w2.store.measurements([key])[key][-1]
    assert m.basis == "calibration" and m.label == "mm (calibrated)" and m.value == pytest.approx(20.0, rel=0.05)
    assert "mm (calibrated)" in m.text
    # deleting the calibration (from the list) is an appended, undoable event: back to px
    tree = w2.measure_list.tree
    row = next(i for i in range(tree.topLevelItemCount()) if tree.topLevelItem(i).text(1) == "Calibration")
    tree.setCurrentItem(tree.topLevelItem(row))
    w2.measure_list.delete_selected()
    assert w2.calibration_for(c2).basis == "none"
    w2.measure_stack.undo()
    assert w2.calibration_for(c2).basis == "calibration"


def _press_move(canvas, a, b, release=True):
    vp = canvas.viewport()
    pa, pb = canvas.view_point(*a).toPoint(), canvas.view_point(*b).toPoint()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pa)
    QTest.mouseMove(vp, pa + (pb - pa) * 0.5)
    QTest.mouseMove(vp, pb)
    if release:
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pb)


def test_dragging_a_handle_edits_the_measurement_live_and_undoably(qtbot, make_window, open_and_wait,
                                                                   spacing_folder):
    w = make_window(start=False)
    open_and_wait(w, spacing_folder)
    c = _show(qtbot, w, "a_patient.dcm")  # 0.5 mm pixels
    key = c.frame.ref.key
    w.set_tool("length")
    _drag(c, (10.0, 20.0), (50.0, 20.0))
    (first_id, first), = w.store.measurement_entries(key)
    assert first.value == pytest.approx(20.0, rel=0.03)
    end = first.points[1]
    QTest.mouseMove(c.viewport(), c.view_point(*end).toPoint())  # hovering a handle: a move cursor
    assert c.viewport().cursor().shape() == Qt.CursorShape.SizeAllCursor
    QTest.mouseMove(c.viewport(), c.view_point(end[0] - 20, end[1] + 30).toPoint())
    assert c.viewport().cursor().shape() != Qt.CursorShape.SizeAllCursor
    # grab the end (the length tool is still on: a press on a handle edits, it draws nothing)
    _press_move(c, end, (end[0] + 40, end[1]), release=False)
    live = c.measurements[0][1]
    assert live.value == pytest.approx(40.0, rel=0.03), "the number follows the drag"
    assert w.store.measurement_entries(key)[0][1] == first, "nothing is written before the release"
    pb = c.view_point(end[0] + 40, end[1]).toPoint()
    QTest.mouseRelease(c.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pb)
    (new_id, edited), = w.store.measurement_entries(key)
    assert new_id != first_id and edited.value == pytest.approx(40.0, rel=0.03) and edited.basis == "PixelSpacing"
    assert edited.points[0] == first.points[0]
    hist = w.store.measurement_history(key)
    assert [(e.op, e.note) for e in hist] == [("add", ""), ("add", f"edit of {first_id}"),
                                              ("delete", f"edited: {new_id}")]
    assert edited.text in [w.measure_list.tree.topLevelItem(0).text(2)]
    w.measure_stack.undo()
    assert [m.value for _i, m in w.store.measurement_entries(key)] == [first.value]
    assert c.measurements[0][1] == first
    w.measure_stack.redo()
    assert [m.value for _i, m in w.store.measurement_entries(key)] == [edited.value]
    assert [e.op for e in w.store.measurement_history(key)] == ["add", "add", "delete", "delete", "restore",
                                                                "delete", "restore"]
    # an ROI corner: the opposite corner stays, the statistics follow
    w.set_tool("rect")
    _drag(c, (60.0, 40.0), (80.0, 60.0))
    roi_id, roi = w.store.measurement_entries(key)[-1]
    corner = roi.points[1]
    _press_move(c, corner, (corner[0] + 20, corner[1] + 20))
    roi2 = w.store.measurement_entries(key)[-1][1]
    assert roi2.points[0] == roi.points[0]
    assert roi2.stats["area"] == pytest.approx(roi.stats["area"] * 4, rel=0.1)
    # a press away from any handle still draws a new measurement
    w.set_tool("length")
    _drag(c, (10.0, 90.0), (30.0, 90.0))
    assert [m.kind for _i, m in w.store.measurement_entries(key)] == ["length", "rect", "length"]
