"""Editing a drawn measurement on the canvas (issue 14): grab one of its handles (an end of a
line, the vertex or an end of an angle, a corner of an ROI) with the left button and drag it;
the number is recomputed as it moves (radview.measure, the same functions as the CLI) and, on
release, the store records the edit as appended events (store.edit_measurement: the new
measurement added, the old one deleted, in one transaction), undoable with Ctrl+Z.

HandleEditor is an event filter on each canvas's viewport: it sees the press before the canvas
(and before a measurement tool), so a handle can be grabbed with any tool; a press anywhere
else goes on to the canvas as before. Only saved measurements have handles.

EditCommand(store, key, old id, old, new, on_change) is the QUndoCommand: first_write() appends
the edit, undo / redo swap the two (store.swap_measurements): the history only grows.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt

from radview.gui.measure_tools import GuardedCommand

GRAB_PX = 8  # how near (screen pixels) a press must be to a handle


class EditCommand(GuardedCommand):
    def __init__(self, store, key: str, old_id: int, old, new, on_change: Callable[[str], None],
                 on_error: Callable[[str], None] | None = None):
        from radview.gui.measure_tools import TITLES

        super().__init__(f"Edit {TITLES.get(new.kind, new.kind)}: {old.text} -> {new.text}")
        self.store, self.key, self.old_id, self.old, self.new = store, key, old_id, old, new
        self.new_id: int | None = None
        self.on_change, self.on_error = on_change, on_error
        self._pushed = False

    def first_write(self) -> None:
        """The edit's store write (before the command enters a stack: errors reach the caller)."""
        self.new_id = self.store.edit_measurement(self.old_id, self.new).id

    def redo(self) -> None:
        if not self._pushed:  # the stack's push() calls redo(): the write is done already
            self._pushed = True
        else:
            self._guard(lambda: self.store.swap_measurements(self.old_id, self.new_id, note="redo"))
        self.on_change(self.key)

    def undo(self) -> None:
        self._guard(lambda: self.store.swap_measurements(self.new_id, self.old_id, note="undo"))
        self.on_change(self.key)


class HandleEditor(QObject):
    """Drag handles of the measurements drawn on a canvas. `window` gives calibration_for(canvas),
    canvas_key(canvas), edit_measurement(key, add id, old, new) and status_label."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.drag: dict | None = None  # canvas, row, add id, old measurement, handle, new measurement

    def attach(self, canvas) -> None:
        canvas.viewport().installEventFilter(self)

    def handle_at(self, canvas, pos) -> tuple[int, int] | None:
        """(row in canvas.measurements, handle index) of the saved measurement handle nearest to
        the viewport point pos, within GRAB_PX; None when there is none."""
        from radview.measure import handles
        from radview.measure.edit import nearest

        best = None
        for row, (add_id, m) in enumerate(canvas.measurements):
            if add_id is None:
                continue
            pts = [canvas.view_point(*p) for p in handles(m.kind, m.points)]
            i = nearest([(p.x(), p.y()) for p in pts], (pos.x(), pos.y()), GRAB_PX)
            if i is not None:
                p = pts[i]
                d = (p.x() - pos.x()) ** 2 + (p.y() - pos.y()) ** 2
                if best is None or d < best[0]:
                    best = (d, row, i)
        return None if best is None else (best[1], best[2])

    def eventFilter(self, obj, event):  # noqa: N802
        t = event.type()
        if t not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            return False
        canvas = obj.parent()
        if t == QEvent.Type.MouseButtonPress:
            return self._press(canvas, event)
        if self.drag is None or self.drag["canvas"] is not canvas:
            if t == QEvent.Type.MouseMove and not event.buttons():
                self._hover(obj, canvas, event.position())
            return False
        if t == QEvent.Type.MouseMove:
            self._move(canvas, event.position())
        elif event.button() == Qt.MouseButton.LeftButton:
            self._release(canvas, event.position())
        return True

    def _hover(self, viewport, canvas, pos) -> None:
        """Over a handle the cursor says it can be moved (the canvas's own cursor elsewhere)."""
        over = bool(canvas.measurements) and canvas.frame is not None and self.handle_at(canvas, pos) is not None
        if over != bool(viewport.property("radview_handle")):
            viewport.setProperty("radview_handle", over)
            viewport.setCursor(Qt.CursorShape.SizeAllCursor) if over else viewport.unsetCursor()

    def _press(self, canvas, event) -> bool:
        if (event.button() != Qt.MouseButton.LeftButton or canvas.frame is None
                or event.modifiers() & Qt.KeyboardModifier.ShiftModifier or canvas.pan_mode or canvas._space):
            return False
        handler = canvas.tool_handler
        if handler is not None and handler.points:  # a measurement half drawn (an angle's 2nd arm)
            return False
        hit = self.handle_at(canvas, event.position())
        if hit is None:
            return False
        row, i = hit
        add_id, m = canvas.measurements[row]
        self.drag = {"canvas": canvas, "row": row, "id": add_id, "old": m, "handle": i, "new": m}
        canvas.setCursor(Qt.CursorShape.SizeAllCursor)
        return True

    def _move(self, canvas, pos) -> None:
        from radview.gui.measure_tools import compute
        from radview.measure import move_handle

        d = self.drag
        pts = move_handle(d["old"].kind, d["old"].points, d["handle"], canvas.image_point(pos))
        try:
            m = compute(d["old"].kind, self.w.calibration_for(canvas), canvas.frame, pts)
        except ValueError:
            return  # a zero-length arm or an empty ROI while passing through: keep the last one
        d["new"] = m
        if d["row"] < len(canvas.measurements):
            canvas.measurements[d["row"]] = (d["id"], m)
        self.w.status_label.setText(f"{m.text}  ({m.basis})")
        canvas.viewport().update()

    def _release(self, canvas, pos) -> None:
        self._move(canvas, pos)
        d, self.drag = self.drag, None
        canvas.unsetCursor() if self.w.tool is None else canvas.setCursor(Qt.CursorShape.CrossCursor)
        if d["new"] is d["old"] or d["new"].points == d["old"].points:
            return
        key = self.w.canvas_key(canvas)
        if key is not None:
            self.w.edit_measurement(key, d["id"], d["old"], d["new"])
