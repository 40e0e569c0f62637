"""A real PostgreSQL server for the tests: the machine's binaries (PostgreSQL 15 by default:
/usr/lib/postgresql/*/bin, or PG_BIN, or initdb/pg_ctl on PATH), `initdb` into a temporary folder,
`pg_ctl` on a free loopback port, stopped and removed at the end of the session.

Fixtures (import them in a test module or conftest: `from tests.postgres import *`):
- `pg_server` (session): a running server, `.url(dbname)` / `.create_database()`;
- `pg_url`: a fresh empty database per test (postgresql://radview@127.0.0.1:PORT/t_N);
- `store_target`: parametrised ['sqlite', 'postgresql']: a SQLite file path or a fresh PG URL,
  for running the same store test on both backends.
Without binaries or psycopg, the PostgreSQL cases skip with the reason. As root, initdb and
postgres run as the OS user `postgres` (created with useradd when missing).
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = ["PgServer", "append_only_errors", "find_bin", "pg_server", "pg_url", "raw_connection",
           "store_target"]


def find_bin() -> tuple[Path | None, str]:
    """(folder with initdb, pg_ctl and postgres, or None, why not)."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(os.environ["PG_BIN"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(os.path.dirname(which))
    for c in candidates:
        d = Path(c)
        if all((d / n).is_file() for n in ("initdb", "pg_ctl", "postgres")):
            return d, ""
    return None, ("no PostgreSQL server binaries (initdb, pg_ctl, postgres) in PG_BIN, "
                  "/usr/lib/postgresql/*/bin or PATH: apt-get install postgresql-15")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _os_user() -> str | None:
    """The OS user to run postgres as (None: ourselves, when not root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True,
                       capture_output=True)
    return "postgres"


class PgServer:
    def __init__(self, bindir: Path, root: Path, *, fsync: bool = False) -> None:
        self.bindir, self.root, self.fsync = bindir, root, fsync
        self.data = root / "data"
        self.port = _free_port()
        self.user = _os_user()
        self._n = itertools.count(1)

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)

    def start(self) -> "PgServer":
        if self.user:
            shutil.chown(self.root, self.user)
        r = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "radview",
                      "--auth=trust", "--locale=C", "--encoding=UTF8", "--no-sync")
        if r.returncode:
            raise RuntimeError(f"initdb failed: {r.stderr or r.stdout}")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}"
                f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=100 -c shared_buffers=32MB")
        r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                      "-o", opts, "-w", "-t", "60", "start")
        if r.returncode:
            log = (self.root / "log").read_text(errors="replace") if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr or r.stdout}\n{log[-2000:]}")
        return self

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://radview@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        import psycopg
        name = f"t_{os.getpid()}_{next(self._n)}"
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server():
    bindir, why = find_bin()
    if bindir is None:
        pytest.skip(why)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip('psycopg 3 is not installed (pip install "psycopg[binary]>=3.1,<4")')
    root = Path(tempfile.mkdtemp(prefix="radview-pg-"))
    server = PgServer(bindir, root)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"cannot start PostgreSQL from {bindir}: {exc}")
    try:
        yield server
    finally:
        server.stop()
        for _ in range(20):
            shutil.rmtree(root, ignore_errors=True)
            if not root.exists():
                break
            time.sleep(0.1)


@pytest.fixture
def pg_url(pg_server):
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """Where a test's store lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "labels.sqlite"
    server = request.getfixturevalue("pg_server")
    return server.create_database()


def raw_connection(store):
    """A plain connection to a store's database, as another program would open it (autocommit)."""
    if getattr(store._db, "backend", "sqlite") == "postgresql":
        import psycopg
        return psycopg.connect(store._db.url, autocommit=True)
    import sqlite3
    return sqlite3.connect(store.path, isolation_level=None)


def append_only_errors(store) -> type[BaseException]:
    """The error a refused UPDATE/DELETE of an event raises on the store's backend."""
    if getattr(store._db, "backend", "sqlite") == "postgresql":
        import psycopg
        return psycopg.IntegrityError
    import sqlite3
    return sqlite3.IntegrityError
