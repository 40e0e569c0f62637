"""LabelStore: labels, boxes, the append-only correction log, the retraining queue and the
prediction cache, in one SQLite file (default radview.paths.store_db_path()).

Quick tour (every method is safe to call from any thread; each thread gets its own connection)::

    store = LabelStore()                          # or LabelStore(path), LabelStore(readonly=True)
    store.reader = "dr_smith"                     # default: the OS user
    # a team on one PostgreSQL database: LabelStore("postgresql://user@host:5432/labels") or
    # RADVIEW_STORE=postgresql://... (radview.store.backends); the same API on both
    store.set_reader("dr_jones", "adjudicator")   # roles: reader (default), adjudicator, admin
    store.readers(); store.role_of("dr_jones")    # every Correction records .role when written

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

    # team reading (issue 16): projects, worklists, blinded reads, adjudication
    # (radview.store.worklists, radview.store.reads; rules in radview.store.team)
    store.create_project("p", reads=2, blinded=True, hide_model=True); store.add_to_project("p")
    store.assign("p", ["alice", "bob"]); store.worklist("p", "alice"); store.progress("p")
    store.record_read("p", key, "normal", reader="alice"); store.disputed("p")
    store.adjudicate("p", key, "abnormal", note="why", reader="dana")  # the final label
    store.conflicts(key, level)   # concurrent corrections by two readers (set_label(seen=...))

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

import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Iterable

from radview import spaces as _spaces
from radview.store import backends as _backends, derive, keys as _keys, queue as _queue
from radview.store.errors import describe
from radview.store.items import ItemsMixin
from radview.store.measurements import MeasurementsMixin
from radview.store.model import (LEVELS, Correction, ItemState, QueueSummary, Value, check_level,
                                  check_reason, check_role, default_reader, output_to_json, utc_now,
                                  value_to_json)
from radview.store.rows import CHUNK, EVENT_COLS, EVENT_FROM, as_key, event_row, source_row
from radview.store.undo import UndoMixin
from radview.store.reads import ReadsMixin
from radview.store.worklists import WorklistsMixin
from radview.types import Box, Label

# kept importable from here (older callers)
from radview.store.rows import BOX_SOURCES  # noqa: E402,F401


def _check_value(value: Value, space: str, key: str) -> None:
    sp = _spaces.get_space(space)
    if value is not None and sp is not None and sp.classes and value not in sp.classes:
        raise ValueError(f"label {value!r} of {key} is not in its label space {sp.text}")


class LabelStore(ItemsMixin, UndoMixin, MeasurementsMixin, WorklistsMixin, ReadsMixin):
    """The label store (see the module docstring for a tour). Use as a context manager or call
    close(). path=None uses radview.paths.store_db_path() (under RADVIEW_HOME).
    readonly=True opens the file for reading only (e.g. on a read-only share)."""

    def __init__(self, path: str | os.PathLike | None = None, *, reader: str | None = None,
                 readonly: bool = False, timeout: float = 60.0,
                 pragmas: dict[str, Any] | None = None) -> None:
        # path None: RADVIEW_STORE, the settings entry, else the SQLite file (store.backends)
        self._db = _backends.open_database(_backends.store_target(path), timeout=timeout,
                                           readonly=readonly, pragmas=pragmas)
        self.reader: str = reader or default_reader()
        self._moves_cache: tuple[int, dict[str, dict[str, str]]] | None = None
        self._ids = _keys.IdCache()
        self.spaces()  # the folder and CSV spaces recorded by scans become known here
        if not readonly:
            self._backfill_item_keys()

    # ------------------------------------------------------------------ lifetime
    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def readonly(self) -> bool:
        return self._db.readonly

    def close(self) -> None:
        """Close the store (every thread's connection). A store from open_store() is closed
        for the whole process; the next open_store() opens a fresh one."""
        self._db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed

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
            if hasattr(self._db, "backup_sqlite"):  # PostgreSQL: a SQLite copy of every table
                tmp.unlink(missing_ok=True)
                self._db.backup_sqlite(tmp)
                shutil.move(str(tmp), str(dest))
                return dest
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

    # ------------------------------------------------------------------ corrections
    def set_label(self, item: Any, value: str | None, *, level: str = "image",
                  reason: str = "wrong_label", note: str = "", model: str = "",
                  model_version: str = "", model_output: Value = None,
                  exclude_from_training: bool = False, reader: str | None = None,
                  space: str | None = None, seen: int | None = None) -> Correction:
        """Append a label correction (value: a class name, or None to clear). The old value is
        the current label just before. space: the label space of the value (None: the item's
        own, i.e. its current label's or what the scan recorded); a value that is not a class
        of a known space raises ValueError. seen: the newest event id of the item the reader
        had seen when deciding (ItemState.newest_event_id, 0 for none): when another reader
        appended an event since, the new event records it in .conflict_with (both are kept;
        `conflicts()` lists them). Returns the appended Correction."""
        return self._append(as_key(item), check_level(level), "label", value, reason, note,
                            model, model_version, model_output, exclude_from_training, reader,
                            space, seen=seen)

    def set_boxes(self, item: Any, boxes: Iterable[Box], *, reason: str = "wrong_label",
                  note: str = "", model: str = "", model_version: str = "",
                  model_output: Value = None, exclude_from_training: bool = False,
                  reader: str | None = None, space: str | None = None,
                  seen: int | None = None) -> Correction:
        """Append a boxes correction for an image: boxes is the whole new list (empty = no
        finding). model_output: the predicted box(es) shown, e.g. when accepting/rejecting one.
        space, seen: as for set_label."""
        boxes = tuple(boxes)
        for b in boxes:
            if not isinstance(b, Box):
                raise TypeError(f"boxes must be radview.types.Box, not {type(b).__name__}")
        return self._append(as_key(item), "image", "boxes", boxes, reason, note, model,
                            model_version, model_output, exclude_from_training, reader, space,
                            seen=seen)

    def exclude(self, item: Any, level: str = "image", excluded: bool = True, *,
                reason: str = "bad_image", note: str = "", reader: str | None = None) -> Correction:
        """Mark an item to be left out of (or put back into) training, keeping its label: appends
        a label event whose new value is the current one."""
        key = as_key(item)
        check_level(level)
        return self._append(key, level, "label", _SAME, reason, note, "", "", None, excluded,
                            reader, None)

    def _append(self, key: str, level: str, kind: str, value: Value, reason: str, note: str,
                model: str, model_version: str, model_output: Value, exclude: bool,
                reader: str | None, space: str | None, *, seen: int | None = None,
                project: str = "") -> Correction:
        check_reason(reason)
        if value is not _SAME:
            value_to_json(kind, value)  # type check before the transaction
        reader = reader or self.reader
        item = self._ids(key)  # hashing a file (once): before the write lock, not inside it
        return self._db.write(lambda conn: self._append_in(
            conn, key, level, kind, value, reason, note, model, model_version, model_output,
            exclude, reader, space, item=item, seen=seen, project=project), "save the correction")

    def _append_in(self, conn: sqlite3.Connection, key: str, level: str, kind: str, value: Value,
                   reason: str, note: str, model: str, model_version: str, model_output: Value,
                   exclude: bool, reader: str, space: str | None, *, item: str,
                   seen: int | None = None, project: str = "") -> Correction:
        """_append inside a write transaction (the reads module appends final labels with it)."""
        before = self._state_in(conn, key, level)
        current = _current(before, kind)
        new = current if value is _SAME else value
        sp = space if space is not None else self._space_in(conn, key, level, before)
        if kind == "label" and value is not _SAME:
            _check_value(new, sp, key)
        if item != key:
            conn.execute("INSERT OR IGNORE INTO item_keys (level, key, item, size, mtime_ns)"
                         " VALUES ('image',?,?,?,?)", (key, item, *_keys._stat(_keys.split_key(key)[0])))
        conflict = None
        if seen is not None:  # an event of another reader the writer had not seen
            unseen = [e.id for e in self._events_in(conn, key, level)
                      if e.id > int(seen) and e.reader != reader]
            conflict = max(unseen) if unseen else None
        cur = conn.execute(
            "INSERT INTO corrections (uid, level, key, kind, old_value, new_value, model_output,"
            " reader, time, reason, note, model, model_version, exclude_from_training, space,"
            " reader_role, project, seen_event, conflict_with)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (uuid.uuid4().hex, level, key, kind, value_to_json(kind, current),
             value_to_json(kind, new), output_to_json(model_output), reader, utc_now(),
             reason, note or "", model or "", model_version or "", int(bool(exclude)), sp,
             self._role_in(conn, reader), project or "",
             None if seen is None else int(seen), conflict))
        return self._event_in(conn, cur.lastrowid)

    def conflicts(self, item: Any = None, level: str | None = None) -> list[tuple[Correction, Correction]]:
        """(event, the other reader's event it had not seen) for every conflicting event of an
        item (or of the whole store), oldest first: two readers who corrected the same item at
        the same moment. Both events are in the history; the later one is the current label."""
        events = self.history(item, level)
        by_id = {e.id: e for e in events}
        out = []
        for e in events:
            if e.conflict_with is not None:
                other = by_id.get(e.conflict_with) or self.correction(e.conflict_with)
                out.append((e, other))
        return out

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
            src, known = source_row(self._source_row(conn, target.key, target.level))
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
                " inverse_of, space, reader_role, project) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (uuid.uuid4().hex, target.level, target.key, target.kind,
                 value_to_json(target.kind, _current(before, target.kind)),
                 value_to_json(target.kind, _current(after, target.kind)),
                 output_to_json(target.model_output), reader, utc_now(), target.reason, text,
                 target.model, target.model_version, int(after.excluded), event_id,
                 target.space, self._role_in(conn, reader), target.project))
            return self._event_in(conn, cur.lastrowid)
        return self._db.write(txn, "save the undo")

    def correction(self, event_id: int) -> Correction:
        """One event by id (ValueError if unknown)."""
        return self._db.read(lambda c: self._event_in(c, event_id))

    def history(self, item: Any = None, level: str | None = None, *,
                reader: str | None = None, space: str | None = None) -> list[Correction]:
        """Events in order of appending: of one item (item and level; its events made at
        earlier locations too), of a level, of a reader or a label space, or all."""
        key = None if item is None else as_key(item)
        if level is not None:
            check_level(level)

        def read(conn: sqlite3.Connection) -> list[Correction]:
            sql, args, where = "SELECT " + EVENT_COLS + EVENT_FROM, [], []
            if level is not None:
                where.append("c.level = ?")
                args.append(level)
            if reader is not None:
                where.append("c.reader = ?")
                args.append(reader)
            if space is not None:
                where.append(_queue.SPACE_SQL + " = ?")
                args.append(space)
            if where:
                sql += " WHERE " + " AND ".join(where)
            if key is None:
                moved = self._moved(conn)
                return [event_row(r, moved.get(r[3])) for r in conn.execute(sql + " ORDER BY c.id", args)]
            out: list[Correction] = []
            for lv in ([level] if level is not None else list(LEVELS)):
                moved = self._moved(conn).get(lv, {})
                names = list(_keys.aliases([key], moved))
                rows = self._select(conn, sql + (" AND" if where else " WHERE 1 AND") +
                                    " c.level = ?", [*args, lv], names, column="c.key")
                out += [event_row(r, moved) for r in rows]
            return sorted(out, key=lambda e: e.id)
        return self._db.read(read)

    def last_event_id(self) -> int:
        """Id of the newest event (0 if none): poll it to notice another program's changes."""
        return self._db.read(lambda c: c.execute(
            "SELECT coalesce(max(id), 0) FROM corrections").fetchone()[0])

    def events_since(self, event_id: int, *, space: str | None = None) -> list[Correction]:
        """Events appended after event_id (by this or any other program), oldest first; only
        those of one label space when given. The incremental feed the GUI follows."""
        sql = "SELECT " + EVENT_COLS + EVENT_FROM + " WHERE c.id > ?"
        args: list[Any] = [int(event_id)]
        if space is not None:
            sql += " AND " + _queue.SPACE_SQL + " = ?"
            args.append(space)

        def read(conn: sqlite3.Connection) -> list[Correction]:
            moved = self._moved(conn)
            return [event_row(r, moved.get(r[3])) for r in conn.execute(sql + " ORDER BY c.id", args)]
        return self._db.read(read)

    # ------------------------------------------------------------------ current state
    def state(self, item: Any, level: str = "image") -> ItemState:
        key = as_key(item)
        check_level(level)
        return self._db.read(lambda c: self._state_in(c, key, level))

    def states(self, level: str = "image", keys: Iterable[Any] | None = None) -> dict[str, ItemState]:
        """ItemState of the given items (or of every item with a source label or an event)."""
        check_level(level)
        wanted = None if keys is None else [as_key(k) for k in keys]

        def read(conn: sqlite3.Connection) -> dict[str, ItemState]:
            sources = {r[0]: source_row(r[1:]) for r in self._select(
                conn, "SELECT key, value, boxes, source, space FROM source_labels WHERE level = ?",
                [level], wanted)}
            moved = self._moved(conn).get(level, {})
            names = None if wanted is None else list(_keys.aliases(wanted, moved))
            events: dict[str, list[Correction]] = {}
            for r in self._select(conn, "SELECT " + EVENT_COLS + EVENT_FROM + " WHERE c.level = ?",
                                  [level], names, column="c.key"):
                e = event_row(r, moved)
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
    def pending(self, level: str | None = None, space: str | Iterable[str] | None = None
                ) -> list[Correction]:
        """The retraining queue: active corrections no training run has consumed yet (an undo
        is listed only if what it undoes had been consumed), oldest first; of one label space
        (or several) when given: a model's queue is
        `pending(space=spaces.comparable_spaces(manifest, store.space_names()))`. In SQL."""
        if level is not None:
            check_level(level)

        def read(conn: sqlite3.Connection) -> list[Correction]:
            ids = _queue.pending_ids(conn, level, space)
            moved = self._moved(conn)
            rows = self._select(conn, "SELECT " + EVENT_COLS + EVENT_FROM + " WHERE 1", [],
                                ids, column="c.id")
            return sorted((event_row(r, moved.get(r[3])) for r in rows), key=lambda e: e.id)
        return self._db.read(read)

    def queue_summary(self, level: str | None = None,
                      space: str | Iterable[str] | None = None) -> QueueSummary:
        """Counts of the pending corrections per class (new label value, or 'boxes: N' /
        'no boxes'), reader, kind and reason; of one label space when given. Counted in SQL."""
        if level is not None:
            check_level(level)
        return self._db.read(lambda c: _queue.summary(c, level, space))

    def release_run(self, run_id: str) -> int:
        """A rolled-back training run gives its corrections back to the queue (the consumed
        marks are state, not history: they are removed; the run stays listed). Returns how
        many events went back."""
        def txn(conn: sqlite3.Connection) -> int:
            n = conn.execute("DELETE FROM consumed WHERE run_id = ?", (run_id,)).rowcount
            conn.execute("UPDATE training_runs SET note = note || ? WHERE run_id = ?",
                         (f" [released {utc_now()}]", run_id))
            return n
        return self._db.write(txn, "return a run's corrections to the queue")

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

    # ------------------------------------------------------------------ internals
    def _select(self, conn: sqlite3.Connection, sql: str, args: list, keys: list[str] | None,
                column: str = "key") -> list[tuple]:
        if keys is None:
            return conn.execute(sql, args).fetchall()
        rows: list[tuple] = []
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i:i + CHUNK]
            rows += conn.execute(f"{sql} AND {column} IN ({','.join('?' * len(chunk))})",
                                 [*args, *chunk]).fetchall()
        return rows

    def _source_row(self, conn: sqlite3.Connection, key: str, level: str) -> tuple | None:
        return conn.execute("SELECT value, boxes, source, space FROM source_labels"
                            " WHERE level = ? AND key = ?", (level, key)).fetchone()

    def _moved(self, conn: sqlite3.Connection) -> dict[str, dict[str, str]]:
        """{level: {old key: new key}} (cached until the moves table grows)."""
        n = conn.execute("SELECT count(*) FROM moves").fetchone()[0]
        if self._moves_cache is None or self._moves_cache[0] != n:
            self._moves_cache = (n, {lv: _keys.moves(conn, lv) for lv in LEVELS} if n else {})
        return self._moves_cache[1]

    def _events_in(self, conn: sqlite3.Connection, key: str, level: str) -> list[Correction]:
        moved = self._moved(conn).get(level, {})
        names = list(_keys.aliases([key], moved))
        rows = self._select(conn, "SELECT " + EVENT_COLS + EVENT_FROM + " WHERE c.level = ?",
                            [level], names, column="c.key")
        return sorted((event_row(r, moved) for r in rows), key=lambda e: e.id)

    def _event_in(self, conn: sqlite3.Connection, event_id: int) -> Correction:
        row = conn.execute("SELECT " + EVENT_COLS + EVENT_FROM + " WHERE c.id = ?",
                           (int(event_id),)).fetchone()
        if row is None:
            raise ValueError(f"no correction #{event_id} in {self.path}")
        return event_row(row, self._moved(conn).get(row[3]))

    # ------------------------------------------------------------------ readers and roles
    def set_reader(self, name: str, role: str = "reader") -> None:
        """Register a reader's role (reader, adjudicator, admin); recorded on their next events."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a reader name is a non-empty str, not {name!r}")
        check_role(role)
        self._db.write(lambda c: c.execute(
            "INSERT INTO readers (name, role, time) VALUES (?,?,?) ON CONFLICT(name) DO UPDATE"
            " SET role = excluded.role, time = excluded.time", (name, role, utc_now())),
            "save the reader's role")

    def readers(self) -> dict[str, str]:
        """{reader name: role} of the registered readers."""
        return self._db.read(lambda c: dict(c.execute(
            "SELECT name, role FROM readers ORDER BY name").fetchall()))

    def role_of(self, reader: str | None = None) -> str:
        """A reader's role (default this store's reader): 'reader' unless registered otherwise."""
        return self._db.read(lambda c: self._role_in(c, reader or self.reader))

    def _role_in(self, conn: sqlite3.Connection, reader: str) -> str:
        row = conn.execute("SELECT role FROM readers WHERE name = ?", (reader,)).fetchone()
        return row[0] if row else "reader"

    def _space_in(self, conn: sqlite3.Connection, key: str, level: str, state: ItemState) -> str:
        """The item's own label space: its current label's, else what the scan recorded."""
        if state.label is not None and state.label.space:
            return state.label.space
        row = conn.execute("SELECT space FROM items WHERE level = ? AND key = ?",
                           (level, key)).fetchone()
        return row[0] if row else ""

    def _state_in(self, conn: sqlite3.Connection, key: str, level: str) -> ItemState:
        src, known = source_row(self._source_row(conn, key, level))
        return derive.fold(key, level, src, known, self._events_in(conn, key, level))


class _Same:
    def __repr__(self) -> str:
        return "<same value>"


_SAME: Any = _Same()


def _current(state: ItemState, kind: str) -> Value:
    if state.label is None:
        return () if kind == "boxes" else None
    return state.label.boxes if kind == "boxes" else state.label.value

