"""A ROC curve drawn with QPainter: curves per class, AUROC in the legend, the operating point
of the current threshold as a dot (moved live by the review panel's threshold slider)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

PALETTE = [QColor(86, 156, 214), QColor(235, 110, 90), QColor(106, 190, 120),
           QColor(240, 170, 60), QColor(170, 130, 220), QColor(200, 150, 110),
           QColor(230, 130, 200), QColor(160, 160, 160)]
MAX_POINTS = 400


def thin_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS):
    """At most max_points of a monotone curve, end points kept (drawing 10,000 is wasted)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size > max_points:
        idx = np.unique(np.linspace(0, x.size - 1, max_points).round().astype(int))
        x, y = x[idx], y[idx]
    return x, y


class RocView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._aucs: dict[str, float] = {}
        self._point: tuple[float, float] | None = None
        self.setMinimumSize(180, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(280, 280)

    def set_curves(self, curves: dict[str, tuple[np.ndarray, np.ndarray]],
                   aucs: dict[str, float] | None = None) -> None:
        self._curves = {k: thin_curve(*v) for k, v in curves.items()}
        self._aucs = dict(aucs or {})
        self.update()

    def set_point(self, point: tuple[float, float] | None) -> None:
        """The operating point (1 - specificity, sensitivity), or None to hide it."""
        if point is not None and not all(np.isfinite(point)):
            point = None
        self._point = point
        self.update()

    def point(self) -> tuple[float, float] | None:
        return self._point

    def plot_rect(self) -> QRectF:
        fm = self.fontMetrics()
        m = fm.height() + 16
        side = max(40.0, min(self.width() - m - 12, self.height() - m - fm.height() - 12))
        return QRectF(m, fm.height() + 6, side, side)

    def to_px(self, r: QRectF, x: float, y: float) -> QPointF:
        return QPointF(r.left() + x * r.width(), r.bottom() - y * r.height())

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.windowText().color()
        grid = QColor(text)
        grid.setAlpha(40)
        r = self.plot_rect()
        fm = self.fontMetrics()
        p.setPen(text)
        p.drawText(QRectF(0, 0, self.width(), fm.height() + 4), Qt.AlignmentFlag.AlignCenter,
                   "ROC")
        for t in (0.0, 0.25, 0.5, 0.75, 1.0):
            p.setPen(QPen(grid, 1))
            a, b = self.to_px(r, t, 0), self.to_px(r, t, 1)
            p.drawLine(a, b)
            c, d = self.to_px(r, 0, t), self.to_px(r, 1, t)
            p.drawLine(c, d)
        p.setPen(QPen(text, 1))
        p.drawRect(r)
        p.drawText(QRectF(r.left(), r.bottom() + 2, r.width(), fm.height() + 2),
                   Qt.AlignmentFlag.AlignCenter, "1 - specificity")
        p.save()
        p.translate(r.left() - fm.height() - 4, r.center().y())
        p.rotate(-90)
        p.drawText(QRectF(-60, 0, 120, fm.height() + 2), Qt.AlignmentFlag.AlignCenter,
                   "sensitivity")
        p.restore()
        dash = QPen(grid, 1, Qt.PenStyle.DashLine)
        p.setPen(dash)
        p.drawLine(self.to_px(r, 0, 0), self.to_px(r, 1, 1))
        if not self._curves:
            p.setPen(text)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "no curve\n(one class only?)")
            return
        for k, (name, (x, y)) in enumerate(self._curves.items()):
            col = PALETTE[k % len(PALETTE)]
            if x.size >= 2:
                px = (r.left() + x * r.width()).tolist()
                py = (r.bottom() - y * r.height()).tolist()
                p.setPen(QPen(col, 2))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawPolyline(QPolygonF([QPointF(a, b) for a, b in zip(px, py)]))
            auc = self._aucs.get(name)
            label = f"{name}  {auc:.3f}" if auc is not None and np.isfinite(auc) else name
            ly = r.bottom() - 8 - (len(self._curves) - 1 - k) * (fm.height() + 2)
            p.setPen(QPen(col, 3))
            p.drawLine(QPointF(r.right() - 120, ly), QPointF(r.right() - 104, ly))
            p.setPen(text)
            p.drawText(QPointF(r.right() - 100, ly + fm.ascent() / 2 - 1), label)
        if self._point is not None:
            c = self.to_px(r, *self._point)
            p.setPen(QPen(QColor(20, 20, 20), 2))
            p.setBrush(QColor(255, 210, 0))
            p.drawEllipse(c, 5, 5)
