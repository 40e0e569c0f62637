"""The study viewer: all views of a study in a grid of the size it needs (1x1, 1x2, 2x2, 2x3,
3x3 ...) or one at a time, frames loaded on an io thread and kept in a byte-bounded LRU.

The viewer draws radview.state.ViewState: the study, the active view, the grid mode and each
view's geometry (rotation / flips / invert, reset on every new study unless linked) and window
come from the state's events; the tools change the state, never a canvas directly."""
from __future__ import annotations

import collections

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from radview.gui.canvas import ImageCanvas
from radview.state import ViewState, grid_shape
from radview.gui.workers import TaskQueue
from radview.types import Frame, ImageRef, Study, Window


def _load(ref: ImageRef) -> Frame:
    from radview.io import load_frame

    return load_frame(ref.path, ref.frame)


class FrameStore(QObject):
    """Decoded frames: get(ref) returns a cached Frame or None and loads it in the background;
    loaded(key, frame, error) when it arrives. Bounded by bytes (default 512 MB) and by count
    (default 256 frames: small images carry a header and metadata each, and browsing 10,000
    studies must not keep 10,000 of them); errors are remembered for the last 4096 images."""

    loaded = Signal(str, object, object)

    MAX_ERRORS = 4096

    def __init__(self, max_bytes: int = 512 * 2**20, parent: QObject | None = None, max_frames: int = 256):
        super().__init__(parent)
        self.max_bytes = max_bytes
        self.max_frames = max(1, int(max_frames))
        self.bytes = 0
        self._lru: collections.OrderedDict[str, Frame] = collections.OrderedDict()
        self.errors: collections.OrderedDict[str, str] = collections.OrderedDict()
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
            while len(self.errors) > self.MAX_ERRORS:
                self.errors.popitem(last=False)
        else:
            old = self._lru.pop(key, None)  # a frame requested twice is counted once
            if old is not None:
                self.bytes -= old.stored.nbytes
            self._lru[key] = frame
            self.bytes += frame.stored.nbytes
            while (self.bytes > self.max_bytes or len(self._lru) > self.max_frames) and len(self._lru) > 1:
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
    """Shows ViewState.study. currentChanged(index of the active view) when the user moves;
    frameShown(index, Frame) when a canvas got its pixels."""

    currentChanged = Signal(int)
    frameShown = Signal(int, object)
    windowChanged = Signal(object)
    pixelInfo = Signal(str)

    def __init__(self, frames: FrameStore, parent=None, state: ViewState | None = None):
        super().__init__(parent)
        self.frames = frames
        self.state = state if state is not None else ViewState()
        self.canvases: list[ImageCanvas] = []
        self.columns: int | None = None  # a fixed column count (priors side by side: 2), else by view count
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._ensure_canvases(1)
        self.canvases[0].setVisible(True)
        self.canvases[0].set_message("Open a folder or files (Ctrl+O), or drop them here")
        frames.loaded.connect(self._frame_loaded)
        ev = self.state.events
        ev.study.connect(self._on_study)
        ev.view.connect(self._on_view)
        ev.grid.connect(self._on_grid)
        ev.geometry.connect(self._on_geometry)
        ev.window.connect(self._on_window)

    # ------------------------------------------------------------------ the state's fields
    @property
    def study(self) -> Study | None:
        return self.state.study

    @property
    def current(self) -> int:
        return self.state.view

    @property
    def grid_mode(self) -> bool:
        return self.state.grid

    def _ensure_canvases(self, n: int) -> None:
        while len(self.canvases) < n:
            c = ImageCanvas(self)
            c.activated.connect(lambda c=c: self._canvas_clicked(c))
            c.windowChanged.connect(self.windowChanged)
            c.windowChanged.connect(lambda win, c=c: self._canvas_window(c))
            c.pixelInfo.connect(self._pixel)
            c.setVisible(False)
            self.canvases.append(c)
            self.canvasAdded(c)

    def canvasAdded(self, canvas: ImageCanvas) -> None:  # noqa: N802 - hook for the window's wiring
        hook = getattr(self, "on_canvas_added", None)
        if hook is not None:
            hook(canvas)

    def _canvas_window(self, canvas: ImageCanvas) -> None:
        """The user window/levelled on a canvas: the state remembers it for that view (quietly:
        the canvas shows it already)."""
        shown = self.views_shown()
        i = self.canvases.index(canvas)
        if i < len(shown) and canvas.frame is not None:
            self.state.windows[shown[i]] = canvas.window

    def _pixel(self, text: str) -> None:
        self.state.set_pixel(text)
        self.pixelInfo.emit(text)

    # ------------------------------------------------------------------ study and views
    def views_shown(self) -> list[int]:
        """Indices of the study's views on the canvases, in canvas order (all of them in grid
        mode: the grid grows to hold them)."""
        return self.state.views_shown()

    def canvas_of(self, view_index: int) -> ImageCanvas | None:
        shown = self.views_shown()
        return self.canvases[shown.index(view_index)] if view_index in shown else None

    def active_canvas(self) -> ImageCanvas:
        return self.canvas_of(self.current) or self.canvases[0]

    def set_study(self, study: Study | None, current: int = 0) -> None:
        if study is not None and self.state.study is not None and study.key == self.state.study.key:
            self.state.set_view(current)
            return
        self.state.set_study(study, current)

    def set_grid_mode(self, on: bool) -> None:
        self.state.set_grid(on)

    def set_current(self, index: int) -> None:
        self.state.set_view(index)

    def step(self, delta: int) -> bool:
        """Next/previous view; False at the ends of the study."""
        if self.study is None:
            return False
        target = self.current + delta
        if not 0 <= target < len(self.study.views):
            return False
        self.set_current(target)
        return True

    def _canvas_clicked(self, canvas: ImageCanvas) -> None:
        shown = self.views_shown()
        i = self.canvases.index(canvas)
        if i < len(shown) and shown[i] != self.current:
            self.state.set_view(shown[i])

    def _on_study(self, _study) -> None:
        self._arrange(reload=True)

    def _on_view(self, index: int) -> None:
        if not self.state.grid:
            self._arrange(reload=True)
        else:
            self._mark_active()
        self.currentChanged.emit(index)

    def _on_grid(self, _on: bool) -> None:
        self._arrange(reload=True)

    def _on_geometry(self, view: int, geo) -> None:
        c = self.canvas_of(view)
        if c is not None and c.frame is not None:
            c.apply_geometry(geo)

    def _on_window(self, view: int, window) -> None:
        c = self.canvas_of(view)
        if c is not None and c.frame is not None and c.window != window:
            c.window = window
            c.render_image()
            c.windowChanged.emit(c.current_window())

    def _arrange(self, reload: bool) -> None:
        shown = self.views_shown()
        n = max(1, len(shown))
        self._ensure_canvases(n)
        rows, cols = grid_shape(n)
        if self.columns and self.state.grid:
            cols = self.columns
            rows = -(-n // cols)
        for c in self.canvases:
            self._layout.removeWidget(c)
        for i, c in enumerate(self.canvases):
            visible = i < n
            c.setVisible(visible)
            if visible:
                self._layout.addWidget(c, i // cols, i % cols)
        for k in range(max(self._layout.columnCount(), cols)):  # equal cells
            self._layout.setColumnStretch(k, 1 if k < cols else 0)
        for k in range(max(self._layout.rowCount(), rows)):
            self._layout.setRowStretch(k, 1 if k < rows else 0)
        if reload:
            for i, c in enumerate(self.canvases[:n]):
                if i >= len(shown):
                    c.set_frame(None)
                    c.set_message("No images" if self.study is not None else "")
                    continue
                ref = self.study.views[shown[i]].ref
                if not ref.path:  # a placeholder (a hanging with no view of this projection)
                    c.set_frame(None)
                    c.set_message("No view of this projection in this study")
                    continue
                frame = self.frames.get(ref)
                if frame is not None:
                    self._show(c, shown[i], frame)
                else:
                    c.set_frame(None)
                    err = self.frames.errors.get(ref.key)
                    c.set_message(f"Cannot open this image:\n{err}" if err else "Loading…")
            for c in self.canvases[n:]:
                if c.frame is not None:
                    c.set_frame(None)
        self._mark_active()

    def _mark_active(self) -> None:
        shown = self.views_shown()
        for i, c in enumerate(self.canvases):
            c.active = len(shown) > 1 and i < len(shown) and shown[i] == self.current
            c.viewport().update()

    def _show(self, canvas: ImageCanvas, view_index: int, frame: Frame) -> None:
        canvas.set_frame(frame, window=self.state.window_of(view_index))
        canvas.apply_geometry(self.state.geometry_of(view_index))
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

    # ------------------------------------------------------------------ tools on the active view
    def apply_window(self, window: Window | None) -> None:
        c = self.active_canvas()
        if c.frame is None:
            return
        self.state.set_window(self.current, window)
        if c.window != window:  # the same value again: render anyway (preset re-applied)
            self._on_window(self.current, window)

    def rotate(self, degrees: int) -> None:
        if self.study is not None:
            self.state.rotate(self.current, degrees)

    def flip(self, horizontal: bool) -> None:
        if self.study is not None:
            self.state.flip(self.current, horizontal)

    def set_invert(self, on: bool) -> None:
        if self.study is not None:
            self.state.set_invert(self.current, on)

    def reset_view(self) -> None:
        if self.study is not None:
            self.state.reset_view(self.current)
        c = self.active_canvas()
        c.reset_view()
