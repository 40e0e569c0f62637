"""One label store per process: `open_store(path=None)` returns the same LabelStore for the same
file every time it is asked (the GUI opens it once and passes it to every panel; workers and
CLI code in the same process share it). Each thread still gets its own SQLite connection, closed
when the thread ends (radview.store.db). `close_stores()` at shutdown closes them all; a store
someone closed is replaced by a fresh one on the next `open_store`.

`read_item(store, key, level)` / `snapshots_of(store).item(key, level)`: an item's state and
history in one read transaction, cached until the store changes (what a label key press reads).
"""
from __future__ import annotations

import collections
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radview.store.labels import LabelStore
from radview.store.model import Correction, ItemState, QueueSummary

_lock = threading.Lock()
_stores: dict[tuple[str, bool], LabelStore] = {}


def _resolve(path: str | os.PathLike | None) -> Path | str:
    """A SQLite file path, or a PostgreSQL URL (RADVIEW_STORE / settings: store.backends)."""
    from radview.store.backends import store_target
    return store_target(path)


def open_store(path: str | os.PathLike | None = None, *, readonly: bool = False,
               reader: str | None = None) -> LabelStore:
    """The process's LabelStore for `path` (default: radview.paths.store_db_path()). A writable
    store also serves readonly requests. Raises StoreError naming the file and the reason."""
    p = _resolve(path)
    with _lock:
        for key in ((str(p), False), (str(p), True)) if readonly else ((str(p), False),):
            store = _stores.get(key)
            if store is not None and not store.closed:
                if reader:
                    store.reader = reader
                return store
        store = LabelStore(p, readonly=readonly, reader=reader)
        _stores[(str(p), readonly)] = store
        return store


def close_stores() -> None:
    """Close every store open_store() opened (call at shutdown; safe to call twice)."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
    for s in stores:
        s.close()


# ---------------------------------------------------------------------- batched, cached reads
# (house, issue 11) What the GUI shows of one item after each key press -- its state and its
# history -- in ONE read transaction, and cached until the store changes.


@dataclass(frozen=True)
class ItemSnapshot:
    """An item as the label panel and the window show it, read in one transaction."""

    key: str
    level: str
    state: ItemState
    history: tuple[Correction, ...]


def read_item(store: LabelStore, item: Any, level: str = "image") -> ItemSnapshot:
    """The item's ItemState and its history (the same events the state was folded from, its
    events at earlier locations too), in one read transaction."""
    from radview.store import derive
    from radview.store.model import check_level
    from radview.store.rows import as_key, source_row

    key = as_key(item)
    check_level(level)

    def read(conn) -> ItemSnapshot:
        src, known = source_row(store._source_row(conn, key, level))
        events = store._events_in(conn, key, level)
        return ItemSnapshot(key, level, derive.fold(key, level, src, known, events), tuple(events))

    return store._db.read(read)


class Snapshots:
    """ItemSnapshots of one store, cached until the store changes: a write on this thread's
    connection (sqlite3 `total_changes`: no SQL) or a commit by any other connection, thread or
    program (`PRAGMA data_version`: one statement, no transaction) drops the whole cache, so a
    hit is always what a fresh read would return. Used from the thread that made it (the GUI
    thread); other threads, and PostgreSQL stores, read through uncached.

        snaps = snapshots_of(store)
        snaps.item(key, "study").state.label     # one read transaction, then cached
    """

    def __init__(self, store: LabelStore, max_items: int = 256) -> None:
        self.store = store
        self.max_items = max(1, int(max_items))
        self.thread = threading.get_ident()
        self._items: collections.OrderedDict[tuple[str, str], ItemSnapshot] = collections.OrderedDict()
        self._token: tuple[int, int] | None = None
        self.hits = self.misses = 0

    def _fresh_token(self) -> tuple[int, int] | None:
        """(writes by this connection, commits by others) now, or None if it cannot be told."""
        db = getattr(self.store, "_db", None)
        if threading.get_ident() != self.thread or type(db).__module__ != "radview.store.db":
            return None
        conn = db.conn()
        return int(conn.total_changes), int(conn.execute("PRAGMA data_version").fetchone()[0])

    def item(self, item: Any, level: str = "image") -> ItemSnapshot:
        from radview.store.rows import as_key

        token = self._fresh_token()
        if token is None:
            return read_item(self.store, item, level)
        if token != self._token:
            self._items.clear()
            self._token = token
        k = (as_key(item), level)
        snap = self._items.get(k)
        if snap is not None:
            self._items.move_to_end(k)
            self.hits += 1
            return snap
        self.misses += 1
        snap = self._items[k] = read_item(self.store, item, level)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return snap

    def invalidate(self, item: Any = None, level: str | None = None) -> None:
        """Forget one item (a store event for it), or everything."""
        if item is None:
            self._items.clear()
            return
        from radview.store.rows import as_key

        key = as_key(item)
        for k in [k for k in self._items if k[0] == key and (level is None or k[1] == level)]:
            del self._items[k]


_snapshots: "weakref.WeakKeyDictionary[LabelStore, Snapshots]" = weakref.WeakKeyDictionary()


def snapshots_of(store: LabelStore) -> Snapshots:
    """The process's snapshot cache of a store (made on first use, on the calling thread)."""
    with _lock:
        snaps = _snapshots.get(store)
        if snaps is None:
            snaps = _snapshots[store] = Snapshots(store)
        return snaps


@dataclass(frozen=True)
class QueueSnapshot:
    """The retraining queue as the queue panel shows it, read in one transaction."""

    last_event_id: int
    pending: tuple[Correction, ...]
    summary: QueueSummary


def read_queue(store: LabelStore, level: str | None = None, space: Any = None) -> QueueSnapshot:
    """store.last_event_id(), store.pending(level, space) and store.queue_summary(level, space)
    in one read transaction (one consistent snapshot instead of three)."""
    from radview.store import queue as _queue
    from radview.store.model import check_level
    from radview.store.rows import EVENT_COLS, EVENT_FROM, event_row

    if level is not None:
        check_level(level)

    def read(conn) -> QueueSnapshot:
        last = int(conn.execute("SELECT coalesce(max(id), 0) FROM corrections").fetchone()[0])
        ids = _queue.pending_ids(conn, level, space)
        moved = store._moved(conn)
        rows = store._select(conn, "SELECT " + EVENT_COLS + EVENT_FROM + " WHERE 1", [], ids, column="c.id")
        pending = sorted((event_row(r, moved.get(r[3])) for r in rows), key=lambda e: e.id)
        return QueueSnapshot(last, tuple(pending), _queue.summary(conn, level, space))

    return store._db.read(read)
