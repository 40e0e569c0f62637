"""PostgreSQL backend of the label store (psycopg 3): the same interface as radview.store.db.Database
(`write(fn)`, `read(fn)`, `conn()`, `close()`, `closed`, `n_connections`, `integrity_check()`), the
same schema and migrations (schema.MIGRATIONS translated by radview.store.pg_dialect), the same
append-only guarantee (triggers refuse UPDATE, DELETE and TRUNCATE of corrections).

Selected by a `postgresql://user@host:port/db` target (RADVIEW_STORE, a settings entry, or the path
given to LabelStore / open_store). Semantics match SQLite's:
- a write transaction takes one advisory lock first, so writers run one at a time as under SQLite's
  BEGIN IMMEDIATE: event ids grow in commit order (events_since never misses an event) and every
  read-then-append (old value, undo of the head) sees the latest state;
- a read transaction is REPEATABLE READ READ ONLY (one consistent snapshot);
- one connection per thread, opened on first use, closed with its thread or by close();
- the schema version lives in table radview_meta (user_version, application_id).
Errors come out as StoreError naming the server/database (never the password) and the reason.
"""
from __future__ import annotations

import os
import random
import threading
import time
import weakref
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

from radview.store import pg_dialect, schema
from radview.store.errors import StoreError

T = TypeVar("T")

#: pg_advisory_xact_lock key of the writers' lock ('RVLS')
WRITE_LOCK = schema.APPLICATION_ID


def is_url(target: Any) -> bool:
    return isinstance(target, str) and target.split(":", 1)[0].lower() in ("postgresql", "postgres")


def redact(url: str) -> str:
    """The URL without its password (for messages and LabelStore.path)."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _psycopg():
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        raise StoreError("postgresql", "psycopg 3 is not installed", action="open",
                         hint='pip install "psycopg[binary]>=3.1,<4"') from exc
    return psycopg


class _Cursor:
    """What the store's modules use of a sqlite3 cursor: iteration, fetchone/fetchall, rowcount,
    lastrowid (from the RETURNING id the dialect adds to INSERT INTO corrections)."""

    __slots__ = ("_cur", "lastrowid", "rowcount")

    def __init__(self, cur: Any, returning: bool) -> None:
        self._cur = cur
        self.rowcount = cur.rowcount
        self.lastrowid = cur.fetchone()[0] if returning else None

    def fetchone(self) -> tuple | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[tuple]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self):
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection that takes the store's SQLite SQL (see pg_dialect)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = ()) -> _Cursor:
        text, returning = pg_dialect.query(sql)
        cur = self.raw.cursor()
        cur.execute(text, tuple(params))
        return _Cursor(cur, returning)

    def executemany(self, sql: str, rows: Any) -> _Cursor:
        text, _ = pg_dialect.query(sql)
        rows = [tuple(r) for r in rows]
        cur = self.raw.cursor()
        if rows:
            cur.executemany(text, rows)
        return _Cursor(cur, False)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


class _Holder:
    __slots__ = ("conn", "pid", "users", "__weakref__")

    def __init__(self, conn: PgConnection) -> None:
        self.conn: PgConnection | None = conn
        self.pid = os.getpid()
        self.users = 0

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection: nothing to keep
                pass

    def __del__(self) -> None:
        if self.pid == os.getpid():
            self.close()


class PgDatabase:
    """A PostgreSQL database with the label-store schema (see the module docstring)."""

    backend = "postgresql"

    def __init__(self, url: str, *, timeout: float = 60.0, readonly: bool = False,
                 pragmas: dict[str, Any] | None = None) -> None:
        self.url = url
        self.path = redact(url)  # what messages and LabelStore.path show
        self.timeout = float(timeout)
        self.readonly = readonly
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._closed = False
        self.conn()
        if not readonly:
            self._migrate()
        else:
            version = self.read(self._version, "open")
            if version < schema.LATEST:
                self.close()
                raise StoreError(self.path, f"its schema (version {version}) is older than this "
                                 f"radview's ({schema.LATEST}) and cannot be upgraded read-only",
                                 action="open", hint="open it once writable to upgrade it")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def n_connections(self) -> int:
        return sum(1 for h in list(self._conns) if h.conn is not None)

    # ------------------------------------------------------------------ connections
    def _holder(self) -> _Holder:
        if self._closed:
            raise StoreError(self.path, "the store was closed", action="use")
        holder = getattr(self._local, "holder", None)
        if holder is None or holder.conn is None or holder.pid != os.getpid():
            holder = _Holder(self._connect())
            self._local.holder = holder
            with self._lock:
                self._conns.add(holder)
        return holder

    def conn(self) -> PgConnection:
        return self._holder().conn

    def _connect(self) -> PgConnection:
        psycopg = _psycopg()
        deadline = time.monotonic() + min(self.timeout, 15.0)
        while True:
            try:
                raw = psycopg.connect(self.url, autocommit=True,
                                      connect_timeout=max(1, int(min(self.timeout, 10))),
                                      application_name="radview")
                return PgConnection(raw)
            except psycopg.OperationalError as exc:
                if "does not exist" in str(exc) or time.monotonic() >= deadline:
                    raise describe(exc, self.path, "open") from exc
                time.sleep(0.05 + random.random() * 0.1)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            holders = list(self._conns)
        for h in holders:
            if h.users == 0:
                h.close()

    # ------------------------------------------------------------------ transactions
    def write(self, fn: Callable[[PgConnection], T], action: str = "save changes") -> T:
        if self.readonly:
            raise StoreError(self.path, "it was opened read-only", action=action)
        # one round trip: BEGIN, then wait for the writers' lock
        return self._run(fn, f"BEGIN ISOLATION LEVEL READ COMMITTED; "
                             f"SELECT pg_advisory_xact_lock({WRITE_LOCK})", action)

    def read(self, fn: Callable[[PgConnection], T], action: str = "read") -> T:
        return self._run(fn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", action)

    def _run(self, fn: Callable[[PgConnection], T], begin: str, action: str) -> T:
        psycopg = _psycopg()
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        holder = self._holder()
        holder.users += 1
        reconnected = False
        try:
            while True:
                conn = holder.conn
                try:
                    try:
                        conn.raw.execute(begin)
                    except psycopg.OperationalError:
                        # the server dropped this idle connection (restart, idle timeout):
                        # nothing of this transaction ran yet, so reconnect once and go on
                        if reconnected or not conn.raw.broken:
                            raise
                        reconnected = True
                        holder.close()
                        holder.conn = self._connect()
                        continue
                    try:
                        result = fn(conn)
                        conn.raw.execute("COMMIT")
                        return result
                    except BaseException:
                        if not conn.raw.closed and conn.in_transaction:
                            try:
                                conn.raw.execute("ROLLBACK")
                            except psycopg.Error:
                                pass
                        raise
                except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
                    if time.monotonic() < deadline:
                        time.sleep(delay * (0.5 + random.random()))
                        delay = min(delay * 2, 0.2)
                        continue
                    raise describe(exc, self.path, action) from exc
                except psycopg.Error as exc:
                    if conn.raw.broken:  # the next call reconnects instead of failing forever
                        holder.close()
                    raise describe(exc, self.path, action) from exc
        finally:
            holder.users -= 1
            if self._closed and holder.users == 0:
                holder.close()

    # ------------------------------------------------------------------ schema
    @staticmethod
    def _tables(conn: PgConnection) -> set[str]:
        return {r[0] for r in conn.raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}

    def _version(self, conn: PgConnection) -> int:
        tables = self._tables(conn)
        if "radview_meta" not in tables:
            if tables - schema.OUR_TABLES:
                raise StoreError(self.path, "it is a database of another program (tables "
                                 f"{', '.join(sorted(tables)[:5])})", action="open",
                                 hint="the database was left unchanged")
            return 0
        meta = dict(conn.raw.execute("SELECT key, value FROM radview_meta").fetchall())
        if meta.get("application_id") != str(schema.APPLICATION_ID):
            raise StoreError(self.path, "it is not a radview label store", action="open",
                             hint="the database was left unchanged")
        version = int(meta.get("user_version", 0))
        if version > schema.LATEST:
            raise StoreError(self.path, f"it was made by a newer radview (schema version {version}, "
                             f"this radview knows up to {schema.LATEST})", action="open",
                             hint="the database was left unchanged; update radview")
        return version

    def _migrate(self) -> None:
        from radview.store.db import _statements

        def migrate(conn: PgConnection) -> None:
            version = self._version(conn)  # again, under the writers' lock
            if version == 0:
                conn.raw.execute("CREATE TABLE IF NOT EXISTS radview_meta (key TEXT PRIMARY KEY,"
                                 " value TEXT NOT NULL)")
                conn.raw.execute("INSERT INTO radview_meta VALUES ('application_id', %s),"
                                 " ('user_version', '0') ON CONFLICT (key) DO NOTHING",
                                 (str(schema.APPLICATION_ID),))
            for i in range(version, schema.LATEST):
                for statement in _statements(schema.MIGRATIONS[i]):
                    for pg_statement in pg_dialect.ddl(statement):
                        conn.raw.execute(pg_statement)
                conn.raw.execute("UPDATE radview_meta SET value = %s WHERE key = 'user_version'",
                                 (str(i + 1),))

        if self.read(self._version, "open") < schema.LATEST:
            self.write(migrate, "create or upgrade the schema")

    def schema_version(self) -> int:
        return self.read(self._version, "read")

    def integrity_check(self) -> str:
        """'ok' when the schema is current and the append-only triggers are in place."""
        def check(conn: PgConnection) -> str:
            problems = []
            if self._version(conn) != schema.LATEST:
                problems.append(f"schema version is not {schema.LATEST}")
            triggers = {r[0] for r in conn.raw.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'corrections'::regclass")}
            for name in ("corrections_append_only_update", "corrections_append_only_delete"):
                if name not in triggers:
                    problems.append(f"trigger {name} is missing")
            return "\n".join(problems) or "ok"
        return self.read(check, "check")

    def backup_sqlite(self, dest: str | os.PathLike) -> None:
        """Copy every table (one consistent snapshot) into a new SQLite store file at dest."""
        from radview.store.db import Database
        def dump(conn: PgConnection) -> dict[str, tuple[list[str], list[tuple]]]:
            out = {}
            # consumed refers to corrections and training_runs: copied last; rows in key order
            for t in sorted(self._tables(conn) - {"radview_meta"}, key=lambda t: (t == "consumed", t)):
                cur = conn.raw.execute(f"SELECT * FROM {t} ORDER BY 1")
                out[t] = ([d.name for d in cur.description], cur.fetchall())
            return out
        data = self.read(dump, "write a backup")
        target = Database(dest)
        try:
            def load(conn: Any) -> None:
                for t, (cols, rows) in data.items():
                    conn.executemany(f"INSERT INTO {t} ({', '.join(cols)}) VALUES "
                                     f"({', '.join('?' * len(cols))})", rows)
            target.write(load, "write a backup")
        finally:
            target.close()


def describe(exc: BaseException, where: str, action: str) -> StoreError:
    """A psycopg error -> StoreError with a reason a user understands."""
    if isinstance(exc, StoreError):
        return exc
    import psycopg
    raw = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, psycopg.errors.CheckViolation):
        reason = f"CHECK constraint failed ({raw})"
    elif isinstance(exc, psycopg.errors.UniqueViolation):
        reason = f"UNIQUE constraint failed ({raw})"
    elif isinstance(exc, psycopg.errors.IntegrityError):
        reason = raw
    elif sqlstate.startswith("53"):
        reason = f"the database server is out of resources, e.g. its disk is full ({raw})"
    elif sqlstate.startswith("28") or "authentication" in raw or "password" in raw:
        reason = f"the server refused the login ({raw})"
    elif isinstance(exc, psycopg.OperationalError):
        reason = f"cannot reach the PostgreSQL server ({raw})"
    elif isinstance(exc, (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)):
        reason = f"other writers kept the database busy for too long ({raw})"
    else:
        reason = raw
    return StoreError(where, reason, action=action, hint="nothing was changed by this action")
