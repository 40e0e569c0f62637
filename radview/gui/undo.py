"""Undoable label and box edits: QUndoCommand subclasses over radview.store.LabelStore.

Every command's first redo appends a correction event; undo appends the inverse event
(store.undo); a later redo undoes that undo (the original event becomes active again). The
store's history therefore only grows, and the undo stack is just a cursor over it.

Push commands with `push(stack, command)`: it performs the first store write *before* the
command enters the stack, so a store error (disk full, read-only) raises StoreError to the
caller and leaves the stack unchanged. Errors in later undo/redo are reported through
`store_signals().failed` and the command is made obsolete.

`store_signals()` is one QObject per process. `event(Correction)` is THE event after each
correction, undo or redo (one per store write): the main window turns it into the updates of the
browser's label columns, the viewer overlays, the label, queue and review panels, all in the same
event-loop turn. `changed(key, level)` and `appended(Correction)` carry the same write for
listeners outside the window. Undo/redo logic lives in the store (`undo_event` / `redo_event`);
the commands only call it.

Box commands identify boxes by value (a radview.types.Box is a frozen dataclass), so they do not
depend on list positions that other edits may shift:
    AddBoxCommand(store, key, box)                      draw a box
    ReplaceBoxCommand(store, key, old, new)             move / resize / relabel one box
    DeleteBoxCommand(store, key, box)
    AcceptBoxCommand(store, key, predicted_box)         a predicted box becomes a true one
    RejectBoxCommand(store, key, predicted_box)         recorded; the true boxes are unchanged
    SetBoxesCommand(store, key, boxes)                  any other change of the whole list
    SetLabelCommand(store, key, value, level=...)       a class label (study or image)
Keyword arguments `reason, note, model, model_version, model_output, exclude_from_training,
reader` are passed to the store with the first write.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from radview.store import Correction, LabelStore, StoreError
from radview.types import Box


class StoreSignals(QObject):
    """changed(key, level) after an item's labels changed; appended(Correction) per event;
    failed(message) when an undo/redo could not be written."""

    event = Signal(object)
    changed = Signal(str, str)
    appended = Signal(object)
    failed = Signal(str)


_SIGNALS: StoreSignals | None = None


def store_signals() -> StoreSignals:
    """The process-wide hub (created on first use, in the GUI thread)."""
    global _SIGNALS
    if _SIGNALS is None:
        _SIGNALS = StoreSignals()
    return _SIGNALS


def push(stack: QUndoStack | None, command: "StoreCommand") -> Correction:
    """Write the command's first event, then put it on the stack (if any). Returns the event.
    Raises StoreError (stack untouched) if the store cannot be written."""
    event = command.apply_first()
    if stack is not None:
        stack.push(command)
    return event


class StoreCommand(QUndoCommand):
    """Base: subclasses implement first_write() -> Correction (one store append)."""

    def __init__(self, store: LabelStore, key: str, level: str, text: str, **meta: Any) -> None:
        super().__init__(text)
        self.store, self.key, self.level = store, key, level
        self.meta = {k: v for k, v in meta.items() if v is not None}
        self.event: Correction | None = None      # the correction this command made
        self._applied = False

    # subclasses
    def first_write(self) -> Correction:
        raise NotImplementedError

    # protocol
    def apply_first(self) -> Correction:
        if self.event is None:
            self.event = self.first_write()
            self._applied = True
            self._emit(self.event)
        return self.event

    def redo(self) -> None:
        if self.event is None:
            self._guard(self.apply_first)
            return
        if self._applied:
            return  # push() already wrote it; QUndoStack.push calls redo once more
        self._guard(lambda: self._redo())

    def _redo(self) -> None:
        assert self.event is not None
        ev = self.store.redo_event(self.event.id)  # the store knows where the chain stands
        self._applied = True
        self._emit(ev)

    def undo(self) -> None:
        if self.event is None or not self._applied:
            return

        def do() -> None:
            ev = self.store.undo_event(self.event.id)
            self._applied = False
            self._emit(ev)
        self._guard(do)

    def _guard(self, fn) -> None:
        try:
            fn()
        except (StoreError, ValueError) as exc:
            self.setObsolete(True)
            store_signals().failed.emit(str(exc))

    def _emit(self, event: Correction) -> None:
        sig = store_signals()
        sig.event.emit(event)
        sig.appended.emit(event)
        sig.changed.emit(self.key, self.level)


class SetLabelCommand(StoreCommand):
    def __init__(self, store: LabelStore, key: str, value: str | None, level: str = "image",
                 **meta: Any) -> None:
        super().__init__(store, key, level, f"Label {value or 'none'}", **meta)
        self.value = value

    def first_write(self) -> Correction:
        return self.store.set_label(self.key, self.value, level=self.level, **self.meta)


class SetBoxesCommand(StoreCommand):
    """Set the whole box list of an image."""

    def __init__(self, store: LabelStore, key: str, boxes: Iterable[Box] | None = None,
                 text: str = "Edit boxes", **meta: Any) -> None:
        super().__init__(store, key, "image", text, **meta)
        self.boxes = None if boxes is None else tuple(boxes)

    def new_boxes(self, current: tuple[Box, ...]) -> tuple[Box, ...]:
        assert self.boxes is not None
        return self.boxes

    def first_write(self) -> Correction:
        label = self.store.label(self.key)
        current = label.boxes if label is not None else ()
        return self.store.set_boxes(self.key, self.new_boxes(current), **self.meta)


class AddBoxCommand(SetBoxesCommand):
    def __init__(self, store: LabelStore, key: str, box: Box, **meta: Any) -> None:
        super().__init__(store, key, None, f"Add box {box.label}", **meta)
        self.box = box

    def new_boxes(self, current):
        return (*current, self.box)


class ReplaceBoxCommand(SetBoxesCommand):
    """Move, resize or relabel: old box -> new box."""

    def __init__(self, store: LabelStore, key: str, old: Box, new: Box, text: str = "",
                 **meta: Any) -> None:
        if not text:
            text = ("Relabel box" if old.label != new.label
                    else "Resize box" if (old.width, old.height) != (new.width, new.height)
                    else "Move box")
        super().__init__(store, key, None, text, **meta)
        self.old, self.new = old, new

    def new_boxes(self, current):
        return _replace_one(current, self.old, self.new)


MoveBoxCommand = ResizeBoxCommand = ReplaceBoxCommand


class RelabelBoxCommand(ReplaceBoxCommand):
    def __init__(self, store: LabelStore, key: str, box: Box, label: str, **meta: Any) -> None:
        super().__init__(store, key, box, replace(box, label=label), f"Relabel box {label}", **meta)


class DeleteBoxCommand(SetBoxesCommand):
    def __init__(self, store: LabelStore, key: str, box: Box, **meta: Any) -> None:
        super().__init__(store, key, None, "Delete box", **meta)
        self.box = box

    def new_boxes(self, current):
        return _replace_one(current, self.box, None)


class AcceptBoxCommand(SetBoxesCommand):
    """A predicted box (with its score) is accepted as a true box (score dropped); the
    prediction is recorded as the model output shown."""

    def __init__(self, store: LabelStore, key: str, predicted: Box, **meta: Any) -> None:
        meta.setdefault("model_output", predicted)
        meta.setdefault("note", "accepted predicted box")
        super().__init__(store, key, None, "Accept predicted box", **meta)
        self.predicted = predicted

    def new_boxes(self, current):
        return (*current, replace(self.predicted, score=None))


class RejectBoxCommand(SetBoxesCommand):
    """A predicted box is rejected: the true boxes stay as they are; the event records the
    rejected box as the model output (a hard negative for retraining)."""

    def __init__(self, store: LabelStore, key: str, predicted: Box, **meta: Any) -> None:
        meta.setdefault("model_output", predicted)
        meta.setdefault("note", "rejected predicted box")
        super().__init__(store, key, None, "Reject predicted box", **meta)
        self.predicted = predicted

    def new_boxes(self, current):
        return tuple(current)


def _replace_one(boxes: tuple[Box, ...], old: Box, new: Box | None) -> tuple[Box, ...]:
    out = list(boxes)
    for i, b in enumerate(out):
        if b == old:
            if new is None:
                del out[i]
            else:
                out[i] = new
            return tuple(out)
    raise ValueError(f"box {old} is not among the image's boxes")


def open_owned_store(widget):
    """(LabelStore, None) opened for a widget that closes it when destroyed, or (None, reason)."""
    from radview.store import LabelStore, StoreError

    try:
        store = LabelStore()
    except StoreError as exc:
        return None, str(exc)
    widget.destroyed.connect(lambda *_: store.close())  # we opened it: we close it
    return store, None
