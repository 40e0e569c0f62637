"""Settings: shortcut remapping (the one shortcut table), inference device; PACS nodes and
radview's own Storage SCP (a page of their own, saved in <user data>/pacs.json)."""
from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QKeySequenceEdit,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from radview.gui import settings as cfg


class SettingsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(560, 640)
        s = cfg.open_settings()
        self.device = QComboBox()
        self.device.addItems(cfg.DEVICES)
        self.device.setCurrentText(str(cfg.get("device", "auto", s)))
        self.table = QTableWidget(len(cfg.SHORTCUTS), 2)
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.edits: dict[str, QKeySequenceEdit] = {}
        for row, (key, (_default, text)) in enumerate(cfg.SHORTCUTS.items()):
            self.table.setItem(row, 0, QTableWidgetItem(text))
            edit = QKeySequenceEdit(QKeySequence(cfg.shortcut(key, s)))
            self.table.setCellWidget(row, 1, edit)
            self.edits[key] = edit
        form = QFormLayout()
        form.addRow("Inference device", self.device)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.restore_defaults)
        general = QWidget()
        glay = QVBoxLayout(general)
        glay.addLayout(form)
        glay.addWidget(self.table, 1)
        from radview.gui.widgets.pacs_settings import PacsSettingsPage

        self.pacs = PacsSettingsPage()
        self.tabs = QTabWidget()
        self.tabs.addTab(general, "General")
        self.tabs.addTab(self.pacs, "PACS nodes")
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(buttons)

    def restore_defaults(self) -> None:
        for key, edit in self.edits.items():
            edit.setKeySequence(QKeySequence(cfg.SHORTCUTS[key][0]))

    def accept(self) -> None:
        s = cfg.open_settings()
        cfg.put("device", self.device.currentText(), s)
        for key, edit in self.edits.items():
            cfg.set_shortcut(key, edit.keySequence().toString(), s)
        super().accept()
