"""The measurements of the study being viewed: image, tool, value with its basis (and each
image's user calibration, "80.0 px = 40 mm"); Delete removes the selected one (an appended,
undoable event: deleting a calibration brings back the one before, or the file's spacing),
Export writes the measurements as JSON.

Signals: deleteRequested(image key, add event id), exportRequested(path)."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

KIND = {"length": "Length", "angle": "Angle", "cobb": "Cobb", "rect": "Rect ROI", "ellipse": "Ellipse ROI",
        "calibration": "Calibration"}


class MeasurementList(QWidget):
    deleteRequested = Signal(str, int)
    exportRequested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Image", "Tool", "Value", "Basis"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        self.summary = QLabel("No measurements (tools: L length, K angle, U / O ROI, Shift+L calibrate)")
        self.summary.setWordWrap(True)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected measurement (undo: Ctrl+Z)")
        self.export_button = QPushButton("Export JSON…")
        row.addWidget(self.summary, 1)
        row.addWidget(self.delete_button)
        row.addWidget(self.export_button)
        lay.addLayout(row)
        self.delete_button.clicked.connect(self.delete_selected)
        self.export_button.clicked.connect(self._export)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.entries: list[tuple[str, int | None, object]] = []
        self._update_buttons()

    def set_measurements(self, by_key: dict[str, list]) -> None:
        """{image key: [(add event id or None, Measurement)]}."""
        self.tree.clear()
        self.entries = []
        for key, items in by_key.items():
            for add_id, m in items:
                self.entries.append((key, add_id, m))
                text = m.text
                it = QTreeWidgetItem([os.path.basename(key.split("#", 1)[0]), KIND.get(m.kind, m.kind), text,
                                      m.basis + ("" if add_id is not None else " (not saved)")])
                it.setToolTip(2, m.text)
                it.setToolTip(0, key)
                it.setData(0, Qt.ItemDataRole.UserRole, len(self.entries) - 1)
                self.tree.addTopLevelItem(it)
        for c in range(4):
            self.tree.resizeColumnToContents(c)
        self.tree.setColumnWidth(0, min(self.tree.columnWidth(0), 160))  # the file name elides, the value shows
        n_cal = sum(1 for _k, _i, m in self.entries if m.kind == "calibration")
        n = len(self.entries) - n_cal
        parts = [f"{n} measurement{'s' if n != 1 else ''}"] if n else []
        parts += [f"{n_cal} calibration{'s' if n_cal != 1 else ''}"] if n_cal else []
        self.summary.setText(", ".join(parts) if parts else
                             "No measurements (tools: L length, K angle, U / O ROI, Shift+L calibrate)")
        self._update_buttons()

    def selected(self) -> tuple[str, int | None, object] | None:
        items = self.tree.selectedItems()
        if not items:
            return None
        return self.entries[items[0].data(0, Qt.ItemDataRole.UserRole)]

    def delete_selected(self) -> None:
        sel = self.selected()
        if sel is not None and sel[1] is not None:
            self.deleteRequested.emit(sel[0], sel[1])

    def _update_buttons(self) -> None:
        sel = self.selected()
        self.delete_button.setEnabled(sel is not None and sel[1] is not None)
        self.export_button.setEnabled(bool(self.entries))

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export measurements", "measurements.json", "JSON (*.json)")
        if path:
            self.exportRequested.emit(path)
