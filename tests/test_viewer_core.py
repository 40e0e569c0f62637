"""Issue 14, the rest of the radiologist's viewer without Qt: priors of every study (the
browser's Priors column, the picker's order and steps), linked views in the view state,
measurement handles, calibration records, and the store's edit / calibration events."""
from __future__ import annotations

import json
import sqlite3

import pytest

from radview.measure import (Calibration, Measurement, calibration_from, calibration_of, calibration_record,
                             handles, length, move_handle, user_calibration)
from radview.measure.edit import nearest
from radview.priors import StudyInfo, describe, earlier, priors_index, priors_of, step_prior
from radview.state import FIT, Framing, ViewState, row_groups
from radview.store import LabelStore
from radview.types import ImageRef, Study, View


def S(key, pid, date=""):
    return StudyInfo(key=key, patient_id=pid, date=date, description=f"CHEST {key}")


# ---------------------------------------------------------------- priors


def test_priors_index_matches_priors_of_for_every_study():
    studies = [S("c", "P", "20240310"), S("b", "P", "20240301"), S("a", "P", "20230101"), S("x", "Q", "20200101"),
               S("n", "")]
    idx = priors_index(studies)
    assert set(idx) == {"c", "b", "a", "x", "n"}
    for s in studies:
        assert [p.study.key for p in idx[s.key]] == [p.study.key for p in priors_of(s, studies)]
    assert [p.study.key for p in idx["c"]] == ["b", "a"] and idx["x"] == [] and idx["n"] == []
    # b's later study c is no prior of it
    assert [p.study.key for p in earlier(idx["b"])] == ["a"]


def test_step_prior_goes_older_and_newer_and_stops_at_the_ends():
    ps = earlier(priors_of(S("c", "P", "20240310"), [S("b", "P", "20240301"), S("a", "P", "20230101"),
                                                       S("z", "P", "20200101")]))
    keys = [p.study.key for p in ps]
    assert keys == ["b", "a", "z"]
    assert step_prior(ps, None, 1).study.key == "b"  # no current prior: the most recent
    assert step_prior(ps, "b", 1).study.key == "a" and step_prior(ps, "a", 1).study.key == "z"
    assert step_prior(ps, "z", 1) is None and step_prior(ps, "b", -1) is None
    assert step_prior(ps, "a", -1).study.key == "b" and step_prior([], None, 1) is None
    assert describe(ps[0]) == "2024-03-01 · CHEST b · 9 days before"
    assert describe(ps[1]).endswith("434 days before")


# ---------------------------------------------------------------- linked views


def _study(key, n):
    return Study(key=key, views=tuple(View(ImageRef(f"/d/{key}/{i}.dcm")) for i in range(n)))


def test_linked_views_share_window_and_framing_inside_their_row_only():
    from radview.types import Window

    s = ViewState()
    s.set_study(_study("h", 4))
    assert row_groups(4, 2) == ((0, 1), (2, 3)) and row_groups(5, 2) == ((0, 1), (2, 3)) and row_groups(3, 1) == ()
    links, framings, windows = [], [], []
    s.events.link.connect(lambda g: links.append(g))
    s.events.framing.connect(lambda v, f: framings.append((v, f)))
    s.events.window.connect(lambda v, w: windows.append((v, w)))
    assert s.share_window(0) == [] and windows == []  # not linked: nothing follows
    s.set_links(row_groups(4, 2))
    assert links == [((0, 1), (2, 3))] and s.partners(2) == [3] and s.partners(9) == []
    w = Window(500, 1000, "LINEAR", "manual")
    s.windows[0] = w  # the canvas records a drag quietly, then asks the partners to follow
    assert s.share_window(0) == [1]
    assert windows == [(1, w)] and s.window_of(1) == w and s.window_of(2) is None
    f = Framing(2.0, (0.25, 0.75))
    assert s.share_framing(3, f) == [2] and framings == [(2, f)] and s.framing_of(2) == f
    s.share_framing(3, f)
    assert len(framings) == 1, "the same framing again is no event"
    assert s.framing_of(0) == FIT
    # a new study unlinks (the groups were of the old layout) and forgets the framings
    s.set_study(_study("other", 2))
    assert s.links == () and links[-1] == () and s.framing_of(2) == FIT


# ---------------------------------------------------------------- measurement handles


def test_handles_of_lines_angles_and_rois():
    assert handles("length", [(0, 0), (10, 0)]) == [(0.0, 0.0), (10.0, 0.0)]
    assert move_handle("length", [(0, 0), (10, 0)], 1, (20, 5)) == ((0.0, 0.0), (20.0, 5.0))
    assert move_handle("angle", [(10, 0), (0, 0), (0, 10)], 1, (1, 1)) == ((10.0, 0.0), (1.0, 1.0), (0.0, 10.0))
    assert handles("rect", [(0, 0), (10, 20)]) == [(0.0, 0.0), (10.0, 20.0), (0.0, 20.0), (10.0, 0.0)]
    # the corner (0, 20) dragged: its opposite corner (10, 0) stays
    assert move_handle("ellipse", [(0, 0), (10, 20)], 2, (-5, 30)) == ((10.0, 0.0), (-5.0, 30.0))
    with pytest.raises(IndexError):
        move_handle("length", [(0, 0), (1, 1)], 2, (0, 0))
    assert nearest([(0, 0), (10, 0)], (9, 1), 3) == 1 and nearest([(0, 0)], (9, 9), 3) is None


def test_calibration_record_round_trips_to_the_same_calibration():
    base = calibration_of({"ImagerPixelSpacing": [0.2, 0.1]})
    cal = user_calibration((10, 10), (90, 10), 40.0, base=base)
    rec = calibration_record(cal, (10, 10), (90, 10), 40.0)
    back = Measurement.from_dict(json.loads(json.dumps(rec.to_dict())))
    got = calibration_from(back)
    assert got.basis == "calibration" and got.label == "mm (calibrated)"
    assert (got.row_mm, got.col_mm) == pytest.approx((cal.row_mm, cal.col_mm))
    assert length(got, (10, 10), (90, 10)).value == pytest.approx(40.0)
    assert rec.text == "80.0 px = 40 mm"
    with pytest.raises(ValueError):
        calibration_from(length(cal, (0, 0), (1, 0)))


# ---------------------------------------------------------------- store events


def _len(x1):
    return length(Calibration(0.5, 0.5, "PixelSpacing", "mm"), (0.0, 0.0), (x1, 0.0))


def test_edit_is_appended_and_its_undo_and_redo_too(tmp_path):
    with LabelStore(tmp_path / "s.db") as store:
        a = store.add_measurement("/x/a.dcm", _len(10))
        keep = store.add_measurement("/x/a.dcm", _len(30))
        new = store.edit_measurement(a.id, _len(20))
        # the edited one keeps its place (the order the measurements were first made)
        assert [(i, m.value) for i, m in store.measurement_entries("/x/a.dcm")] == [(new.id, 10.0), (keep.id, 15.0)]
        hist = store.measurement_history("/x/a.dcm")
        assert [(e.op, e.target, e.note) for e in hist[2:]] == [
            ("add", new.id, f"edit of {a.id}"), ("delete", a.id, f"edited: {new.id}")]
        store.swap_measurements(new.id, a.id)  # undo
        assert sorted(m.value for _i, m in store.measurement_entries("/x/a.dcm")) == [5.0, 15.0]
        store.swap_measurements(a.id, new.id, note="redo")
        assert [m.value for _i, m in store.measurement_entries("/x/a.dcm")] == [10.0, 15.0]
        again = store.edit_measurement(new.id, _len(40))  # an edit of an edit: still first
        assert [(i, m.value) for i, m in store.measurement_entries("/x/a.dcm")] == [(again.id, 20.0), (keep.id, 15.0)]
        store.swap_measurements(again.id, new.id)
        with pytest.raises(ValueError, match="not a live"):
            store.edit_measurement(a.id, _len(1))
        cal = calibration_of({"PixelSpacing": [0.5, 0.5]})
        with pytest.raises(ValueError, match="cannot make it a rect"):
            store.edit_measurement(new.id, Measurement("rect", ((0, 0), (1, 1)), 1.0, "", cal.basis, cal.label,
                                                       {"mean": 1, "sd": 0, "min": 1, "max": 1, "area": 1,
                                                        "pixels": 1}))
        # a failed edit wrote nothing (one transaction)
        assert len(store.measurement_history("/x/a.dcm")) == len(hist) + 8
        with pytest.raises(sqlite3.DatabaseError):
            with sqlite3.connect(tmp_path / "s.db") as raw:
                raw.execute("UPDATE measurement_events SET note = 'x'")


def test_calibrations_are_kept_apart_from_measurements_and_survive_a_reopen(tmp_path):
    cal = user_calibration((0, 0), (80, 0), 40.0)
    with LabelStore(tmp_path / "s.db") as store:
        store.add_measurement("/x/a.dcm", _len(10))
        first = store.add_measurement("/x/a.dcm", calibration_record(cal, (0, 0), (80, 0), 40.0))
        second = store.add_measurement("/x/a.dcm", calibration_record(user_calibration((0, 0), (80, 0), 20.0),
                                                                      (0, 0), (80, 0), 20.0))
        assert [m.kind for m in store.measurements()["/x/a.dcm"]] == ["length"]
        assert [i for i, _m in store.calibration_entries("/x/a.dcm")] == [first.id, second.id]
    with LabelStore(tmp_path / "s.db") as store:  # the next session
        got = store.calibrations(["/x/a.dcm", "/x/b.dcm"])
        assert list(got) == ["/x/a.dcm"] and got["/x/a.dcm"].value == 20.0
        store.undo_measurement(second.id)  # the one before comes back
        assert calibration_from(store.calibrations()["/x/a.dcm"]).col_mm == pytest.approx(0.5)
        from radview.export.writers import measurement_records

        assert [r["kind"] for r in measurement_records(store)] == ["length"], "exports hold measurements only"
