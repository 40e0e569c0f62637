"""The canvas's image layer: the frame in image pixel coordinates, drawn from a display image
built at the resolution it is shown at.

A 2500x2048 radiograph in a 700x600 grid cell is shown at ~0.3x: building (window/level LUT),
converting and caching its full-resolution display image costs ~25 MB and tens of ms per frame
and per window/level tick, for pixels the screen cannot show. The canvas instead builds the
display image from the stored values box-averaged by a power-of-two `level` k (the largest with
k <= 1 / screen zoom; radview.io.display.block_mean, exact means), and the item draws it k times
bigger. Its bounding rect stays the frame's own size, so the children (heatmap, boxes), the
pixel readout (read from the stored values), measurements and the orientation are unchanged.
At 1:1 and closer the level is 1: the display image is the full-resolution one, pixel for pixel.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QPainter, QPainterPath, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem

MAX_LEVEL = 32


def level_for(zoom: float, max_level: int = MAX_LEVEL) -> int:
    """The display level for a screen zoom (device pixels per image pixel): the largest power
    of two k with k * zoom <= 1 (1 at 1:1 and closer)."""
    if not zoom > 0 or zoom >= 0.5 or not math.isfinite(zoom):
        return 1
    return int(min(max_level, 2 ** math.floor(math.log2(1.0 / zoom))))


def reduced_stored(stored: np.ndarray, k: int) -> np.ndarray:
    """The stored values box-averaged by k (radview.io.display.block_mean: exact means, the
    dtype kept so the display LUT still indexes them); colour images per channel."""
    from radview.io.display import block_mean

    return stored if k <= 1 else np.ascontiguousarray(block_mean(stored, k))


class ImageItem(QGraphicsPixmapItem):
    """A pixmap item whose geometry is the image's (width x height image pixels) while its
    pixmap may be `level` times smaller (drawn scaled up, smoothly)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.level = 1
        self._size = (0.0, 0.0)

    def set_display(self, pm: QPixmap, level: int = 1, size: tuple[float, float] | None = None) -> None:
        """Show pm, level times smaller than the image; size: the image's (width, height)
        (default: the pixmap's times level)."""
        new = (float(size[0]), float(size[1])) if size is not None else (
            float(pm.width() * level), float(pm.height() * level))
        if new != self._size:
            self.prepareGeometryChange()
            self._size = new
        self.level = int(level)
        self.setPixmap(pm)

    def image_size(self) -> tuple[float, float]:
        """(width, height) in image pixels."""
        return self._size

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(0.0, 0.0, self._size[0], self._size[1])

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.boundingRect())
        return path

    def contains(self, point) -> bool:
        return self.boundingRect().contains(point)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        pm = self.pixmap()
        if pm.isNull():
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        k = self.level
        # block_mean drops the < k edge pixels that do not fill a block: the pixmap covers
        # exactly (w // k) * k x (h // k) * k image pixels, from the top left
        painter.drawPixmap(QRectF(0.0, 0.0, pm.width() * k, pm.height() * k), pm,
                           QRectF(0.0, 0.0, pm.width(), pm.height()))
