"""The label panel's keys for a set of classes: the defaults (N/A for a binary normal-vs-other
task, else 1-9 in class order) and the ones a user saved (settings under RADVIEW_HOME)."""
from __future__ import annotations

import json
from typing import Sequence


def default_keys(classes: Sequence[str]) -> dict[str, str]:
    """N/A for a binary normal-vs-other task, else 1-9 in class order."""
    classes = list(classes)
    if len(classes) == 2 and "normal" in classes:
        other = classes[1 - classes.index("normal")]
        return {"N": "normal", "A": other}
    return {str(i + 1): c for i, c in enumerate(classes[:9])}


def _keys_setting(classes: Sequence[str]) -> str:
    return "label_keys/" + "|".join(classes).replace("/", "_")


def saved_keys(classes: Sequence[str]) -> dict[str, str] | None:
    """The label keys saved for this set of classes (settings under RADVIEW_HOME), if valid."""
    from radview.gui import settings as cfg

    raw = cfg.get(_keys_setting(classes), None)
    if not raw:
        return None
    try:
        keys = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(keys, dict) or not keys or not set(keys.values()) <= set(classes):
        return None
    return {str(k): str(v) for k, v in keys.items()}
