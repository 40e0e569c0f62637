"""Linked views on the canvases (issue 14: current and prior, W/L, zoom and pan linked on
request). The groups, the shared windows and framings live in the Qt-free view state
(ViewState.set_links / share_window / share_framing, radview.state.link); this module only
reads the canvases and applies what the state says:

- a W/L drag on a linked canvas gives its partners the same window (throttled: a 2k film
  re-renders at most every 40 ms);
- a zoom or pan gives them the same Framing (zoom relative to each canvas's fit, centre as a
  fraction of the image), so two films of different sizes show the same region;
- a partner whose pixels arrive later takes the shared framing when it is shown;
- linking starts from the active view: its partners take its window and framing at once.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QPointF
from PySide6.QtGui import QTransform
from superqt.utils import qthrottled

from radview.state.link import FIT, Framing


def fit_scale(canvas) -> float:
    """The scale at which the canvas's image fits its viewport (1.0 without an image)."""
    rect = canvas.image_item.sceneBoundingRect()
    vr = canvas.viewport().rect()
    if rect.isEmpty() or vr.isEmpty():
        return 1.0
    return min(vr.width() / rect.width(), vr.height() / rect.height())


def framing_of(canvas) -> Framing:
    """The canvas's zoom / pan as a Framing (FIT while it fits the window)."""
    if canvas.frame is None or getattr(canvas, "_fit_mode", True):
        return FIT
    iw, ih = canvas.image_item.image_size()  # image pixels (the pixmap may be a reduced level)
    if not iw or not ih:
        return FIT
    x, y = canvas.image_point(QPointF(canvas.viewport().rect().center()))
    return Framing(round(canvas.zoom() / fit_scale(canvas), 6), (round(x / iw, 6), round(y / ih, 6)))


def apply_framing(canvas, framing: Framing) -> None:
    """Show the canvas at this framing (its own fit scale times the relative zoom)."""
    if canvas.frame is None:
        return
    if framing.zoom is None:
        canvas.fit()
        return
    iw, ih = canvas.image_item.image_size()  # image pixels (the pixmap may be a reduced level)
    scale = framing.zoom * fit_scale(canvas)
    canvas._fit_mode = False  # the canvas's own flag: a resize must not re-fit a linked zoom
    canvas.setTransform(QTransform.fromScale(scale, scale))
    cx, cy = framing.center or (0.5, 0.5)
    canvas.centerOn(canvas.image_item.mapToScene(QPointF(cx * iw, cy * ih)))
    canvas.viewport().update()


class ViewLinker(QObject):
    """Wires the window's canvases to the state's link events (attach() each canvas)."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.state = window.state
        self.viewer = window.viewer
        self._busy = False
        self._shown: dict[int, object] = {}  # id(canvas) -> the frame it last showed
        self.state.events.framing.connect(self._framing)
        self.state.events.link.connect(self._linked)
        self.viewer.frameShown.connect(self._frame_shown)
        self._share_window = qthrottled(self._share_window_now, timeout=40, leading=True)
        for c in self.viewer.canvases:
            self.attach(c)

    def attach(self, canvas) -> None:
        canvas.windowChanged.connect(lambda _w, c=canvas: self._window(c))
        canvas.viewChanged.connect(lambda c=canvas: self._view(c))

    def _index(self, canvas) -> int | None:
        return next((vi for vi, c in self.viewer.visible_canvases() if c is canvas), None)

    # ------------------------------------------------------------------ from the canvases
    def _window(self, canvas) -> None:
        if self._busy or not self.state.links or canvas.frame is None:
            return
        vi = self._index(canvas)
        if vi is None or not self.state.partners(vi):
            return
        self.state.windows[vi] = canvas.window
        self._share_window(vi)

    def _share_window_now(self, vi: int) -> None:
        self._busy = True
        try:
            self.state.share_window(vi)
        finally:
            self._busy = False

    def _view(self, canvas) -> None:
        if canvas.frame is not self._shown.get(id(canvas)):
            self._shown[id(canvas)] = canvas.frame  # a new image fitting itself: not the user's zoom
            return
        if self._busy or not self.state.links:
            return
        vi = self._index(canvas)
        if vi is not None and self.state.partners(vi):
            self._busy = True
            try:
                self.state.share_framing(vi, framing_of(canvas))
            finally:
                self._busy = False

    # ------------------------------------------------------------------ from the state
    def _framing(self, view: int, framing: Framing) -> None:
        c = self.viewer.canvas_of(view)
        if c is None or c.frame is None:
            return  # applied when its pixels are shown
        self._busy = True
        try:
            apply_framing(c, framing)
        finally:
            self._busy = False

    def _frame_shown(self, view: int, frame) -> None:
        c = self.viewer.canvas_of(view)
        if c is None:
            return
        self._shown[id(c)] = c.frame
        if self.state.partners(view) and self.state.framing_of(view) != FIT:
            self._framing(view, self.state.framing_of(view))

    def _linked(self, groups) -> None:
        """Linking starts from the active view: its partners take its window and framing."""
        if not groups:
            return
        vi = self.state.view
        c = self.viewer.canvas_of(vi)
        if c is None or c.frame is None or not self.state.partners(vi):
            return
        self.state.windows[vi] = c.window
        self._share_window_now(vi)
        f = framing_of(c)
        self.state.framings[vi] = f
        for p in self.state.partners(vi):
            self.state.framings[p] = f
            self._framing(p, f)
