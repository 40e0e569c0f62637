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
Connections, transactions and migrations are radview.store.base's (shared with SQLite); the SQL
PostgreSQL says differently is radview.store.pg_dialect's.
"""
from __future__ import annotations

import os
import random
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from radview.store import pg_dialect, schema
from radview.store.base import BaseDatabase, Holder
from radview.store.errors import StoreError
from radview.store.pg_dialect import WRITE_LOCK  # noqa: F401 - pg.WRITE_LOCK: the old name


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


class PgDatabase(BaseDatabase):
    """A PostgreSQL database with the label-store schema (see the module docstring)."""

    backend = "postgresql"
    BEGIN_WRITE = pg_dialect.BEGIN_WRITE
    BEGIN_READ = pg_dialect.BEGIN_READ
    RETRY_DELAY = (0.005, 0.2)

    def __init__(self, url: str, *, timeout: float = 60.0, readonly: bool = False,
                 pragmas: dict[str, Any] | None = None) -> None:
        self.url = url
        self.path = redact(url)  # what messages and LabelStore.path show
        self._setup(timeout, readonly)
        self._open()

    def _check_readonly(self) -> None:
        version = self.read(self._version, "open")
        if version < schema.LATEST:
            self.close()
            raise StoreError(self.path, f"its schema (version {version}) is older than this "
                             f"radview's ({schema.LATEST}) and cannot be upgraded read-only",
                             action="open", hint="open it once writable to upgrade it")

    # ------------------------------------------------------------------ connections
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

    # ------------------------------------------------------------------ transactions
    def _errors(self) -> tuple[type[BaseException], ...]:
        return (_psycopg().Error,)

    def _execute(self, conn: PgConnection, sql: str) -> None:
        conn.raw.execute(sql)

    def _rollback(self, conn: PgConnection) -> None:
        if not conn.raw.closed and conn.in_transaction:
            try:
                conn.raw.execute("ROLLBACK")
            except _psycopg().Error:
                pass

    def _retry(self, exc: BaseException) -> bool:
        errors = _psycopg().errors
        return isinstance(exc, (errors.SerializationFailure, errors.DeadlockDetected))

    def _dropped(self, conn: PgConnection, exc: BaseException) -> bool:
        return isinstance(exc, _psycopg().OperationalError) and conn.raw.broken

    def _failed(self, holder: Holder, conn: PgConnection, exc: BaseException) -> None:
        if conn.raw.broken:  # the next call reconnects instead of failing forever
            holder.close()

    def _describe(self, exc: BaseException, action: str) -> StoreError:
        return describe(exc, self.path, action)

    # ------------------------------------------------------------------ schema
    @staticmethod
    def _tables(conn: PgConnection) -> set[str]:
        return {r[0] for r in conn.raw.execute(pg_dialect.TABLES)}

    def _version(self, conn: PgConnection) -> int:
        tables = self._tables(conn)
        if "radview_meta" not in tables:
            if tables - schema.OUR_TABLES:
                raise StoreError(self.path, "it is a database of another program (tables "
                                 f"{', '.join(sorted(tables)[:5])})", action="open",
                                 hint="the database was left unchanged")
            return 0
        meta = dict(conn.raw.execute(pg_dialect.META).fetchall())
        if meta.get("application_id") != str(schema.APPLICATION_ID):
            raise StoreError(self.path, "it is not a radview label store", action="open",
                             hint="the database was left unchanged")
        version = int(meta.get("user_version", 0))
        if version > schema.LATEST:
            raise StoreError(self.path, f"it was made by a newer radview (schema version {version}, "
                             f"this radview knows up to {schema.LATEST})", action="open",
                             hint="the database was left unchanged; update radview")
        return version

    def _start_migration(self, conn: PgConnection, version: int) -> None:
        if version == 0:
            conn.raw.execute(pg_dialect.CREATE_META)
            conn.raw.execute(pg_dialect.INIT_META, (str(schema.APPLICATION_ID),))

    def _ddl(self, statement: str) -> list[str]:
        return pg_dialect.ddl(statement)

    def _set_version(self, conn: PgConnection, version: int) -> None:
        conn.raw.execute(pg_dialect.SET_VERSION, (str(version),))

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
