"""One label store per process: `open_store(path=None)` returns the same LabelStore for the same
file every time it is asked (the GUI opens it once and passes it to every panel; workers and
CLI code in the same process share it). Each thread still gets its own SQLite connection, closed
when the thread ends (radview.store.db). `close_stores()` at shutdown closes them all; a store
someone closed is replaced by a fresh one on the next `open_store`.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from radview.store.labels import LabelStore

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
