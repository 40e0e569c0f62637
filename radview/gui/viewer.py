"""The study viewer: all views of a study in a grid (1-4) or one at a time, frames loaded on
an io thread and kept in a byte-bounded LRU."""
from __future__ import annotations

import collections

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from radview.gui.canvas import ImageCanvas
from radview.gui.workers import TaskQueue
from radview.types import Frame, ImageRef, Study, Window


def _load(ref: ImageRef) -> Frame:
    from radview.io import load_frame

    return load_frame(ref.path, ref.frame)


class FrameStore(QObject):
    """Decoded frames: get(ref) returns a cached Frame or None and loads it in the background;
    loaded(key, frame, error) when it arrives. Bounded by bytes (default 512 MB)."""

    loaded = Signal(str, object, object)

    def __init__(self, max_bytes: int = 512 * 2**20, parent: QObject | None = None):
        super().__init__(parent)
        self.max_bytes = max_bytes
        self.bytes = 0
        self._lru: collections.OrderedDict[str, Frame] = collections.OrderedDict()
        self.errors: dict[str, str] = {}
        self.queue = TaskQueue(max_pending=16, parent=self)
        self.queue.done.connect(self._done)

    def get(self, ref: ImageRef, load: bool = True) -> Frame | None:
        f = self._lru.get(ref.key)
        if f is not None:
            self._lru.move_to_end(ref.key)
            return f
        if load and ref.key not in self.errors:
            self.queue.submit(ref.key, _load, ref)
        return None

    def _done(self, key, frame, error) -> None:
        if error is not None:
            self.errors[key] = error
        else:
            self._lru[key] = frame
            self.bytes += frame.stored.nbytes
            while self.bytes > self.max_bytes and len(self._lru) > 1:
                _, old = self._lru.popitem(last=False)
                self.bytes -= old.stored.nbytes
        self.loaded.emit(key, frame, error)

    def clear(self) -> None:
        self.queue.clear()
        self._lru.clear()
        self.errors.clear()
        self.bytes = 0

    def stop(self) -> None:
        self.queue.stop()


class StudyViewer(QWidget):
    """Shows one study. currentChanged(index of the active view) when the user moves;
    frameShown(index, Frame) when a canvas got its pixels."""

    currentChanged = Signal(int)
    frameShown = Signal(int, object)
    windowChanged = Signal(object)
    pixelInfo = Signal(str)

    MAX_GRID = 4

    def __init__(self, frames: FrameStore, parent=None):
        super().__init__(parent)
        self.frames = frames
        self.study: Study | None = None
        self.current = 0
        self.grid_mode = True
        self.canvases: list[ImageCanvas] = []
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        for i in range(self.MAX_GRID):
            c = ImageCanvas(self)
            c.activated.connect(lambda i=i: self._canvas_clicked(i))
            c.windowChanged.connect(self.windowChanged)
            c.pixelInfo.connect(self.pixelInfo)
            c.setVisible(False)
            self.canvases.append(c)
        self.canvases[0].setVisible(True)
        self.canvases[0].set_message("Open a folder or files (Ctrl+O), or drop them here")
        frames.loaded.connect(self._frame_loaded)

    # ------------------------------------------------------------------ study and views
    def views_shown(self) -> list[int]:
        """Indices of the study's views on the canvases, in canvas order."""
        if self.study is None or not self.study.views:
            return []
        n = len(self.study.views)
        if not self.grid_mode:
            return [self.current]
        page = (self.current // self.MAX_GRID) * self.MAX_GRID
        return list(range(page, min(n, page + self.MAX_GRID)))

    def canvas_of(self, view_index: int) -> ImageCanvas | None:
        shown = self.views_shown()
        return self.canvases[shown.index(view_index)] if view_index in shown else None

    def active_canvas(self) -> ImageCanvas:
        return self.canvas_of(self.current) or self.canvases[0]

    def set_study(self, study: Study | None, current: int = 0) -> None:
        self.study = study
        self.current = max(0, min(current, len(study.views) - 1)) if study and study.views else 0
        self._arrange(reload=True)

    def set_grid_mode(self, on: bool) -> None:
        self.grid_mode = on
        self._arrange(reload=True)

    def set_current(self, index: int) -> None:
        if self.study is None or not self.study.views:
            return
        index = max(0, min(index, len(self.study.views) - 1))
        if index == self.current:
            return
        before = self.views_shown()
        self.current = index
        self._arrange(reload=self.views_shown() != before)
        self.currentChanged.emit(index)

    def step(self, delta: int) -> bool:
        """Next/previous view; False at the ends of the study."""
        if self.study is None:
            return False
        target = self.current + delta
        if not 0 <= target < len(self.study.views):
            return False
        self.set_current(target)
        return True

    def _canvas_clicked(self, canvas_index: int) -> None:
        shown = self.views_shown()
        if canvas_index < len(shown) and shown[canvas_index] != self.current:
            self.current = shown[canvas_index]
            self._mark_active()
            self.currentChanged.emit(self.current)

    def _arrange(self, reload: bool) -> None:
        shown = self.views_shown()
        n = max(1, len(shown))
        cols = 1 if n == 1 else 2
        for c in self.canvases:
            self._layout.removeWidget(c)
        for i, c in enumerate(self.canvases):
            visible = i < n
            c.setVisible(visible)
            if visible:
                self._layout.addWidget(c, i // cols, i % cols)
        rows = (n + cols - 1) // cols
        for k in range(2):  # equal cells (a canvas's old size must not decide the split)
            self._layout.setColumnStretch(k, 1 if k < cols else 0)
            self._layout.setRowStretch(k, 1 if k < rows else 0)
        if reload:
            for i, c in enumerate(self.canvases[:n]):
                if i >= len(shown):
                    c.set_frame(None)
                    c.set_message("No images" if self.study is not None else "")
                    continue
                ref = self.study.views[shown[i]].ref
                frame = self.frames.get(ref)
                if frame is not None:
                    self._show(c, shown[i], frame)
                else:
                    c.set_frame(None)
                    err = self.frames.errors.get(ref.key)
                    c.set_message(f"Cannot open this image:\n{err}" if err else "Loading…")
        self._mark_active()

    def _mark_active(self) -> None:
        shown = self.views_shown()
        for i, c in enumerate(self.canvases):
            c.active = len(shown) > 1 and i < len(shown) and shown[i] == self.current
            c.viewport().update()

    def _show(self, canvas: ImageCanvas, view_index: int, frame: Frame) -> None:
        canvas.set_frame(frame)
        self.frameShown.emit(view_index, frame)

    def _frame_loaded(self, key: str, frame, error) -> None:
        if self.study is None:
            return
        for vi in self.views_shown():
            if self.study.views[vi].ref.key == key:
                c = self.canvas_of(vi)
                if error is not None:
                    c.set_frame(None)
                    c.set_message(f"Cannot open this image:\n{error}")
                else:
                    self._show(c, vi, frame)

    def visible_canvases(self) -> list[tuple[int, ImageCanvas]]:
        return [(vi, self.canvases[i]) for i, vi in enumerate(self.views_shown())]

    # ------------------------------------------------------------------ tools on the active canvas
    def apply_window(self, window: Window | None) -> None:
        c = self.active_canvas()
        if c.frame is None:
            return
        c.window = window
        c.render_image()
        c.windowChanged.emit(c.current_window())
