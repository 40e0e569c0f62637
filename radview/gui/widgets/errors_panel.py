"""Errors panel: files that could not be read, with the reason (the rest of the folder loads)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


class ErrorsPanel(QTableWidget):
    """countChanged(n) whenever the list changes."""

    countChanged = Signal(int)

    def __init__(self, parent=None):
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["File", "Reason"])
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        self.horizontalHeader().resizeSection(0, 320)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideLeft)  # keep the file name visible
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.setAlternatingRowColors(True)
        self._seen: set[tuple[str, str]] = set()

    def set_errors(self, errors) -> None:
        """errors: iterable of objects with .path and .reason (radview.types.ScanError)."""
        self.setRowCount(0)
        self._seen.clear()
        for e in errors:
            self.add_error(e.path, e.reason, emit=False)
        self.countChanged.emit(self.rowCount())

    def add_error(self, path: str, reason: str, emit: bool = True) -> None:
        if (path, reason) in self._seen:
            return
        self._seen.add((path, reason))
        row = self.rowCount()
        self.insertRow(row)
        item = QTableWidgetItem(path)
        item.setToolTip(path)
        self.setItem(row, 0, item)
        r = QTableWidgetItem(reason)
        r.setToolTip(reason)
        r.setForeground(Qt.GlobalColor.yellow)
        self.setItem(row, 1, r)
        if emit:
            self.countChanged.emit(self.rowCount())

    def errors(self) -> list[tuple[str, str]]:
        return [(self.item(r, 0).text(), self.item(r, 1).text()) for r in range(self.rowCount())]
