"""Row codecs shared by the label store's modules: SQL column lists and row -> dataclass."""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from radview.store import keys as _keys, queue as _queue
from radview.store.model import (Correction, Value, box_from_dict, boxes_from_json,
                                  output_from_json, value_from_json)
from radview.types import Label

CHUNK = 500
#: label sources that give every box of an image (no box there = no finding)
BOX_SOURCES = frozenset({"rsna-csv", "coco", "import:rsna", "import:coco"})
EVENT_COLS = ("c.id, c.uid, c.key, c.level, c.kind, c.old_value, c.new_value, c.reader, c.time,"
               " c.reason, c.note, c.model, c.model_version, c.model_output,"
               " c.exclude_from_training, c.inverse_of, k.run_id, " + _queue.SPACE_SQL +
               ", c.reader_role, c.project, c.seen_event, c.conflict_with")
EVENT_FROM = " FROM corrections c LEFT JOIN consumed k ON k.event_id = c.id"


def as_key(item: Any) -> str:
    key = getattr(item, "key", item)
    if not isinstance(key, str) or not key:
        raise ValueError(f"an item key is a non-empty str (ImageRef.key or Study.key), not {item!r}")
    return key


def event_row(row: Sequence[Any], moved: Mapping[str, str] | None = None) -> Correction:
    (id_, uid, key, level, kind, old, new, reader, time, reason, note, model, version, output,
     exclude, inverse_of, run_id, space, role, project, seen, conflict) = row
    if moved:
        key = _keys.forward(key, moved)
    return Correction(id=id_, uid=uid, key=key, level=level, kind=kind, space=space or "",
                      old_value=value_from_json(kind, old), new_value=value_from_json(kind, new),
                      reader=reader, time=time, reason=reason, note=note, model=model,
                      model_version=version, model_output=output_from_json(output),
                      exclude_from_training=bool(exclude), inverse_of=inverse_of,
                      consumed_by_run=run_id, role=role or "", project=project or "",
                      seen_event=seen, conflict_with=conflict)


def source_row(row: Sequence[Any] | None) -> tuple[Label | None, bool]:
    if row is None:
        return None, False
    value, boxes, source, space = row
    parsed = boxes_from_json(boxes)
    return Label(value=value, boxes=parsed or (), source=source, space=space or ""), parsed is not None


def value_in(kind: str, value: Any) -> Value:
    """A value from JSON (boxes as dicts) -> store value."""
    if kind == "boxes":
        return tuple(box_from_dict(d) for d in (value or ()))
    return value


def output_in(value: Any) -> Value:
    if isinstance(value, list):
        return tuple(box_from_dict(d) for d in value)
    return value


def to_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def from_json(text: str | None) -> Any:
    return json.loads(text) if text else {}

