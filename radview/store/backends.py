"""Which database the label store lives in: SQLite (default, nothing to configure) or PostgreSQL.

`store_target(path=None)` resolves, in order:
1. the path given (a file path, or a `postgresql://user@host:port/db` URL);
2. the environment variable RADVIEW_STORE (a URL or a file path);
3. the settings entry `store/url` in RADVIEW_HOME/radview.ini (the app's QSettings INI file,
   section [store], key url);
4. radview.paths.store_db_path() (the SQLite file under RADVIEW_HOME).
When the target names PostgreSQL no SQLite file is created or written.
`open_database(target, ...)` returns radview.store.db.Database (SQLite) or
radview.store.pg.PgDatabase; both offer write(fn)/read(fn) with the store's SQLite SQL.
"""
from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Any

from radview.store.errors import StoreError
from radview.store.pg import is_url

ENV = "RADVIEW_STORE"


def _settings_url() -> str:
    from radview import paths
    ini = paths.user_home() / "radview.ini"
    if not ini.is_file():
        return ""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return ""  # the app's own settings file; a broken one is reported by the app
    return parser.get("store", "url", fallback="").strip().strip('"')


def store_target(path: str | os.PathLike | None = None) -> str | Path:
    """A PostgreSQL URL (str) or an absolute SQLite file path (Path)."""
    if path is None:
        path = os.environ.get(ENV, "").strip() or None
    if path is None:
        try:
            path = _settings_url() or None
        except OSError:
            path = None
    if path is None:
        from radview.paths import store_db_path
        try:
            path = store_db_path()
        except OSError as exc:  # RADVIEW_HOME cannot be created
            raise StoreError(os.environ.get("RADVIEW_HOME", "<user data folder>"),
                             f"cannot create the data folder ({exc})", action="open") from exc
    if is_url(str(path)):
        return str(path)
    return Path(path).expanduser().absolute()


def open_database(target: str | Path, **kwargs: Any):
    """The Database of a target from store_target()."""
    if isinstance(target, str) and is_url(target):
        from radview.store.pg import PgDatabase
        return PgDatabase(target, **kwargs)
    from radview.store.db import Database
    return Database(target, **kwargs)


def backend_of(target: str | Path) -> str:
    return "postgresql" if isinstance(target, str) and is_url(target) else "sqlite"
