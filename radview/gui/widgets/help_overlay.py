"""Help overlay: a translucent sheet over the main window listing every shortcut (from the one
shortcut table, as currently mapped: the priors keys PgDown / PgUp / Ctrl+L and the series strip's
Ctrl+Shift+T among them), the label keys, then the mouse gestures and tools (measurement handles,
the browser's right-click "open as prior", the series strip). A row with no key is a heading.
Any key or click closes it."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QWidget



class HelpOverlay(QWidget):
    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.rows: list[tuple[str, str]] = []
        self.hide()
        parent.installEventFilter(self)

    def show_shortcuts(self, rows: list[tuple[str, str]]) -> None:
        self.rows = list(rows)  # the window adds the label keys and mouse gestures (viewer_tools)
        self.setGeometry(self.parentWidget().rect())
        self.show()
        self.raise_()
        self.setFocus()

    def eventFilter(self, obj, event):  # noqa: N802
        if obj is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(self.parentWidget().rect())
        return False

    def keyPressEvent(self, event):  # noqa: N802
        self.hide()

    def mousePressEvent(self, event):  # noqa: N802
        self.hide()

    def paintEvent(self, event):  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(8, 9, 11, 225))
        title = QFont()
        title.setPointSize(14)
        title.setBold(True)
        p.setFont(title)
        p.setPen(QColor("#ffffff"))
        p.drawText(QRectF(0, 18, self.width(), 30), Qt.AlignmentFlag.AlignHCenter, "Keyboard and mouse (F1 or ?)")
        font = QFont()
        font.setPointSize(10)
        p.setFont(font)
        fm = p.fontMetrics()
        lh = fm.height() + 4
        per_col = max(1, (self.height() - 110) // lh)
        if len(self.rows) > 12:
            per_col = min(per_col, -(-len(self.rows) // 2))  # two columns read better
        ncols = max(1, -(-len(self.rows) // per_col))
        per_col = -(-len(self.rows) // ncols)  # balance the columns
        keyw = max(fm.horizontalAdvance(k) for k, _ in self.rows) + 12
        textw = max(fm.horizontalAdvance(t) for _, t in self.rows) + 12
        colw = min(keyw + textw + 40, max(200, (self.width() - 40) // ncols))
        x0 = (self.width() - colw * ncols) // 2
        heading = QFont(font)
        heading.setBold(True)
        for i, (keys, text) in enumerate(self.rows):
            col, row = divmod(i, per_col)
            x, y = x0 + col * colw, 70 + row * lh
            if not keys:  # a heading: across the key and text columns
                p.setFont(heading)
                p.setPen(QColor("#ffe27a"))
                p.drawText(QRectF(x, y, keyw, lh), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
                p.setFont(font)
                continue
            p.setPen(QColor("#8fb4d9"))
            p.drawText(QRectF(x, y, keyw, lh), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, keys)
            p.setPen(QColor("#d7dae0"))
            p.drawText(QRectF(x + keyw + 12, y, colw - keyw - 24, lh),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        p.setPen(QColor("#7d858f"))
        p.drawText(QRectF(0, self.height() - 34, self.width(), 20), Qt.AlignmentFlag.AlignHCenter,
                   "Remap keys in Settings (Ctrl+,). Press any key to close.")
