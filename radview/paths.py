"""Where radview keeps things: bundled resources and the user's data folder.

`RADVIEW_HOME` relocates all user data (scan index, label store, user models, settings).
"""
from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "radview"


def resources_dir() -> Path:
    """The bundled `resources/` folder of the checkout (models, icons, style sheet)."""
    return Path(__file__).resolve().parent.parent / "resources"


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
