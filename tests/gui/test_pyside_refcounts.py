"""Guard against PySide6 builds that drop references to None/True/False (6.12.0 on Python 3.11
does: the app then aborts after some thousands of paints)."""
from __future__ import annotations

import sys

from PySide6.QtGui import QImage, QPainter, QPen


def test_qt_calls_do_not_drop_references_to_singletons(qapp):
    img = QImage(8, 8, QImage.Format_RGB32)
    painter = QPainter(img)
    pen = QPen()
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(2000):
        painter.setPen(pen)
        painter.save()
        painter.restore()
        img.isNull()
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    painter.end()
    # a healthy build leaves the counts where they were (give or take a few held elsewhere)
    for b, a, name in zip(before, after, ("None", "True", "False")):
        assert a >= b - 50, f"PySide6 lost {b - a} references to {name} in 2000 calls: use PySide6 < 6.12 on Python 3.11"
