"""Where radview keeps things: bundled resources and the user's data folder.

`RADVIEW_HOME` relocates all user data (scan index, label store, user models, settings).
"""
from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "radview"


def resources_dir() -> Path:
    """The bundled resources (models with their weights, icons, style sheet).

    An installed wheel carries them inside the package (`radview/_resources`, copied there by
    setup.py's build hook); a checkout (or an editable install of it) uses its `resources/`
    folder, where the training scripts write models.
    """
    here = Path(__file__).resolve().parent
    installed = here / "_resources"
    if installed.is_dir():
        return installed
    return here.parent / "resources"


def user_home() -> Path:
    """The user's radview data folder, created on first use."""
    env = os.environ.get("RADVIEW_HOME")
    if env:
        home = Path(env).expanduser()
    else:
        import platformdirs

        home = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    home.mkdir(parents=True, exist_ok=True)
    return home


def index_db_path() -> Path:
    """SQLite file caching folder scans (header index)."""
    return user_home() / "index.sqlite"


def store_db_path() -> Path:
    """SQLite file of the label store (labels, boxes, corrections, predictions cache)."""
    return user_home() / "labels.sqlite"


def user_models_dir() -> Path:
    d = user_home() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_json_atomic(path: str | os.PathLike, data, **dump_kw) -> None:
    """Write `data` as JSON to `path` so that a reader sees the old file or the new one, never a
    half-written one (temp file in the same folder, fsync, rename); the folder must exist."""
    import json
    import tempfile

    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, **dump_kw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
