"""What the label store's two backends share (radview.store.db: SQLite, radview.store.pg:
PostgreSQL): one connection per thread (opened on first use, closed with its thread or by
close()), transactions retried while other writers hold the database, and the migrations of
radview.store.schema applied in one write transaction.

A backend says how to connect and what its SQL looks like:
- `_connect()`: a new connection (errors as StoreError);
- BEGIN_WRITE / BEGIN_READ: what starts a write / read transaction; `_execute(conn, sql)` runs
  one statement of the backend's own SQL (BEGIN, COMMIT, migrations), `_rollback(conn)`;
- `_errors()`: the driver's error classes; `_retry(exc)`: whether another writer caused it (the
  whole transaction is run again, with backoff, until `timeout`); `_dropped(conn, exc)`: whether
  BEGIN failed because the server dropped an idle connection (reconnected once);
  `_failed(holder, conn, exc)` (a broken connection is closed), `_describe(exc, action)`;
- `_version(conn)` (checked: a newer or foreign database is refused), `_start_migration(conn,
  version)`, `_ddl(statement)` (a schema.MIGRATIONS statement in the backend's dialect),
  `_set_version(conn, version)`, `_check_readonly()`.
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from typing import Any, Callable, ClassVar, TypeVar

from radview.store import schema
from radview.store.errors import StoreError

T = TypeVar("T")


class Holder:
    """One thread's connection. Dropped with its thread (threading.local), which closes it;
    `users` counts the transactions running on it so close() never pulls it from under one."""

    __slots__ = ("conn", "pid", "users", "close_errors", "__weakref__")

    def __init__(self, conn: Any, close_errors: tuple[type[BaseException], ...]) -> None:
        self.conn: Any = conn
        self.pid = os.getpid()
        self.users = 0
        self.close_errors = close_errors  # what closing a broken connection may raise

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except self.close_errors:  # closing a broken connection: nothing to keep
                pass

    def __del__(self) -> None:  # its thread ended (or the database was dropped)
        if self.pid == os.getpid():
            self.close()


class BaseDatabase:
    """Connections, transactions and migrations of a label-store database. Thread-safe: each
    thread gets its own connection. close() closes the connections no transaction is using at
    once, and each busy one as soon as its transaction ends, in its own thread. Process-safe: a
    forked child opens its own connections."""

    BEGIN_WRITE: ClassVar[str]
    BEGIN_READ: ClassVar[str]
    #: backoff between retried transactions: first delay, longest delay (seconds)
    RETRY_DELAY: ClassVar[tuple[float, float]]
    #: what closing a connection may raise (ignored)
    CLOSE_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (Exception,)

    path: Any
    timeout: float
    readonly: bool

    def _setup(self, timeout: float, readonly: bool) -> None:
        self.timeout = float(timeout)
        self.readonly = readonly
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: weakref.WeakSet[Holder] = weakref.WeakSet()
        self._closed = False

    def _open(self) -> None:
        """Open this thread's connection now (problems surface at construction, not at the first
        click), then bring the schema up to date (or check a read-only one is current)."""
        self.conn()
        if not self.readonly:
            self._migrate()
        else:
            self._check_readonly()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def n_connections(self) -> int:
        """Open connections of all threads (what leak checks look at)."""
        return sum(1 for h in list(self._conns) if h.conn is not None)

    # ------------------------------------------------------------------ connections
    def _holder(self) -> Holder:
        if self._closed:
            raise StoreError(self.path, "the store was closed", action="use")
        holder = getattr(self._local, "holder", None)
        if holder is None or holder.conn is None or holder.pid != os.getpid():
            holder = Holder(self._connect(), self.CLOSE_ERRORS)
            self._local.holder = holder
            with self._lock:
                self._conns.add(holder)
        return holder

    def conn(self) -> Any:
        """This thread's connection (opened on first use)."""
        return self._holder().conn

    def close(self) -> None:
        """Close the store's connections in every thread (safe to call twice, from any thread):
        idle ones now, a busy one when its transaction ends (in its own thread)."""
        with self._lock:
            self._closed = True
            holders = list(self._conns)
        for h in holders:
            if h.users == 0:
                h.close()

    # ------------------------------------------------------------------ transactions
    def write(self, fn: Callable[[Any], T], action: str = "save changes") -> T:
        """Run fn(conn) in one write transaction; retried while another writer holds the lock."""
        if self.readonly:
            raise StoreError(self.path, "it was opened read-only", action=action)
        return self._run(fn, self.BEGIN_WRITE, action)

    def read(self, fn: Callable[[Any], T], action: str = "read") -> T:
        """Run fn(conn) in one read transaction (a consistent snapshot)."""
        return self._run(fn, self.BEGIN_READ, action)

    def _run(self, fn: Callable[[Any], T], begin: str, action: str) -> T:
        errors = self._errors()
        deadline = time.monotonic() + self.timeout
        delay, longest = self.RETRY_DELAY
        holder = self._holder()
        holder.users += 1
        reconnected = False
        try:
            while True:
                conn = holder.conn
                try:
                    try:
                        self._execute(conn, begin)
                    except errors as exc:
                        # the server dropped this idle connection (restart, idle timeout):
                        # nothing of this transaction ran yet, so reconnect once and go on
                        if reconnected or not self._dropped(conn, exc):
                            raise
                        reconnected = True
                        holder.close()
                        holder.conn = self._connect()
                        continue
                    try:
                        result = fn(conn)
                        self._execute(conn, "COMMIT")
                        return result
                    except BaseException:
                        self._rollback(conn)
                        raise
                except errors as exc:
                    if self._retry(exc) and time.monotonic() < deadline:
                        time.sleep(delay * (0.5 + random.random()))
                        delay = min(delay * 2, longest)
                        continue
                    self._failed(holder, conn, exc)
                    raise self._describe(exc, action) from exc
        finally:
            holder.users -= 1
            if self._closed and holder.users == 0:
                holder.close()  # close() came while we worked: we close our own connection

    # ------------------------------------------------------------------ schema
    def _migrate(self) -> None:
        def migrate(conn: Any) -> None:
            version = self._version(conn)  # again, under the writers' lock
            if version >= schema.LATEST:
                return  # another program upgraded it meanwhile
            self._start_migration(conn, version)
            for i in range(version, schema.LATEST):
                for statement in statements(schema.MIGRATIONS[i]):
                    for native in self._ddl(statement):
                        self._execute(conn, native)
                self._set_version(conn, i + 1)

        if self.read(self._version, "open") < schema.LATEST:
            self.write(migrate, "create or upgrade the schema")

    # ------------------------------------------------------------------ the backend's part
    def _connect(self) -> Any:
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def _execute(self, conn: Any, sql: str) -> None:
        raise NotImplementedError

    def _rollback(self, conn: Any) -> None:
        raise NotImplementedError

    def _retry(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def _dropped(self, conn: Any, exc: BaseException) -> bool:
        return False

    def _failed(self, holder: Holder, conn: Any, exc: BaseException) -> None:
        pass

    def _describe(self, exc: BaseException, action: str) -> StoreError:
        raise NotImplementedError

    def _version(self, conn: Any) -> int:
        raise NotImplementedError

    def _start_migration(self, conn: Any, version: int) -> None:
        pass

    def _ddl(self, statement: str) -> list[str]:
        return [statement]

    def _set_version(self, conn: Any, version: int) -> None:
        raise NotImplementedError

    def _check_readonly(self) -> None:
        raise NotImplementedError


def statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT our transaction)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
