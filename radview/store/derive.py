"""Pure folding of an item's events into its current state (no SQL here).

Rules (documented in LabelStore):
- events are ordered by id (order of appending);
- an event is *active* unless an active event undoes it (inverse_of); undoing an undo
  re-activates the original, so the chain E <- U1 <- U2 leaves E active;
- the current value of a kind ('label' or 'boxes') is the new value of the latest active plain
  (non-inverse) event of that kind, else the source label's;
- the item is excluded from training when its latest active plain event says so.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from radview.store.model import Correction, ItemState
from radview.types import Box, Label


def active_map(events: Iterable[Correction]) -> dict[int, bool]:
    """id -> active for every event (they may belong to many items)."""
    evs = sorted(events, key=lambda e: e.id)
    undone_by = {e.inverse_of: e.id for e in evs if e.inverse_of is not None}
    active: dict[int, bool] = {}
    for e in reversed(evs):  # an undo is always appended after what it undoes
        u = undone_by.get(e.id)
        active[e.id] = u is None or not active.get(u, True)
    return active


def fold(key: str, level: str, source: Label | None, source_boxes_known: bool,
         events: Sequence[Correction], active: dict[int, bool] | None = None) -> ItemState:
    """The ItemState of one item from its source label and its events (any order)."""
    evs = sorted(events, key=lambda e: e.id)
    if active is None:
        active = active_map(evs)
    value_ev: Correction | None = None
    boxes_ev: Correction | None = None
    last_plain: Correction | None = None
    for e in evs:
        if e.inverse_of is not None or not active.get(e.id, True):
            continue
        last_plain = e
        if e.kind == "label":
            value_ev = e
        else:
            boxes_ev = e
    corrected = value_ev is not None or boxes_ev is not None
    if source is None and not corrected:
        return ItemState(key, level, None, None, False, False, False, len(evs),
                         source_boxes_known, newest_event_id=evs[-1].id if evs else 0)
    value = value_ev.new_value if value_ev is not None else (source.value if source else None)
    boxes: tuple[Box, ...] = (tuple(boxes_ev.new_value) if boxes_ev is not None
                              else (source.boxes if source else ()))
    label_source = "correction" if corrected else (source.source if source else "")
    space = next((e.space for e in (value_ev, boxes_ev) if e is not None and e.space), "")
    label = Label(value=value, boxes=boxes, source=label_source,
                  space=space or (source.space if source else ""))
    return ItemState(
        key=key,
        level=level,
        label=label,
        source=source,
        corrected=corrected,
        excluded=bool(last_plain.exclude_from_training) if last_plain is not None else False,
        boxes_known=boxes_ev is not None or source_boxes_known,
        n_events=len(evs),
        source_boxes_known=source_boxes_known,
        last_event_id=last_plain.id if last_plain is not None else None,
        last_reader=last_plain.reader if last_plain is not None else "",
        newest_event_id=evs[-1].id if evs else 0,
    )


def pending(events: Iterable[Correction]) -> list[Correction]:
    """The retraining queue: active events not consumed by a training run. A plain event counts;
    an undo counts only when what it undoes was already consumed (the model learnt it)."""
    evs = sorted(events, key=lambda e: e.id)
    active = active_map(evs)
    by_id = {e.id: e for e in evs}
    out = []
    for e in evs:
        if e.consumed_by_run is not None or not active[e.id]:
            continue
        if e.inverse_of is not None:
            target = by_id.get(e.inverse_of)
            if target is None or target.consumed_by_run is None:
                continue
        out.append(e)
    return out
