"""The scan index: a SQLite cache of what a folder scan learnt about each file, so that an
unchanged file (same path, size and mtime) is never read again.

Rows: path, size, mtime_ns, kind ('dicom' | 'raster' | 'skip'), header (JSON) or error (text).
The cache belongs to the io core (io never imports the store): it is a cache, not user data, so
a cache written by an older scanner (SCANNER_VERSION: what the scan checks changed) is dropped
and rebuilt. A cache that cannot be opened (read-only folder, corrupt file) is reported once and
the scan goes on without it; the file is never overwritten.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 2
# Bump when the scan learns to check something new (content sniffing, decode checks...):
# entries made by an older scanner would hide files or errors the new one finds. The header
# keywords the scan keeps are part of it, so adding one (for measurement, priors...) drops the
# cached headers that lack it.
_SCANNER_LOGIC = "2026-12-01.2"


def _scanner_version() -> str:
    import hashlib

    from radview.io.dicom import HEADER_KEYWORDS

    digest = hashlib.sha256("\0".join(HEADER_KEYWORDS).encode()).hexdigest()[:12]
    return f"{_SCANNER_LOGIC}+{digest}"


SCANNER_VERSION = _scanner_version()


@dataclass(frozen=True)
class IndexEntry:
    size: int
    mtime_ns: int
    kind: str
    header: dict[str, Any] | None
    error: str | None


class IndexUnavailable(Exception):
    pass


class ScanIndex:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self.conn = sqlite3.connect(self.path, timeout=10.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise IndexUnavailable(f"{self.path}: made by a newer radview (schema {version})")
            with self.conn:
                if version < SCHEMA_VERSION:
                    self.conn.execute("DROP TABLE IF EXISTS files")  # a cache: rebuilt, never migrated
                self.conn.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                                  "mtime_ns INTEGER, kind TEXT, header TEXT, error TEXT)")
                self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'scanner'").fetchone()
                if row is None or row[0] != SCANNER_VERSION:
                    self.conn.execute("DELETE FROM files")
                    self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('scanner', ?)",
                                      (SCANNER_VERSION,))
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise IndexUnavailable(f"{self.path}: scan index unusable ({exc}); scanning without it") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def load_prefix(self, root: str) -> dict[str, IndexEntry]:
        """All cached entries at or below `root` (a file or a folder path)."""
        prefix = root.rstrip(os.sep) + os.sep
        try:
            cur = self.conn.execute(
                "SELECT path, size, mtime_ns, kind, header, error FROM files WHERE path = ? OR (path >= ? AND path < ?)",
                (root, prefix, prefix[:-1] + chr(ord(os.sep) + 1)),
            )
            out = {}
            for path, size, mtime, kind, header, error in cur:
                out[path] = IndexEntry(size, mtime, kind, json.loads(header) if header else None, error)
            return out
        except sqlite3.DatabaseError as exc:
            raise IndexUnavailable(f"{self.path}: scan index unreadable ({exc})") from None

    def put_many(self, rows: list[tuple[str, IndexEntry]]) -> None:
        if not rows:
            return
        try:
            with self.conn:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO files (path, size, mtime_ns, kind, header, error) VALUES (?,?,?,?,?,?)",
                    [
                        (p, e.size, e.mtime_ns, e.kind, json.dumps(e.header) if e.header is not None else None, e.error)
                        for p, e in rows
                    ],
                )
        except sqlite3.DatabaseError as exc:
            raise IndexUnavailable(f"{self.path}: cannot write scan index ({exc})") from None

    def forget(self, paths: list[str]) -> None:
        """Drop the cached rows of files that are gone."""
        if not paths:
            return
        try:
            with self.conn:
                self.conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])
        except sqlite3.DatabaseError as exc:
            raise IndexUnavailable(f"{self.path}: cannot write scan index ({exc})") from None
