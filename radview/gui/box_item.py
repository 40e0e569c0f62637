"""A box on the canvas, in image coordinates: movable, resizable from its corners, with its
label and score (a child of the canvas's image item, so it follows zoom, rotation and flips)."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QGraphicsSimpleTextItem

from radview.types import Box

if TYPE_CHECKING:
    from radview.gui.canvas import ImageCanvas

PRED_COLOR = QColor("#ffb454")
TRUTH_COLOR = QColor("#6bcf8f")
HANDLE_PX = 8.0  # corner grab distance in screen pixels


class BoxItem(QGraphicsRectItem):
    """A box in image coordinates: movable, resizable from its corners, with a label and score."""

    def __init__(self, box: Box, index: int, predicted: bool, canvas: ImageCanvas, parent: QGraphicsItem):
        super().__init__(QRectF(box.x, box.y, box.width, box.height), parent)
        self.box, self.index, self.predicted, self._canvas = box, index, predicted, canvas
        color = PRED_COLOR if predicted else TRUTH_COLOR
        pen = QPen(color, 2)
        pen.setCosmetic(True)
        if not predicted:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setAcceptHoverEvents(True)
        text = box.label if box.score is None else f"{box.label} {box.score:.2f}"
        self.text = QGraphicsSimpleTextItem(text, self)
        self.text.setBrush(QBrush(color))
        self.text.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        font = QFont()
        font.setPointSize(9)
        font.setBold(True)
        self.text.setFont(font)
        self._place_text()
        self._resize_corner: int | None = None
        self.dragging = False

    def _place_text(self) -> None:
        r = self.rect()
        self.text.setPos(r.left(), r.top())
        self.text.setY(r.top() - 2)

    def _corner_at(self, pos: QPointF) -> int | None:
        scale = max(self._canvas.transform().m11(), 1e-6)
        tol = HANDLE_PX / scale
        r = self.rect()
        for i, c in enumerate((r.topLeft(), r.topRight(), r.bottomLeft(), r.bottomRight())):
            if abs(c.x() - pos.x()) <= tol and abs(c.y() - pos.y()) <= tol:
                return i
        return None

    def hoverMoveEvent(self, event):  # noqa: N802
        corner = self._corner_at(event.pos())
        self.setCursor(Qt.CursorShape.SizeFDiagCursor if corner in (0, 3)
                       else Qt.CursorShape.SizeBDiagCursor if corner in (1, 2)
                       else Qt.CursorShape.SizeAllCursor)
        super().hoverMoveEvent(event)

    def mousePressEvent(self, event):  # noqa: N802
        self._resize_corner = self._corner_at(event.pos())
        self.dragging = True
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):  # noqa: N802
        if self._resize_corner is None:
            super().mouseMoveEvent(event)
            return
        r = QRectF(self.rect())
        p = event.pos()
        if self._resize_corner == 0:
            r.setTopLeft(p)
        elif self._resize_corner == 1:
            r.setTopRight(p)
        elif self._resize_corner == 2:
            r.setBottomLeft(p)
        else:
            r.setBottomRight(p)
        self.setRect(r.normalized())
        self._place_text()

    def mouseReleaseEvent(self, event):  # noqa: N802
        super().mouseReleaseEvent(event)
        self._resize_corner = None
        self.dragging = False
        r = self.rect().translated(self.pos())
        new = replace(self.box, x=r.x(), y=r.y(), width=r.width(), height=r.height())
        if new != self.box:
            old, self.box = self.box, new
            self._canvas.boxEdited.emit(self.index, new)
            self._canvas.boxChanged.emit(old if not self.predicted else replace(old, label=f"predicted:{old.label}"),
                                         new)

    def box_in_image(self) -> Box:
        return self.box
