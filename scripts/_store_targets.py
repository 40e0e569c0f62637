"""The label-store targets a store benchmark runs on (scripts/bench_store_team.py,
scripts/bench_store_worklists.py): a SQLite file in a temporary folder and a PostgreSQL database,
given (--pg URL of an empty database) or on a temporary server started from the machine's
binaries (tests/postgres.py; durable: fsync on, as SQLite's synchronous=FULL). Everything
temporary is stopped and removed afterwards."""
from __future__ import annotations

import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def store_targets(prefix: str, only: str | None = None, pg: str = "") -> Iterator[dict]:
    """{'sqlite': Path, 'postgresql': URL}, without the backend `only` leaves out (and without
    PostgreSQL, said why, when no server binaries are found)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    server, targets = None, {}
    try:
        if only != "postgresql":
            targets["sqlite"] = work / "team.sqlite"
        if only != "sqlite":
            url = pg
            if not url:
                sys.path.insert(0, str(ROOT / "tests"))
                from postgres import PgServer, find_bin
                bindir, why = find_bin()
                if bindir is None:
                    print(f"PostgreSQL skipped: {why}")
                else:
                    pgroot = Path(tempfile.mkdtemp(prefix="radview-bench-pg-"))  # the postgres user's
                    server = PgServer(bindir, pgroot, fsync=True)
                    server.start()
                    url = server.create_database()
            if url:
                targets["postgresql"] = url
        yield targets
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
