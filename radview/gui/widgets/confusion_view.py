"""A confusion matrix drawn as a picture; clicking a cell emits (actual, predicted)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

_DIAG = QColor(61, 130, 190)
_OFF = QColor(214, 64, 52)


class ConfusionMatrixView(QWidget):
    """Rows actual, columns predicted; cells shaded by row fraction, count and row % inside.
    cellClicked(actual, predicted) on a left click; the clicked cell stays outlined."""

    cellClicked = Signal(str, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._cm = np.zeros((0, 0), dtype=np.int64)
        self._classes: tuple[str, ...] = ()
        self._selected: tuple[int, int] | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(180, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("Rows: actual class. Columns: predicted class. Click a cell to list its studies.")

    def sizeHint(self) -> QSize:
        return QSize(280, 240)

    def set_matrix(self, cm: np.ndarray, classes: tuple[str, ...]) -> None:
        cm = np.asarray(cm)
        if cm.shape != (len(classes), len(classes)):
            raise ValueError(f"matrix {cm.shape} does not fit {len(classes)} classes")
        if tuple(classes) != self._classes:
            self._selected = None
        self._cm, self._classes = cm, tuple(classes)
        self.update()

    def matrix(self) -> np.ndarray:
        return self._cm

    def selected(self) -> tuple[str, str] | None:
        if self._selected is None:
            return None
        return self._classes[self._selected[0]], self._classes[self._selected[1]]

    def clear_selection(self) -> None:
        self._selected = None
        self.update()

    # ------------------------------------------------------------------ geometry
    def _layout(self) -> tuple[float, float, float]:
        """(left, top, cell size) of the grid inside the widget."""
        n = max(1, len(self._classes))
        fm = self.fontMetrics()
        label_w = max([fm.horizontalAdvance(c) for c in self._classes] + [30]) + 26
        top = fm.height() * 2 + 10
        avail_w = self.width() - label_w - 8
        avail_h = self.height() - top - fm.height() - 10
        cell = max(16.0, min(avail_w, avail_h) / n)
        return float(label_w), float(top), cell

    def cell_rect(self, i: int, j: int) -> QRectF:
        left, top, cell = self._layout()
        return QRectF(left + j * cell, top + i * cell, cell, cell)

    def cell_at(self, pos: QPointF) -> tuple[int, int] | None:
        left, top, cell = self._layout()
        n = len(self._classes)
        j = int((pos.x() - left) // cell)
        i = int((pos.y() - top) // cell)
        if 0 <= i < n and 0 <= j < n and pos.x() >= left and pos.y() >= top:
            return i, j
        return None

    # ------------------------------------------------------------------ events
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        hit = self.cell_at(event.position())
        if hit is not None:
            self._selected = hit
            self.update()
            self.cellClicked.emit(self._classes[hit[0]], self._classes[hit[1]])

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        hit = self.cell_at(event.position())
        if hit is not None and self._cm.size:
            i, j = hit
            self.setToolTip(f"actual {self._classes[i]}, predicted {self._classes[j]}: "
                            f"{int(self._cm[i, j])} studies (click to list them)")
        super().mouseMoveEvent(event)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.windowText().color()
        n = len(self._classes)
        if n == 0:
            p.setPen(text)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no review yet")
            return
        left, top, cell = self._layout()
        fm = self.fontMetrics()
        rows = self._cm.sum(axis=1)
        p.setPen(text)
        p.drawText(QRectF(left, 0, cell * n, fm.height() + 2), Qt.AlignmentFlag.AlignCenter,
                   "predicted")
        big = QFont(self.font())
        big.setBold(True)
        for j, name in enumerate(self._classes):
            p.drawText(QRectF(left + j * cell, fm.height() + 4, cell, fm.height() + 2),
                       Qt.AlignmentFlag.AlignCenter, _elide(fm, name, int(cell)))
        for i, name in enumerate(self._classes):
            p.setPen(text)
            p.drawText(QRectF(0, top + i * cell, left - 6, cell),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
            for j in range(n):
                r = self.cell_rect(i, j).adjusted(1, 1, -1, -1)
                frac = float(self._cm[i, j] / rows[i]) if rows[i] else 0.0
                base = _DIAG if i == j else _OFF
                bg = pal.base().color()
                col = QColor(int(bg.red() + (base.red() - bg.red()) * frac),
                             int(bg.green() + (base.green() - bg.green()) * frac),
                             int(bg.blue() + (base.blue() - bg.blue()) * frac))
                p.fillRect(r, col)
                p.setPen(QColor(255, 255, 255) if frac > 0.5 or bg.lightness() < 100 else text)
                p.setFont(big)
                p.drawText(r.adjusted(0, 0, 0, -cell * 0.18), Qt.AlignmentFlag.AlignCenter,
                           str(int(self._cm[i, j])))
                p.setFont(self.font())
                if cell >= 40:
                    p.drawText(r.adjusted(0, cell * 0.3, 0, 0), Qt.AlignmentFlag.AlignCenter,
                               f"{100 * frac:.0f}%")
        if self._selected is not None and max(self._selected) < n:
            p.setPen(QPen(QColor(255, 200, 0), 3))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(self.cell_rect(*self._selected).adjusted(1, 1, -1, -1))
        p.setPen(text)
        p.save()
        p.translate(8, top + n * cell / 2)
        p.rotate(-90)
        p.drawText(QRectF(-60, -2, 120, fm.height()), Qt.AlignmentFlag.AlignCenter, "actual")
        p.restore()


def _elide(fm, text: str, width: int) -> str:
    return fm.elidedText(text, Qt.TextElideMode.ElideRight, max(10, width - 4))
