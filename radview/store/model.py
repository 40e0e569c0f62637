"""The store's own frozen dataclasses (Correction, ItemState, QueueSummary) and value codecs.

A correction's old/new value is a class name (str) or None for kind 'label', and a tuple of
radview.types.Box for kind 'boxes' (the whole list of boxes of the image after the change,
so every event can be read on its own). In the database both are JSON.
"""
from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from radview.types import Box, Label

LEVELS = ("study", "image")
KINDS = ("label", "boxes")

#: reason code -> text shown in pickers
REASON_CODES: dict[str, str] = {
    "wrong_label": "Wrong label",
    "ambiguous": "Ambiguous",
    "bad_image": "Bad image",
    "wrong_body_part": "Wrong body part",
    "degenerative_change": "Degenerative change",
    "other": "Other (see note)",
}

Value = Any  # str | None for 'label', tuple[Box, ...] for 'boxes'

#: reader roles (issue 16): every event records its reader's role
ROLES = ("reader", "adjudicator", "admin")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown reader role {role!r} (use one of {', '.join(ROLES)})")
    return role


@dataclass(frozen=True)
class Correction:
    """One event of the append-only correction log.

    id:          row id (order of appending: higher = later).
    uid:         globally unique id (survives export/import into another store).
    key, level:  the item: ImageRef.key with level 'image', Study.key with level 'study'.
    kind:        'label' or 'boxes' (boxes only at image level).
    old_value:   the item's current value just before this event (derived, corrections win).
    new_value:   the value after it.
    model_output: what the model showed when the reader decided (class name or boxes), or None.
    reader, time (UTC ISO 8601), reason (a REASON_CODES key), note (free text),
    model, model_version: the model whose answer was on screen ('' if none),
    exclude_from_training: leave this item out of training,
    inverse_of:  id of the event this one undoes (None for a plain correction),
    consumed_by_run: id of the training run that used it (None while it waits in the queue),
    space:       the label space of the value (radview.spaces); for events written before
                 schema v2, the item's source label space.
    key is where the item lives now: an event made before its folder moved reports the new path.
    """

    id: int
    uid: str
    key: str
    level: str
    kind: str
    old_value: Value
    new_value: Value
    reader: str
    time: str
    reason: str
    note: str = ""
    model: str = ""
    model_version: str = ""
    model_output: Value = None
    exclude_from_training: bool = False
    inverse_of: int | None = None
    consumed_by_run: str | None = None
    space: str = ""
    role: str = ""  # the reader's role when written (ROLES; '' = before schema v4, unknown)
    project: str = ""  # a reading project's final label (radview.store.reads): its name
    seen_event: int | None = None     # the item's newest event its writer had seen (None: unsaid)
    conflict_with: int | None = None  # another reader's event the writer had not seen

    @property
    def is_undo(self) -> bool:
        return self.inverse_of is not None


@dataclass(frozen=True)
class ItemState:
    """Where an item stands: its current label (corrections win over the source label), the
    source label alone, and flags. label is None when nothing is known about the item."""

    key: str
    level: str
    label: Label | None
    source: Label | None = None
    corrected: bool = False        # an active correction changes value or boxes
    excluded: bool = False         # the latest active correction asks to leave it out
    boxes_known: bool = False      # boxes were given (by the source or a correction), maybe none
    n_events: int = 0              # events in its history (undos included)
    source_boxes_known: bool = False  # the source label itself lists the boxes
    last_event_id: int | None = None  # the latest active plain correction (what decides)
    last_reader: str = ""             # ... and who made it
    newest_event_id: int = 0          # the newest event of any kind, undos too (0: none): what a
                                      # reader saw, for set_label(seen=...) conflict detection


@dataclass(frozen=True)
class QueueSummary:
    """Counts over the retraining queue (pending corrections)."""

    total: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    by_reader: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    excluded: int = 0


# ------------------------------------------------------------------ helpers


def default_reader() -> str:
    """RADVIEW_READER when set, else the OS user name (what a correction records unless the
    reader is changed: LabelStore(reader=...), the label panel's Reader field, `--as`)."""
    env = os.environ.get("RADVIEW_READER", "").strip()
    if env:
        return env
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no user database entry (containers)
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def box_to_dict(box: Box) -> dict[str, Any]:
    return {"x": float(box.x), "y": float(box.y), "width": float(box.width),
            "height": float(box.height), "label": box.label,
            "score": None if box.score is None else float(box.score)}


def box_from_dict(d: dict[str, Any]) -> Box:
    score = d.get("score")
    return Box(float(d["x"]), float(d["y"]), float(d["width"]), float(d["height"]),
               str(d.get("label", "opacity")), None if score is None else float(score))


def boxes_to_json(boxes: Iterable[Box] | None) -> str | None:
    if boxes is None:
        return None
    return json.dumps([box_to_dict(b) for b in boxes])


def boxes_from_json(text: str | None) -> tuple[Box, ...] | None:
    if text is None:
        return None
    return tuple(box_from_dict(d) for d in json.loads(text))


def value_to_json(kind: str, value: Value) -> str | None:
    """Encode an event value: labels as a JSON string/null, boxes as a JSON list."""
    if kind == "boxes":
        return boxes_to_json(tuple(value) if value is not None else ())
    if value is not None and not isinstance(value, str):
        raise TypeError(f"a label value is a class name (str) or None, not {type(value).__name__}")
    return json.dumps(value)


def value_from_json(kind: str, text: str | None) -> Value:
    if text is None:
        return () if kind == "boxes" else None
    if kind == "boxes":
        return boxes_from_json(text) or ()
    return json.loads(text)


def output_to_json(value: Value) -> str | None:
    """The model's output shown: a class name, a box list, or None."""
    if value is None:
        return None
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Box):
        value = (value,)
    return json.dumps([box_to_dict(b) for b in value])


def output_from_json(text: str | None) -> Value:
    if text is None:
        return None
    data = json.loads(text)
    if isinstance(data, list):
        return tuple(box_from_dict(d) for d in data)
    return data


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    return level


def check_reason(reason: str) -> str:
    if reason not in REASON_CODES:
        raise ValueError(f"reason must be one of {tuple(REASON_CODES)}, not {reason!r}")
    return reason
