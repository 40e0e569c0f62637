"""Measurement tools on the canvas (issue 14): length, angle, Cobb angle, rectangle / ellipse
ROI and a user calibration, computed by radview.measure (the same numbers as
`radview measure FILE --line ...`), kept as annotations in the store (undoable).

    handler = ToolHandler("length", finished)   # canvas.tool_handler = handler
    finished(canvas, kind, points)              # called when a gesture is complete

Gestures (left button; Shift+drag still draws a box, Space/middle still pan):
length, rect, ellipse, calibrate: drag from one point to the other. angle: drag the first arm
(end -> vertex), then press-drag-release the end of the second arm. cobb: drag one line, then
the other.

MeasureCommand(store, key, measurement, on_change) is a QUndoCommand: its first redo appends the
'add' event; undo appends a 'delete' event, redo a 'restore' (store.undo_measurement): the
history only grows.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

NEEDS = {"length": (2,), "rect": (2,), "ellipse": (2,), "calibrate": (2,), "angle": (2, 3), "cobb": (2, 4)}
TITLES = {"length": "Length", "angle": "Angle", "cobb": "Cobb angle", "rect": "Rectangle ROI",
          "ellipse": "Ellipse ROI", "calibrate": "Calibration line", "calibration": "Calibration", "box": "Box"}


class ToolHandler:
    """The gesture state of one tool on the canvases (one drawing at a time)."""

    def __init__(self, kind: str, finished: Callable, calibration: Callable | None = None):
        self.kind = kind
        self.finished = finished
        self.calibration = calibration  # canvas -> radview.measure.Calibration (for the live readout)
        self.points: list[tuple[float, float]] = []
        self.active = False
        self.canvas = None

    def reset(self) -> None:
        canvas = self.canvas
        self.points, self.active, self.canvas = [], False, None
        if canvas is not None:
            canvas.viewport().update()

    # the canvas calls these with image coordinates
    def press(self, canvas, pt) -> bool:
        if self.kind == "box":
            return False  # the canvas draws boxes itself
        if self.canvas is not canvas:
            self.points, self.canvas = [], canvas
        if not self.points:
            self.points = [pt, pt]
        else:
            self.points += [pt] if self.kind == "angle" else [pt, pt]
        self.active = True
        canvas.viewport().update()
        return True

    def move(self, canvas, pt) -> None:
        if self.points:
            self.points[-1] = pt
            canvas.viewport().update()

    def release(self, canvas, pt) -> None:
        self.active = False
        if not self.points:
            return
        self.points[-1] = pt
        a, b = self.points[-2], self.points[-1]
        if abs(a[0] - b[0]) < 1 and abs(a[1] - b[1]) < 1 and self.kind != "angle":
            self.points = self.points[:-2]  # a click, not a drag: nothing drawn
            canvas.viewport().update()
            return
        if len(self.points) >= NEEDS[self.kind][-1]:
            points, self.points, self.canvas = tuple(self.points), [], None
            canvas.viewport().update()
            self.finished(canvas, self.kind, points)
        canvas.viewport().update()

    def preview(self, canvas):
        """The measurement being drawn (for the canvas to paint), or None."""
        if self.canvas is not canvas or len(self.points) < 2 or canvas.frame is None:
            return None
        pts = list(self.points)
        kind = self.kind
        try:
            cal = self.calibration(canvas) if self.calibration is not None else None
            if cal is None:
                return None
            if kind == "angle" and len(pts) == 2 or kind in ("calibrate",) or kind == "cobb" and len(pts) < 4:
                from radview.measure import length

                m = length(cal, pts[-2], pts[-1])
                return _Preview(m, kind, pts)
            return compute(kind, cal, canvas.frame, pts)
        except ValueError:
            return None


class _Preview:
    """A partly drawn measurement: its lines so far and the length of the last one."""

    def __init__(self, m, kind: str, pts):
        self.kind = "length" if kind != "cobb" or len(pts) < 4 else "cobb"
        self.points = tuple(pts) if kind != "cobb" else tuple(pts[-2:])
        self.display_text = ("calibrate: " if kind == "calibrate" else "") + m.text


def compute(kind: str, cal, frame, pts):
    """The radview.measure measurement of a finished gesture (the CLI's functions)."""
    from radview.measure import angle, cobb_angle, length, roi

    if kind == "length":
        return length(cal, pts[0], pts[1])
    if kind == "angle":
        return angle(cal, pts[0], pts[1], pts[2])
    if kind == "cobb":
        return cobb_angle(cal, pts[0], pts[1], pts[2], pts[3])
    if kind in ("rect", "ellipse"):
        return roi(cal, frame, pts[0], pts[1], kind=kind)
    raise ValueError(f"unknown measurement tool {kind!r}")


class GuardedCommand(QUndoCommand):
    """An undo step whose store write can fail later (the store changed under it): the error
    goes to on_error naming the image, and the command becomes obsolete."""
    key: str
    on_error: Callable[[str], None] | None

    def _guard(self, fn) -> None:
        from radview.store import StoreError

        try:
            fn()
        except (StoreError, ValueError, KeyError) as exc:
            self.setObsolete(True)
            if self.on_error is not None:
                self.on_error(f"{self.key}: {exc}")


class MeasureCommand(GuardedCommand):
    """Add a measurement to the store (or, with add_id, delete a stored one), undoably: every
    step appends an event (add / delete / restore), the history only grows."""

    def __init__(self, store, key: str, measurement, on_change: Callable[[str], None],
                 on_error: Callable[[str], None] | None = None, add_id: int | None = None):
        verb = "Delete " if add_id is not None else ""
        super().__init__(f"{verb}{TITLES.get(measurement.kind, measurement.kind)} {measurement.text}")
        self.store, self.key, self.measurement = store, key, measurement
        self.on_change, self.on_error = on_change, on_error
        self.add_id = add_id
        self.deleting = add_id is not None
        self.done_once = False

    def first_write(self) -> None:
        """The first store write (before the command enters a stack: errors reach the caller)."""
        if self.deleting:
            self.store.delete_measurement(self.add_id)
        else:
            self.add_id = self.store.add_measurement(self.key, self.measurement).id
        self.done_once = True
        self._pushed = False  # the stack's push() calls redo(): the write is done already

    def redo(self) -> None:
        if not self.done_once:
            self.first_write()
            self._pushed = True
        elif not getattr(self, "_pushed", True):
            self._pushed = True
        else:
            self._guard(self._remove if self.deleting else self._restore)
        self.on_change(self.key)

    def undo(self) -> None:
        self._guard(self._restore if self.deleting else self._remove)
        self.on_change(self.key)

    def _remove(self) -> None:
        self.store.delete_measurement(self.add_id, note="undo" if not self.deleting else "")

    def _restore(self) -> None:
        last = [e for e in self.store.measurement_history(self.key) if e.target == self.add_id][-1]
        self.store.undo_measurement(last.id)

