"""Measurements as annotations in the label store (issue 14), append-only like corrections.

    ev = store.add_measurement(image_key, m)       # m: radview.measure.Measurement -> MeasurementEvent
    store.measurements()                           # {image key: [Measurement]} (live ones, in order)
    store.measurement_entries(image_key)           # [(add event id, Measurement)]
    store.delete_measurement(ev.id)                # appends a 'delete' event naming the add event
    store.undo_measurement(event_id)               # the inverse, appended: add -> delete,
                                                   # delete -> restore, restore -> delete
    new = store.edit_measurement(ev.id, m2)        # an edit (handles dragged): in one transaction
                                                   # an 'add' of m2 (note 'edit of <id>') and a
                                                   # 'delete' of the old one (note 'edited: <new id>')
    store.swap_measurements(remove_id, restore_id) # undo / redo of an edit, in one transaction
    store.add_measurement(key, calibration_record) # a user calibration (kind 'calibration')
    store.calibrations([key])                      # {key: the newest live calibration record}

Calibrations are kept in the same table (kind 'calibration') but are not measurements:
measurements() / measurement_entries() leave them out, calibrations() / calibration_entries()
give them (the newest live one is the image's calibration; undoing it brings back the one before).

Nothing is ever updated or deleted in the table (triggers refuse it); a measurement is live
when its last add/delete/restore event is not a delete. Keys are image keys (radview.store.rows
.as_key: an ImageRef, a Box owner, a path or a key string).
"""
from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from radview.store.model import utc_now
from radview.store.rows import as_key

OPS = ("add", "delete", "restore")


@dataclass(frozen=True)
class MeasurementEvent:
    id: int
    key: str
    op: str
    target: int  # the add event this one is about (itself for an add)
    measurement: Any  # radview.measure.Measurement of the add event
    reader: str
    time: str
    note: str = ""


def _measurement(value: str):
    from radview.measure import Measurement

    return Measurement.from_dict(json.loads(value))


class MeasurementsMixin:
    """Mixed into LabelStore (needs self._db, self.reader)."""

    def add_measurement(self, item: Any, measurement, *, note: str = "",
                        reader: str | None = None) -> MeasurementEvent:
        key = as_key(item)
        to_dict = getattr(measurement, "to_dict", None)
        if to_dict is None:
            raise TypeError(f"{key}: a measurement must be a radview.measure.Measurement, "
                            f"not {type(measurement).__name__}")
        value = json.dumps(to_dict(), sort_keys=True)
        reader = reader or self.reader

        def txn(conn: sqlite3.Connection) -> MeasurementEvent:
            cur = conn.execute(
                "INSERT INTO measurement_events (uid, key, op, target, value, reader, time, note)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (uuid.uuid4().hex, key, "add", None, value, reader, utc_now(), note or ""))
            return _event(conn, cur.lastrowid)
        return self._db.write(txn, "save the measurement")

    def delete_measurement(self, event_id: int, *, note: str = "", reader: str | None = None) -> MeasurementEvent:
        """Remove a live measurement (named by its add event): appends a 'delete' event."""
        return self._mark(event_id, "delete", note, reader)

    def undo_measurement(self, event_id: int, *, reader: str | None = None) -> MeasurementEvent:
        """Append the inverse of event_id: an add or restore is deleted, a delete restored."""
        def read(conn: sqlite3.Connection) -> MeasurementEvent:
            return _event(conn, event_id)
        ev = self._db.read(read, "read the measurement")
        return self._mark(ev.target, "restore" if ev.op == "delete" else "delete", "undo", reader)

    def _mark(self, event_id: int, op: str, note: str, reader: str | None) -> MeasurementEvent:
        reader = reader or self.reader

        def txn(conn: sqlite3.Connection) -> MeasurementEvent:
            return _mark_in(conn, event_id, op, note, reader)
        return self._db.write(txn, f"{op} the measurement")

    def edit_measurement(self, event_id: int, measurement, *, note: str = "",
                         reader: str | None = None) -> MeasurementEvent:
        """A live measurement (named by its add event) was edited (its handles dragged): in one
        transaction, add the new one (note 'edit of <id>') and delete the old ('edited: <new id>').
        Returns the new add event; swap_measurements(new, old) undoes it."""
        to_dict = getattr(measurement, "to_dict", None)
        if to_dict is None:
            raise TypeError(f"measurement {event_id}: an edit must be a radview.measure.Measurement, "
                            f"not {type(measurement).__name__}")
        value = json.dumps(to_dict(), sort_keys=True)
        reader = reader or self.reader

        def txn(conn: sqlite3.Connection) -> MeasurementEvent:
            old = _event(conn, event_id)
            if old.op != "add" or not _live_in(conn, old.id):
                raise ValueError(f"{old.key}: measurement {event_id} is not a live measurement")
            if old.measurement.kind != measurement.kind:
                raise ValueError(f"{old.key}: measurement {event_id} is a {old.measurement.kind}, "
                                 f"an edit cannot make it a {measurement.kind}")
            cur = conn.execute(
                "INSERT INTO measurement_events (uid, key, op, target, value, reader, time, note)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (uuid.uuid4().hex, old.key, "add", None, value, reader, utc_now(),
                 f"edit of {old.id}" + (f": {note}" if note else "")))
            new_id = cur.lastrowid
            _mark_in(conn, old.id, "delete", f"edited: {new_id}", reader)
            return _event(conn, new_id)
        return self._db.write(txn, "save the edited measurement")

    def swap_measurements(self, remove_id: int, restore_id: int, *, note: str = "undo",
                          reader: str | None = None) -> None:
        """Delete one live measurement and restore a deleted one, in one transaction (the undo
        and redo of an edit: the history only grows)."""
        reader = reader or self.reader

        def txn(conn: sqlite3.Connection) -> None:
            _mark_in(conn, remove_id, "delete", note, reader)
            _mark_in(conn, restore_id, "restore", note, reader)
        self._db.write(txn, "undo the measurement edit")

    def measurement_entries(self, item: Any = None) -> list[tuple[int, Any]]:
        """[(add event id, Measurement)] of the live measurements (of one image, or all)."""
        key = None if item is None else as_key(item)
        return [(i, m) for _k, i, m in self._live(None if key is None else [key]) if m.kind != _CALIBRATION]

    def measurements(self, keys: Iterable[Any] | None = None) -> dict[str, list]:
        """{image key: [Measurement]} of the live measurements, in the order they were made."""
        out: dict[str, list] = {}
        for k, _i, m in self._live(None if keys is None else [as_key(x) for x in keys]):
            if m.kind != _CALIBRATION:
                out.setdefault(k, []).append(m)
        return out

    def calibration_entries(self, item: Any = None) -> list[tuple[int, Any]]:
        """[(add event id, calibration record)] of the live user calibrations, oldest first."""
        key = None if item is None else as_key(item)
        return [(i, m) for _k, i, m in self._live(None if key is None else [key]) if m.kind == _CALIBRATION]

    def calibrations(self, keys: Iterable[Any] | None = None) -> dict[str, Any]:
        """{image key: the newest live calibration record} (radview.measure.calibration_from
        turns one into the Calibration measurements use)."""
        out: dict[str, Any] = {}
        for k, _i, m in self._live(None if keys is None else [as_key(x) for x in keys]):
            if m.kind == _CALIBRATION:
                out[k] = m
        return out

    def measurement_history(self, item: Any = None) -> list[MeasurementEvent]:
        key = None if item is None else as_key(item)

        def read(conn: sqlite3.Connection) -> list[MeasurementEvent]:
            sql = "SELECT id FROM measurement_events" + (" WHERE key = ?" if key else "") + " ORDER BY id"
            return [_event(conn, r[0]) for r in conn.execute(sql, (key,) if key else ())]
        return self._db.read(read, "read the measurements")

    def _live(self, keys: list[str] | None) -> list[tuple[str, int, Any]]:
        """(key, add id, Measurement) of the live ones, in the order they were first made (an
        edited measurement keeps the place of the one it replaced: its note says 'edit of <id>')."""
        def read(conn: sqlite3.Connection) -> list[tuple[str, int, Any]]:
            sql = ("SELECT a.key, a.id, a.value, (SELECT op FROM measurement_events e WHERE e.target = a.id"
                   " ORDER BY e.id DESC LIMIT 1), a.note FROM measurement_events a WHERE a.op = 'add'")
            args: list = []
            if keys is not None:
                if not keys:
                    return []
                sql += f" AND a.key IN ({','.join('?' * len(keys))})"
                args = list(keys)
            rows = conn.execute(sql + " ORDER BY a.id", args).fetchall()
            origin: dict[int, int] = {}
            for _k, i, _v, _last, note in rows:
                m = _EDIT_OF.match(note or "")
                origin[i] = origin.get(int(m.group(1)), int(m.group(1))) if m else i
            live = [(origin[i], k, i, v) for k, i, v, last, _n in rows if last != "delete"]
            return [(k, i, _measurement(v)) for _o, k, i, v in sorted(live)]
        return self._db.read(read, "read the measurements")


_EDIT_OF = re.compile(r"edit of (\d+)")
_CALIBRATION = "calibration"  # radview.measure.CALIBRATION (the store does not import the tools)


def _mark_in(conn: sqlite3.Connection, event_id: int, op: str, note: str, reader: str) -> MeasurementEvent:
    target = _event(conn, event_id)
    if target.op != "add":
        raise ValueError(f"measurement event {event_id} is a {target.op!r}, not an add")
    live = _live_in(conn, target.id)
    if live == (op == "restore"):
        raise ValueError(f"{target.key}: measurement {event_id} is "
                         f"{'already live' if live else 'already deleted'}")
    cur = conn.execute(
        "INSERT INTO measurement_events (uid, key, op, target, value, reader, time, note)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (uuid.uuid4().hex, target.key, op, target.id, "", reader, utc_now(), note or ""))
    return _event(conn, cur.lastrowid)


def _live_in(conn: sqlite3.Connection, add_id: int) -> bool:
    row = conn.execute("SELECT op FROM measurement_events WHERE target = ? ORDER BY id DESC LIMIT 1",
                       (add_id,)).fetchone()
    return row is None or row[0] != "delete"


def _event(conn: sqlite3.Connection, event_id: int) -> MeasurementEvent:
    row = conn.execute("SELECT id, key, op, target, value, reader, time, note FROM measurement_events"
                       " WHERE id = ?", (int(event_id),)).fetchone()
    if row is None:
        raise KeyError(f"no measurement event {event_id}")
    i, key, op, target, value, reader, time, note = row
    if op == "add":
        target = i
    else:
        value = conn.execute("SELECT value FROM measurement_events WHERE id = ?", (target,)).fetchone()[0]
    return MeasurementEvent(i, key, op, int(target), _measurement(value), reader, time, note)
