"""StoreError: what the label store raises for anything the user has to act on.

Every message names the database file and the reason in plain words (read-only, disk full,
corrupt, locked for too long, made by a newer radview) and says that the file was left alone.
"""
from __future__ import annotations

import os
from pathlib import Path

# SQLite primary result codes (sqlite3.h)
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26


class StoreError(Exception):
    """A label-store problem the user can act on. str() names the file and the reason.

    Attributes: path (the database file), reason (plain words), code (SQLite primary result
    code or None)."""

    def __init__(self, path: str | os.PathLike, reason: str, *, action: str = "use",
                 code: int | None = None, hint: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.action = action
        self.code = code
        text = f"label store {self.path}: cannot {action}: {reason}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


def primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED (including 'database is locked' messages)."""
    code = primary_code(exc)
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def describe(exc: BaseException, path: str | os.PathLike, action: str = "use") -> StoreError:
    """Turn a sqlite3 / OS error into a StoreError with a reason a user understands."""
    if isinstance(exc, StoreError):
        return exc
    path = Path(path)
    folder = path.parent
    code = primary_code(exc)
    raw = str(exc)
    untouched = "the file was left unchanged"
    if code == SQLITE_FULL or "disk is full" in raw.lower() or getattr(exc, "errno", None) == 28:
        return StoreError(path, f"the disk is full or the store reached its size limit ({raw})",
                          action=action, code=code, hint=f"{untouched}; free some space")
    if code in (SQLITE_NOTADB, SQLITE_CORRUPT) or "not a database" in raw or "malformed" in raw:
        what = ("the file is not a SQLite database" if code == SQLITE_NOTADB or "not a database" in raw
                else "the database file is corrupt")
        return StoreError(path, f"{what} ({raw})", action=action, code=code,
                          hint="the file was left untouched; move it away or restore a backup "
                               "to start a new store")
    if code in (SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN) or "readonly" in raw or "unable to open" in raw:
        if path.exists() and not _writable(path):
            reason = "the file is read-only"
        elif folder.exists() and not _writable(folder):
            reason = ("its folder is read-only (SQLite needs to create the -wal and -shm files "
                      "beside the database)")
        elif not folder.exists():
            reason = "its folder does not exist"
        elif code == SQLITE_READONLY or "readonly" in raw:
            reason = "the file or its folder is read-only"
        else:
            reason = "the file cannot be opened"
        return StoreError(path, f"{reason} ({raw})", action=action, code=code,
                          hint=f"{untouched}; images can still be viewed without the store")
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or is_busy(exc):
        return StoreError(path, f"another program kept the database locked for too long ({raw})",
                          action=action, code=code, hint=untouched)
    if code == SQLITE_IOERR or isinstance(exc, OSError):
        return StoreError(path, f"disk input/output error ({raw})", action=action, code=code,
                          hint=untouched)
    return StoreError(path, raw or type(exc).__name__, action=action, code=code)


__all__ = ["StoreError", "describe", "is_busy", "primary_code"]
