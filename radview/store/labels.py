"""LabelStore: labels, boxes, the append-only correction log, the retraining queue and the
prediction cache, in one SQLite file (default radview.paths.store_db_path()).

Quick tour (every method is safe to call from any thread; each thread gets its own connection)::

    store = LabelStore()                          # or LabelStore(path), LabelStore(readonly=True)
    store.reader = "dr_smith"                     # default: the OS user

    # what the files say (scan, imports): source labels, separate from corrections
    store.record_scan(scan_result)                # items + labels from radview.io.scan()
    store.set_source_labels({key: Label("abnormal")}, level="study", source="import:mura-csv")

    # corrections: append-only events; each returns the Correction it appended
    c = store.set_label(study.key, "normal", level="study", reason="wrong_label",
                        note="old fracture", model="mura", model_version="1.0",
                        model_output="abnormal", exclude_from_training=False)
    b = store.set_boxes(ref.key, [Box(10, 20, 30, 40)], reason="wrong_label")
    store.exclude(ref.key, level="image", reason="bad_image")
    u = store.undo(c.id)                          # appends the inverse event; c stays in history

    # the current state (latest active correction wins over the source label)
    store.label(study.key, "study") -> Label | None      (Label.source == "correction" if corrected)
    store.labels("image") -> {key: Label};  store.state(key, level) -> ItemState
    store.excluded_keys("image"); store.history(key, level) -> [Correction]

    # retraining queue
    store.pending() -> [Correction];  store.queue_summary() -> QueueSummary (per class/reader)
    store.mark_consumed([e.id for e in store.pending()], run_id="run-2024-05-01")

    # prediction cache
    store.put_predictions(preds);  store.get_predictions("mura", "1.0", keys) -> {key: Prediction}

    # other: store.items(level) (what record_scan learnt), store.source_label(key, level),
    # store.correction(id), store.last_event_id() (poll it to see other programs' writes),
    # store.import_events(records) (radview JSON history), store.backup(dest),
    # store.integrity_check(), store.close() / `with LabelStore() as store:`

Derivation: events are ordered by id; an event is active unless an active event undoes it
(undoing an undo re-activates the original, which is how redo works); the current value of
kind 'label' / 'boxes' is the latest active plain event's new value, else the source label's.
ItemState carries label, source, corrected, excluded, boxes_known, last_event_id, last_reader.
The queue: active plain events not consumed by a run, plus undos of consumed events.
What a run consumed is kept in a separate table, so the event log itself is append-only
(SQL triggers refuse UPDATE and DELETE on it).

Concurrency: WAL, one connection per thread, write transactions BEGIN IMMEDIATE retried while
another writer holds the lock (timeout s, default 60): the app and the CLI can write at once.
synchronous=FULL: a correction whose call returned survives a crash (~4 ms per correction).

Levels: 'study' items are keyed by Study.key, 'image' items by ImageRef.key; boxes exist at image
level only. Errors: read-only files or folders, a full disk, a corrupt or foreign file raise
StoreError naming the file and the reason; the file is never overwritten or recreated. Bad
arguments (unknown reason code or level, undoing twice) raise ValueError.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from radview.store import derive, predictions as _pred
from radview.store.db import Database
from radview.store.errors import StoreError, describe
from radview.store.model import (Correction, ItemState, QueueSummary, Value, box_from_dict,
                                  boxes_from_json,
                                  boxes_to_json, check_level, check_reason, default_reader,
                                  output_from_json, output_to_json, utc_now, value_from_json,
                                  value_to_json)
from radview.types import Box, Label, Prediction, ScanResult

_CHUNK = 500
#: label sources that give every box of an image (no box there = no finding)
BOX_SOURCES = frozenset({"rsna-csv", "coco", "import:rsna", "import:coco"})
_EVENT_COLS = ("c.id, c.uid, c.key, c.level, c.kind, c.old_value, c.new_value, c.reader, c.time,"
               " c.reason, c.note, c.model, c.model_version, c.model_output,"
               " c.exclude_from_training, c.inverse_of, k.run_id")
_EVENT_FROM = " FROM corrections c LEFT JOIN consumed k ON k.event_id = c.id"


def _as_key(item: Any) -> str:
    key = getattr(item, "key", item)
    if not isinstance(key, str) or not key:
        raise ValueError(f"an item key is a non-empty str (ImageRef.key or Study.key), not {item!r}")
    return key


def _event(row: Sequence[Any]) -> Correction:
    (id_, uid, key, level, kind, old, new, reader, time, reason, note, model, version, output,
     exclude, inverse_of, run_id) = row
    return Correction(id=id_, uid=uid, key=key, level=level, kind=kind,
                      old_value=value_from_json(kind, old), new_value=value_from_json(kind, new),
                      reader=reader, time=time, reason=reason, note=note, model=model,
                      model_version=version, model_output=output_from_json(output),
                      exclude_from_training=bool(exclude), inverse_of=inverse_of,
                      consumed_by_run=run_id)


def _source(row: Sequence[Any] | None) -> tuple[Label | None, bool]:
    if row is None:
        return None, False
    value, boxes, source = row
    parsed = boxes_from_json(boxes)
    return Label(value=value, boxes=parsed or (), source=source), parsed is not None


class LabelStore:
    """The label store (see the module docstring for a tour). Use as a context manager or call
    close(). path=None uses radview.paths.store_db_path() (under RADVIEW_HOME).
    readonly=True opens the file for reading only (e.g. on a read-only share)."""

    def __init__(self, path: str | os.PathLike | None = None, *, reader: str | None = None,
                 readonly: bool = False, timeout: float = 60.0,
                 pragmas: dict[str, Any] | None = None) -> None:
        if path is None:
            from radview.paths import store_db_path
            try:
                path = store_db_path()
            except OSError as exc:  # RADVIEW_HOME cannot be created
                raise StoreError(os.environ.get("RADVIEW_HOME", "<user data folder>"),
                                 f"cannot create the data folder ({exc})", action="open") from exc
        self._db = Database(path, timeout=timeout, readonly=readonly, pragmas=pragmas)
        self.reader: str = reader or default_reader()

    # ------------------------------------------------------------------ lifetime
    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def readonly(self) -> bool:
        return self._db.readonly

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r}{', readonly=True' if self.readonly else ''})"

    def integrity_check(self) -> str:
        """'ok' when SQLite finds the file sound, else its list of problems."""
        return self._db.integrity_check()

    def backup(self, dest: str | os.PathLike) -> Path:
        """A consistent copy of the store (safe while others write) at dest."""
        dest = Path(dest)
        tmp = dest.with_name(dest.name + ".part")
        try:
            target = sqlite3.connect(str(tmp))
            try:
                self._db.conn().backup(target)
            finally:
                target.close()
            shutil.move(str(tmp), str(dest))
        except (sqlite3.Error, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise describe(exc, dest, "write a backup") from exc
        return dest

    # ------------------------------------------------------------------ source labels, items
    def set_source_labels(self, labels: Mapping[Any, Label], level: str = "image", *,
                          source: str | None = None, boxes_known: bool | None = None,
                          replace: bool = True) -> int:
        """Record labels that come from files (scans, imports). They never enter the queue;
        corrections win over them. source overrides each Label.source. boxes_known: whether the
        labels say which boxes exist (True for detection sources, where no box = negative);
        None = known iff the label has boxes. At study level boxes are ignored. replace=False keeps an existing source label
        that came from an import (source starting with 'import')."""
        check_level(level)
        now = utc_now()
        rows = []
        for item, label in labels.items():
            known = bool(label.boxes) if boxes_known is None else boxes_known
            if level != "image":
                known = False  # boxes live on images (a one-image study's boxes are its view's)
            rows.append((level, _as_key(item), label.value,
                         boxes_to_json(label.boxes) if known else None,
                         source if source is not None else label.source, now))
        sql = ("INSERT INTO source_labels (level, key, value, boxes, source, time) VALUES (?,?,?,?,?,?)"
               " ON CONFLICT(level, key) DO UPDATE SET value = excluded.value, boxes = excluded.boxes,"
               " source = excluded.source, time = excluded.time")
        if not replace:
            sql += " WHERE source_labels.source NOT LIKE 'import%'"
        self._db.write(lambda c: c.executemany(sql, rows), "save source labels")
        return len(rows)

    def record_scan(self, result: ScanResult) -> int:
        """Remember the studies and views of a scan (patient, study type, size, modality) and
        their labels as source labels. Labels imported with import-labels are kept (imports win
        over what a folder layout says). Returns the number of items recorded."""
        items: list[tuple] = []
        study_labels: dict[str, Label] = {}
        image_labels: dict[str, Label] = {}
        for st in result.studies:
            items.append(("study", st.key, None, st.patient, st.study_type, None, None,
                          _json({"layout": st.layout, "split": st.split,
                                 "description": st.description})))
            if st.label is not None:
                study_labels[st.key] = st.label
            for v in st.views:
                items.append(("image", v.ref.key, st.key, st.patient, st.study_type,
                              v.columns or None, v.rows or None,
                              _json({"modality": v.modality, "body_part": v.body_part,
                                     "series_uid": v.series_uid, "instance": v.instance})))
                if v.label is not None:
                    image_labels[v.ref.key] = v.label
        self.set_items(items)
        self.set_source_labels(study_labels, "study", replace=False)
        # detection sources list every box: an image without boxes there is a known negative
        boxed = {k: v for k, v in image_labels.items() if v.source in BOX_SOURCES}
        other = {k: v for k, v in image_labels.items() if v.source not in BOX_SOURCES}
        self.set_source_labels(boxed, "image", replace=False, boxes_known=True)
        self.set_source_labels(other, "image", replace=False)
        return len(items)

    def set_items(self, items: Iterable[tuple]) -> int:
        """Low level: rows (level, key, study_key, patient, study_type, width, height, meta_json)."""
        rows = [tuple(r) for r in items]
        sql = ("INSERT INTO items (level, key, study_key, patient, study_type, width, height, meta)"
               " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(level, key) DO UPDATE SET"
               " study_key = excluded.study_key, patient = excluded.patient,"
               " study_type = excluded.study_type, width = excluded.width,"
               " height = excluded.height, meta = excluded.meta")
        self._db.write(lambda c: c.executemany(sql, rows), "save items")
        return len(rows)

    def items(self, level: str = "image", keys: Iterable[Any] | None = None) -> dict[str, dict]:
        """What record_scan learnt about items: {key: {study_key, patient, study_type, width,
        height, meta}}."""
        check_level(level)
        sql = ("SELECT key, study_key, patient, study_type, width, height, meta FROM items"
               " WHERE level = ?")

        def read(conn: sqlite3.Connection) -> dict[str, dict]:
            out = {}
            for key, study_key, patient, study_type, w, h, meta in self._select(conn, sql, [level], keys):
                out[key] = {"study_key": study_key, "patient": patient, "study_type": study_type,
                            "width": w, "height": h, "meta": _unjson(meta)}
            return out
        return self._db.read(read)

    def source_label(self, item: Any, level: str = "image") -> Label | None:
        check_level(level)
        row = self._db.read(lambda c: c.execute(
            "SELECT value, boxes, source FROM source_labels WHERE level = ? AND key = ?",
            (level, _as_key(item))).fetchone())
        return _source(row)[0]

    # ------------------------------------------------------------------ corrections
    def set_label(self, item: Any, value: str | None, *, level: str = "image",
                  reason: str = "wrong_label", note: str = "", model: str = "",
                  model_version: str = "", model_output: Value = None,
                  exclude_from_training: bool = False, reader: str | None = None) -> Correction:
        """Append a label correction (value: a class name, or None to clear). The old value is
        the current label just before. Returns the appended Correction."""
        return self._append(_as_key(item), check_level(level), "label", value, reason, note,
                            model, model_version, model_output, exclude_from_training, reader)

    def set_boxes(self, item: Any, boxes: Iterable[Box], *, reason: str = "wrong_label",
                  note: str = "", model: str = "", model_version: str = "",
                  model_output: Value = None, exclude_from_training: bool = False,
                  reader: str | None = None) -> Correction:
        """Append a boxes correction for an image: boxes is the whole new list (empty = no
        finding). model_output: the predicted box(es) shown, e.g. when accepting/rejecting one."""
        boxes = tuple(boxes)
        for b in boxes:
            if not isinstance(b, Box):
                raise TypeError(f"boxes must be radview.types.Box, not {type(b).__name__}")
        return self._append(_as_key(item), "image", "boxes", boxes, reason, note, model,
                            model_version, model_output, exclude_from_training, reader)

    def exclude(self, item: Any, level: str = "image", excluded: bool = True, *,
                reason: str = "bad_image", note: str = "", reader: str | None = None) -> Correction:
        """Mark an item to be left out of (or put back into) training, keeping its label: appends
        a label event whose new value is the current one."""
        key = _as_key(item)
        check_level(level)
        return self._append(key, level, "label", _SAME, reason, note, "", "", None, excluded, reader)

    def _append(self, key: str, level: str, kind: str, value: Value, reason: str, note: str,
                model: str, model_version: str, model_output: Value, exclude: bool,
                reader: str | None) -> Correction:
        check_reason(reason)
        if value is not _SAME:
            value_to_json(kind, value)  # type check before the transaction
        reader = reader or self.reader

        def txn(conn: sqlite3.Connection) -> Correction:
            before = self._state_in(conn, key, level)
            current = _current(before, kind)
            new = current if value is _SAME else value
            cur = conn.execute(
                "INSERT INTO corrections (uid, level, key, kind, old_value, new_value, model_output,"
                " reader, time, reason, note, model, model_version, exclude_from_training)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (uuid.uuid4().hex, level, key, kind, value_to_json(kind, current),
                 value_to_json(kind, new), output_to_json(model_output), reader, utc_now(),
                 reason, note or "", model or "", model_version or "", int(bool(exclude))))
            return self._event_in(conn, cur.lastrowid)
        return self._db.write(txn, "save the correction")

    def undo(self, event_id: int, *, note: str = "", reader: str | None = None) -> Correction:
        """Append the inverse of event event_id (which may itself be an undo: that redoes).
        History is never rewritten. Raises ValueError if it is unknown or already undone."""
        reader = reader or self.reader

        def txn(conn: sqlite3.Connection) -> Correction:
            target = self._event_in(conn, event_id)
            undoer = conn.execute("SELECT id FROM corrections WHERE inverse_of = ?",
                                  (event_id,)).fetchone()
            if undoer is not None:
                raise ValueError(f"correction #{event_id} was already undone by #{undoer[0]}")
            events = self._events_in(conn, target.key, target.level)
            src, known = _source(self._source_row(conn, target.key, target.level))
            before = derive.fold(target.key, target.level, src, known, events)
            probe = Correction(id=max(e.id for e in events) + 1, uid="", key=target.key,
                               level=target.level, kind=target.kind, old_value=None,
                               new_value=None, reader=reader, time="", reason=target.reason,
                               inverse_of=event_id)
            after = derive.fold(target.key, target.level, src, known, [*events, probe])
            text = f"undo of #{event_id}" + (f": {note}" if note else "")
            cur = conn.execute(
                "INSERT INTO corrections (uid, level, key, kind, old_value, new_value, model_output,"
                " reader, time, reason, note, model, model_version, exclude_from_training,"
                " inverse_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (uuid.uuid4().hex, target.level, target.key, target.kind,
                 value_to_json(target.kind, _current(before, target.kind)),
                 value_to_json(target.kind, _current(after, target.kind)),
                 output_to_json(target.model_output), reader, utc_now(), target.reason, text,
                 target.model, target.model_version, int(after.excluded), event_id))
            return self._event_in(conn, cur.lastrowid)
        return self._db.write(txn, "save the undo")

    def correction(self, event_id: int) -> Correction:
        """One event by id (ValueError if unknown)."""
        return self._db.read(lambda c: self._event_in(c, event_id))

    def history(self, item: Any = None, level: str | None = None) -> list[Correction]:
        """Events in order of appending: of one item (item and level), of a level, or all."""
        sql, args = "SELECT " + _EVENT_COLS + _EVENT_FROM, []
        where = []
        if level is not None:
            where.append("c.level = ?")
            args.append(check_level(level))
        if item is not None:
            where.append("c.key = ?")
            args.append(_as_key(item))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY c.id"
        return self._db.read(lambda c: [_event(r) for r in c.execute(sql, args)])

    def last_event_id(self) -> int:
        """Id of the newest event (0 if none): poll it to notice another program's changes."""
        return self._db.read(lambda c: c.execute(
            "SELECT coalesce(max(id), 0) FROM corrections").fetchone()[0])

    # ------------------------------------------------------------------ current state
    def state(self, item: Any, level: str = "image") -> ItemState:
        key = _as_key(item)
        check_level(level)
        return self._db.read(lambda c: self._state_in(c, key, level))

    def states(self, level: str = "image", keys: Iterable[Any] | None = None) -> dict[str, ItemState]:
        """ItemState of the given items (or of every item with a source label or an event)."""
        check_level(level)
        wanted = None if keys is None else [_as_key(k) for k in keys]

        def read(conn: sqlite3.Connection) -> dict[str, ItemState]:
            sources = {r[0]: _source(r[1:]) for r in self._select(
                conn, "SELECT key, value, boxes, source FROM source_labels WHERE level = ?",
                [level], wanted)}
            events: dict[str, list[Correction]] = {}
            for r in self._select(conn, "SELECT " + _EVENT_COLS + _EVENT_FROM + " WHERE c.level = ?",
                                  [level], wanted, column="c.key"):
                e = _event(r)
                events.setdefault(e.key, []).append(e)
            out = {}
            for key in (wanted if wanted is not None else sorted(set(sources) | set(events))):
                src, known = sources.get(key, (None, False))
                out[key] = derive.fold(key, level, src, known, events.get(key, ()))
            return out
        return self._db.read(read)

    def label(self, item: Any, level: str = "image") -> Label | None:
        """The current label (Label.source == 'correction' when a correction is active)."""
        return self.state(item, level).label

    def labels(self, level: str = "image", keys: Iterable[Any] | None = None) -> dict[str, Label]:
        """{key: current Label} for items that have one."""
        return {k: s.label for k, s in self.states(level, keys).items() if s.label is not None}

    def excluded_keys(self, level: str = "image") -> set[str]:
        return {k for k, s in self.states(level).items() if s.excluded}

    def corrected_keys(self, level: str = "image") -> set[str]:
        return {k for k, s in self.states(level).items() if s.corrected}

    # ------------------------------------------------------------------ queue
    def pending(self, level: str | None = None) -> list[Correction]:
        """The retraining queue: active corrections no training run has consumed yet (an undo
        is listed only if what it undoes had been consumed), oldest first."""
        events = self.history(level=level)
        return derive.pending(events)

    def queue_summary(self, level: str | None = None) -> QueueSummary:
        """Counts of the pending corrections per class (new label value, or 'boxes: N' /
        'no boxes'), reader, kind and reason."""
        items = self.pending(level)
        by_class: dict[str, int] = {}
        by_reader: dict[str, int] = {}
        by_kind: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for e in items:
            if e.kind == "label":
                cls = "(none)" if e.new_value is None else str(e.new_value)
            else:
                cls = f"boxes: {len(e.new_value)}" if e.new_value else "no boxes"
            for d, k in ((by_class, cls), (by_reader, e.reader), (by_kind, e.kind),
                         (by_reason, e.reason)):
                d[k] = d.get(k, 0) + 1
        return QueueSummary(total=len(items), by_class=by_class, by_reader=by_reader,
                            by_kind=by_kind, by_reason=by_reason,
                            excluded=sum(e.exclude_from_training for e in items))

    def mark_consumed(self, event_ids: Iterable[int], run_id: str, note: str = "") -> int:
        """Record that training run run_id used these events (they leave the queue). Events
        already consumed by a run keep their first run. Returns how many were newly marked."""
        ids = sorted({int(i) for i in event_ids})
        if not run_id:
            raise ValueError("run_id must be a non-empty string")
        now = utc_now()

        def txn(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT OR IGNORE INTO training_runs (run_id, time, note) VALUES (?,?,?)",
                         (run_id, now, note))
            n = 0
            for i in ids:
                if conn.execute("SELECT 1 FROM corrections WHERE id = ?", (i,)).fetchone() is None:
                    raise ValueError(f"no correction #{i} in {self.path}")
                n += conn.execute("INSERT OR IGNORE INTO consumed (event_id, run_id, time)"
                                  " VALUES (?,?,?)", (i, run_id, now)).rowcount
            return n
        return self._db.write(txn, "mark corrections consumed")

    def consumed_by(self, run_id: str) -> list[int]:
        """Event ids a training run consumed."""
        return self._db.read(lambda c: [r[0] for r in c.execute(
            "SELECT event_id FROM consumed WHERE run_id = ? ORDER BY event_id", (run_id,))])

    # ------------------------------------------------------------------ prediction cache
    def put_predictions(self, preds: Iterable[Prediction], *, include_errors: bool = False) -> int:
        """Cache predictions (replacing older ones of the same model, version and image).
        Predictions with an error are skipped unless include_errors."""
        preds = list(preds)
        return self._db.write(lambda c: _pred.put(c, preds, include_errors), "cache predictions")

    def get_predictions(self, model: str, version: str, keys: Iterable[Any] | None = None, *,
                        check_files: bool = True) -> dict[str, Prediction]:
        """{ImageRef.key: Prediction} cached for model/version (keys: ImageRefs or keys; None =
        all). Entries whose file changed on disk since are left out when check_files."""
        wanted = None if keys is None else [_as_key(k) for k in keys]
        return self._db.read(lambda c: _pred.get(c, model, version, wanted, check_files))

    def clear_predictions(self, model: str | None = None, version: str | None = None) -> int:
        return self._db.write(lambda c: _pred.clear(c, model, version), "clear predictions")

    # ------------------------------------------------------------------ history import
    def import_events(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append events recorded elsewhere (full JSON export): dicts with the Correction fields
        plus 'inverse_of_uid' instead of inverse_of. Events whose uid is already here are
        skipped, so importing twice changes nothing. 'consumed_by_run' is restored.
        Returns the number appended."""
        recs = list(records)

        def txn(conn: sqlite3.Connection) -> int:
            n = 0
            for r in recs:
                if conn.execute("SELECT 1 FROM corrections WHERE uid = ?", (r["uid"],)).fetchone():
                    continue
                kind = r["kind"]
                inverse = None
                if r.get("inverse_of_uid"):
                    row = conn.execute("SELECT id FROM corrections WHERE uid = ?",
                                       (r["inverse_of_uid"],)).fetchone()
                    if row is None:
                        raise ValueError(f"event {r['uid']} undoes {r['inverse_of_uid']}, "
                                         "which is neither here nor earlier in the file")
                    inverse = row[0]
                check_reason(r["reason"])
                cur = conn.execute(
                    "INSERT INTO corrections (uid, level, key, kind, old_value, new_value,"
                    " model_output, reader, time, reason, note, model, model_version,"
                    " exclude_from_training, inverse_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r["uid"], check_level(r["level"]), r["key"], kind,
                     value_to_json(kind, _value_in(kind, r.get("old_value"))),
                     value_to_json(kind, _value_in(kind, r.get("new_value"))),
                     output_to_json(_output_in(r.get("model_output"))), r["reader"], r["time"],
                     r["reason"], r.get("note", ""), r.get("model", ""), r.get("model_version", ""),
                     int(bool(r.get("exclude_from_training"))), inverse))
                run = r.get("consumed_by_run")
                if run:
                    conn.execute("INSERT OR IGNORE INTO training_runs (run_id, time) VALUES (?,?)",
                                 (run, r["time"]))
                    conn.execute("INSERT INTO consumed (event_id, run_id, time) VALUES (?,?,?)",
                                 (cur.lastrowid, run, r["time"]))
                n += 1
            return n
        return self._db.write(txn, "import corrections")

    # ------------------------------------------------------------------ internals
    def _select(self, conn: sqlite3.Connection, sql: str, args: list, keys: list[str] | None,
                column: str = "key") -> list[tuple]:
        if keys is None:
            return conn.execute(sql, args).fetchall()
        rows: list[tuple] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            rows += conn.execute(f"{sql} AND {column} IN ({','.join('?' * len(chunk))})",
                                 [*args, *chunk]).fetchall()
        return rows

    def _source_row(self, conn: sqlite3.Connection, key: str, level: str) -> tuple | None:
        return conn.execute("SELECT value, boxes, source FROM source_labels"
                            " WHERE level = ? AND key = ?", (level, key)).fetchone()

    def _events_in(self, conn: sqlite3.Connection, key: str, level: str) -> list[Correction]:
        return [_event(r) for r in conn.execute(
            "SELECT " + _EVENT_COLS + _EVENT_FROM + " WHERE c.level = ? AND c.key = ? ORDER BY c.id",
            (level, key))]

    def _event_in(self, conn: sqlite3.Connection, event_id: int) -> Correction:
        row = conn.execute("SELECT " + _EVENT_COLS + _EVENT_FROM + " WHERE c.id = ?",
                           (int(event_id),)).fetchone()
        if row is None:
            raise ValueError(f"no correction #{event_id} in {self.path}")
        return _event(row)

    def _state_in(self, conn: sqlite3.Connection, key: str, level: str) -> ItemState:
        src, known = _source(self._source_row(conn, key, level))
        return derive.fold(key, level, src, known, self._events_in(conn, key, level))


class _Same:
    def __repr__(self) -> str:
        return "<same value>"


_SAME: Any = _Same()


def _current(state: ItemState, kind: str) -> Value:
    if state.label is None:
        return () if kind == "boxes" else None
    return state.label.boxes if kind == "boxes" else state.label.value


def _value_in(kind: str, value: Any) -> Value:
    """A value from JSON (boxes as dicts) -> store value."""
    if kind == "boxes":
        return tuple(box_from_dict(d) for d in (value or ()))
    return value


def _output_in(value: Any) -> Value:
    if isinstance(value, list):
        return tuple(box_from_dict(d) for d in value)
    return value


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def _unjson(text: str | None) -> Any:
    return json.loads(text) if text else {}
