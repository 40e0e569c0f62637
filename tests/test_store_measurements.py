"""Measurements as append-only annotation events in the real SQLite label store."""
from __future__ import annotations

import sqlite3

import pytest

from radview.measure import calibration_of, length, roi
from radview.store import LabelStore


def _m(x1=10.0):
    cal = calibration_of({"PixelSpacing": [0.5, 0.5]})
    return length(cal, (0.0, 0.0), (x1, 0.0))


def test_add_list_delete_undo_are_appended_events(tmp_path):
    with LabelStore(tmp_path / "s.db") as store:
        a = store.add_measurement("/x/a.dcm", _m(10))
        b = store.add_measurement("/x/a.dcm", _m(20))
        store.add_measurement("/x/b.dcm", _m(40))
        got = store.measurements()
        assert [m.value for m in got["/x/a.dcm"]] == [5.0, 10.0]
        assert got["/x/a.dcm"][0].label == "mm" and got["/x/b.dcm"][0].value == 20.0
        assert list(store.measurements(keys=["/x/b.dcm"])) == ["/x/b.dcm"]
        d = store.delete_measurement(a.id)
        assert d.op == "delete" and d.target == a.id
        assert [i for i, _m in store.measurement_entries("/x/a.dcm")] == [b.id]
        with pytest.raises(ValueError, match="already deleted"):
            store.delete_measurement(a.id)
        r = store.undo_measurement(d.id)  # undo the delete: restored, by a new event
        assert r.op == "restore"
        assert [m.value for m in store.measurements()["/x/a.dcm"]] == [5.0, 10.0]
        store.undo_measurement(b.id)  # undo an add = delete it
        assert [m.value for m in store.measurements()["/x/a.dcm"]] == [5.0]
        assert [e.op for e in store.measurement_history("/x/a.dcm")] == ["add", "add", "delete", "restore", "delete"]
    # persisted, and the table refuses edits
    with LabelStore(tmp_path / "s.db") as store:
        assert [m.value for m in store.measurements()["/x/a.dcm"]] == [5.0]
    conn = sqlite3.connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM measurement_events")
    conn.close()


def test_roi_round_trips_with_stats(tmp_path):
    import numpy as np

    from radview.types import Frame, ImageRef

    frame = Frame(ImageRef("k.png"), stored=np.arange(100, dtype=np.uint16).reshape(10, 10),
                  meta={"PixelSpacing": [1, 1]})
    m = roi(calibration_of(frame), frame, (0, 0), (4, 4), kind="rect")
    with LabelStore(tmp_path / "s.db") as store:
        store.add_measurement("k.png", m)
        back = store.measurements()["k.png"][0]
    assert back.kind == "rect" and back.stats["mean"] == pytest.approx(m.stats["mean"])
    with pytest.raises(TypeError, match="k.png"):
        LabelStore(tmp_path / "t.db").add_measurement("k.png", {"length": 1})
