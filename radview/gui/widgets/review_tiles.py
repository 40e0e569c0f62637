"""Tiles of the review panel's top-loss grid (plot_top_losses at study level) and their
image helpers. Images are loaded by the panel's io thread with `load_gray`."""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout

from radview.types import ImageRef


def load_gray(ref: ImageRef, size: int) -> np.ndarray:
    from radview.io import load_frame
    from radview.io.display import display_image

    return np.ascontiguousarray(display_image(load_frame(ref.path, ref.frame), max_size=size))


def pixmap_from_rgb(rgb: np.ndarray) -> QPixmap:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(img)


class ReviewTile(QFrame):
    """One top-loss study: its views (with CAM once given), predicted / actual, loss.
    Drawn without style sheets (they cost ~1 ms per widget): a painted border, red when the
    call is wrong, green when right, and one rich-text label."""

    clicked = Signal(str)

    def __init__(self, top, thumb: int, parent=None):
        super().__init__(parent)
        self.key = top.study_key
        self.refs = [v.ref for v in top.views[:4]]
        self.wrong = top.predicted != top.actual
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{top.study_key}\nclick to open it in the viewer")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(3)
        row = QHBoxLayout()
        row.setSpacing(3)
        self.images: dict[str, QLabel] = {}
        dark = QPalette()
        dark.setColor(QPalette.ColorRole.Window, QColor("#101214"))
        dark.setColor(QPalette.ColorRole.WindowText, QColor("#777777"))
        for ref in self.refs:
            lab = QLabel("...")
            lab.setFixedSize(thumb, thumb)
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lab.setAutoFillBackground(True)
            lab.setPalette(dark)
            row.addWidget(lab)
            self.images[ref] = lab
        if not self.refs:
            row.addWidget(QLabel("no views"))
        row.addStretch(1)
        lay.addLayout(row)
        width = max(150, len(self.refs) * (thumb + 3))
        fm = self.fontMetrics()
        key = html.escape(fm.elidedText(top.study_key, Qt.TextElideMode.ElideLeft, width))
        tags = [t for t in (top.study_type,
                            ("corrected" + (f" by {top.reader}" if top.reader else ""))
                            if top.corrected else "",
                            "" if top.in_domain else "out of domain") if t]
        call = "#ff7b72" if self.wrong else "#57c46b"
        text = (f"<b>#{top.rank}</b> <span style='color:{call}'>{html.escape(top.predicted)} / "
                f"{html.escape(top.actual)}</span><br>loss {top.loss:.2f} · "
                f"p({html.escape(top.actual)}) {top.probability:.2f}<br>"
                f"<span style='color:#8b949e'>{key}</span>")
        if tags:
            col = "#d29922" if top.corrected or not top.in_domain else "#8b949e"
            text += f"<br><span style='color:{col}'>{html.escape(' · '.join(tags))}</span>"
        self.text = QLabel(text)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.text)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(QColor("#d9534f") if self.wrong else QColor("#4f9d5d"), 2))
        p.drawRoundedRect(self.rect().adjusted(1, 1, -1, -1), 4, 4)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.key)
        super().mousePressEvent(event)
