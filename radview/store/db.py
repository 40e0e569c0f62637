"""SQLite plumbing of the label store: one connection per thread (closed with its thread or by
close()), WAL, foreign keys, busy retry.

`Database.write(fn)` runs `fn(conn)` inside `BEGIN IMMEDIATE ... COMMIT` and retries the whole
transaction when another writer holds the lock (SQLITE_BUSY), so two programs (the app and the
CLI) writing at once wait for each other instead of failing with "database is locked".
`Database.read(fn)` runs `fn(conn)` in a read transaction (one consistent snapshot).
Every other sqlite3 error comes out as a StoreError naming the file and the reason.
Connections, transactions and migrations are radview.store.base's (shared with PostgreSQL);
here: how a SQLite file is opened, checked and versioned (PRAGMA user_version).
"""
from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from radview.store import schema
from radview.store.base import BaseDatabase
from radview.store.base import statements as _statements  # noqa: F401 - its old name here
from radview.store.errors import StoreError, describe, is_busy

BUSY_TIMEOUT_MS = 2000  # SQLite's own wait inside one statement


class Database(BaseDatabase):
    """A SQLite file with the label-store schema. Thread-safe: each thread gets its own
    connection (created on first use, closed when the thread ends or by close()). close() closes
    the connections no transaction is using at once, and each busy one as soon as its transaction
    ends, in its own thread. Process-safe: a forked child opens its own connections."""

    BEGIN_WRITE = "BEGIN IMMEDIATE"
    BEGIN_READ = "BEGIN"
    RETRY_DELAY = (0.002, 0.1)
    CLOSE_ERRORS = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike, *, timeout: float = 60.0, readonly: bool = False,
                 pragmas: dict[str, Any] | None = None) -> None:
        self.path = Path(path).expanduser().absolute()
        self.pragmas = dict(pragmas or {})
        self._setup(timeout, readonly)
        if not readonly:
            self._prepare_folder()
        self._open()

    def _check_readonly(self) -> None:
        version = self.read(_header, "open")[0]
        if 0 < version < schema.LATEST:
            self.close()
            raise StoreError(self.path, f"it was made by an older radview (schema version {version}) "
                             "and cannot be upgraded read-only", action="open",
                             hint="open it once writable (e.g. run radview where the file may "
                                  "be written) to upgrade it; the file was left unchanged")

    # ------------------------------------------------------------------ connections
    def _prepare_folder(self) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(self.path, f"cannot create its folder ({exc.strerror or exc})",
                                 action="open") from exc
        if self.path.is_dir():
            raise StoreError(self.path, "it is a folder, not a file", action="open")
        if self.path.exists() and not os.access(self.path, os.W_OK):
            # SQLite would silently open it read-only and fail at the first correction
            raise StoreError(self.path, "the file is read-only", action="open",
                             hint="the file was left unchanged; open it with readonly=True to "
                                  "see its labels; images can still be viewed without the store")

    def _connect(self) -> sqlite3.Connection:
        deadline = time.monotonic() + self.timeout
        immutable = False
        while True:
            conn = None
            try:
                if self.readonly:
                    uri = f"file:{quote(str(self.path))}?mode=ro" + ("&immutable=1" if immutable else "")
                    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                           isolation_level=None, check_same_thread=False)
                else:
                    conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000,
                                           isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA foreign_keys = ON")
                # Look before touching anything: switching to WAL rewrites the file header.
                self._check_file(conn)
                if not self.readonly:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if str(mode).lower() != "wal":
                        raise StoreError(self.path, f"cannot switch to WAL journal (got {mode!r})",
                                         action="open")
                    # FULL: a correction whose call returned survives a crash or power loss.
                    conn.execute("PRAGMA synchronous = FULL")
                else:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                for name, value in self.pragmas.items():
                    if not name.replace("_", "").isalnum():
                        raise ValueError(f"bad pragma name {name!r}")
                    conn.execute(f"PRAGMA {name} = {int(value) if isinstance(value, bool) else value}")
                return conn
            except (StoreError, ValueError):
                if conn is not None:
                    conn.close()
                raise
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                if is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(0.01 + random.random() * 0.05)
                    continue
                if self.readonly and not immutable and not _has_wal(self.path):
                    immutable = True  # read-only folder: no -shm can be made; nothing can change
                    continue
                raise describe(exc, self.path, "open") from exc

    # ------------------------------------------------------------------ transactions
    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def _execute(self, conn: sqlite3.Connection, sql: str) -> None:
        conn.execute(sql)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _retry(self, exc: BaseException) -> bool:
        return is_busy(exc)

    def _describe(self, exc: BaseException, action: str) -> StoreError:
        return describe(exc, self.path, action)

    # ------------------------------------------------------------------ schema
    def _check_version(self, header: tuple[int, int, int]) -> None:
        version, app_id, n_tables = header
        if version > schema.LATEST:
            raise StoreError(self.path, f"it was made by a newer radview (schema version {version}, "
                             f"this radview knows up to {schema.LATEST})", action="open",
                             hint="the file was left unchanged; update radview")
        if app_id not in (0, schema.APPLICATION_ID):
            raise StoreError(self.path, f"it is not a radview label store (application id {app_id:#x})",
                             action="open", hint="the file was left unchanged")

    def _check_file(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        version, app_id, n_tables = header = _header(conn)
        self._check_version(header)
        if version == 0 and n_tables:
            names = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
            if not names <= schema.OUR_TABLES:
                raise StoreError(self.path, "it is a SQLite file of another program "
                                 f"(tables {', '.join(sorted(names)[:5])})", action="open",
                                 hint="the file was left unchanged")
        return header

    def _version(self, conn: sqlite3.Connection) -> int:
        return self._check_file(conn)[0]

    def _start_migration(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")

    def _set_version(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute(f"PRAGMA user_version = {version}")

    def integrity_check(self) -> str:
        """'ok' or SQLite's list of problems."""
        rows = self.read(lambda c: c.execute("PRAGMA integrity_check").fetchall(), "check")
        return "\n".join(str(r[0]) for r in rows)


def _header(conn: sqlite3.Connection) -> tuple[int, int, int]:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    n_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return int(version), int(app_id), int(n_tables)


def _has_wal(path: Path) -> bool:
    wal = Path(str(path) + "-wal")
    return wal.exists() and wal.stat().st_size > 0
