"""Undo and redo as a reader sees them, derived from the append-only history (no SQL here).

The history only grows: undoing appends the inverse of the event that currently decides
(store.undo), redoing undoes that undo. A reader's undo and redo stacks are replayed from the
events in order:
- a plain correction by the reader goes on the undo stack and clears the redo stack;
- an event that deactivates one of the reader's corrections (an undo, by anyone) moves it from
  the undo stack to the redo stack; one that reactivates it (a redo) moves it back.
So `undo_last` undoes the reader's latest still-active correction and `redo_last` re-applies the
latest undone one, as long as the reader made no new correction since (as in any editor).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from radview.store import derive
from radview.store.model import Correction


def stacks(events: Iterable[Correction], reader: str | None = None
           ) -> tuple[list[int], list[int], dict[int, int]]:
    """(undo stack, redo stack, {plain id: head id}) of `reader` (None: every reader) from the
    events of the scope (all events of the items concerned, in any order). Stacks hold plain
    event ids, top last."""
    evs = sorted(events, key=lambda e: e.id)
    root: dict[int, int] = {}
    head: dict[int, int] = {}
    depth: dict[int, int] = {}
    owner: dict[int, str] = {}
    undo: list[int] = []
    redo: list[int] = []
    for e in evs:
        if e.inverse_of is None:
            root[e.id], head[e.id], depth[e.id], owner[e.id] = e.id, e.id, 0, e.reader
            if reader is None or e.reader == reader:
                undo.append(e.id)
                redo.clear()
            continue
        r = root.get(e.inverse_of)
        if r is None:  # undoes an event outside the scope
            continue
        root[e.id], head[r] = r, e.id
        depth[e.id] = depth[e.inverse_of] + 1
        if reader is not None and owner[r] != reader:
            continue
        if depth[e.id] % 2 == 1:  # deactivated
            if r in undo:
                undo.remove(r)
                redo.append(r)
        else:  # reactivated
            if r in redo:
                redo.remove(r)
                undo.append(r)
    return undo, redo, head


def _chain_of(events: Sequence[Correction], event_id: int) -> tuple[int, int]:
    """(the plain event starting event_id's undo chain, the newest event of that chain)."""
    by_id = {e.id: e for e in events}
    root = event_id
    while by_id.get(root) is not None and by_id[root].inverse_of is not None:
        root = by_id[root].inverse_of
    undoer = {e.inverse_of: e.id for e in events if e.inverse_of is not None}
    head = root
    while head in undoer:
        head = undoer[head]
    return root, head


def _active(events: Sequence[Correction], plain_id: int) -> bool:
    return derive.active_map(events).get(plain_id, True)


class UndoMixin:
    """undo/redo API of LabelStore (needs history, correction, undo, reader)."""

    # ------------------------------------------------------------------ undo / redo
    def undo_event(self, event_id: int, *, reader: str | None = None) -> Correction:
        """Undo what event event_id did, wherever its undo chain stands now (after a redo, the
        redo is undone). ValueError if it is undone already."""
        ev = self.correction(event_id)
        events = self.history(ev.key, ev.level)
        root, head = _chain_of(events, event_id)
        if not _active(events, root):
            raise ValueError(f"correction #{root} is already undone")
        return self.undo(head, reader=reader)

    def redo_event(self, event_id: int, *, reader: str | None = None) -> Correction:
        """Re-apply an undone event (appends the undo of its undo). ValueError if it is active."""
        ev = self.correction(event_id)
        events = self.history(ev.key, ev.level)
        root, head = _chain_of(events, event_id)
        if _active(events, root):
            raise ValueError(f"correction #{root} is not undone")
        return self.undo(head, reader=reader)

    def undo_stack(self, reader: str | None = None, *, key: Any = None,
                   level: str | None = None) -> tuple[list[int], list[int]]:
        """(undo stack, redo stack) of plain event ids, top last, of `reader` (default: this
        store's reader) over one item or everything. See radview.store.undo."""
        reader = reader or self.reader
        events = self.history(key, level) if key is not None else self.history(level=level)
        undo, redo, _ = stacks(events, reader)
        return undo, redo

    def can_undo(self, reader: str | None = None, *, key: Any = None, level: str | None = None) -> bool:
        return bool(self.undo_stack(reader, key=key, level=level)[0])

    def can_redo(self, reader: str | None = None, *, key: Any = None, level: str | None = None) -> bool:
        return bool(self.undo_stack(reader, key=key, level=level)[1])

    def undo_last(self, reader: str | None = None, *, key: Any = None,
                  level: str | None = None) -> Correction | None:
        """Undo the reader's latest still-active correction (of one item when key is given);
        returns the appended undo event, or None when there is nothing to undo."""
        undo, _ = self.undo_stack(reader, key=key, level=level)
        return self.undo_event(undo[-1], reader=reader) if undo else None

    def redo_last(self, reader: str | None = None, *, key: Any = None,
                  level: str | None = None) -> Correction | None:
        """Re-apply the reader's latest undone correction, unless a newer correction of theirs
        came since; returns the appended event, or None when there is nothing to redo."""
        _, redo = self.undo_stack(reader, key=key, level=level)
        return self.redo_event(redo[-1], reader=reader) if redo else None
