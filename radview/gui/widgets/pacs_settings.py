"""PACS node settings: the saved nodes (AE title, host, port, or a DICOMweb URL), a Test button
(C-ECHO or QIDO-RS, in a worker; the error is shown as the core words it: refused association,
unknown AE, timeout...) and radview's Storage SCP (AE title, port). Saved to NodeBook
(`<user data>/pacs.json`). Usable as a settings page or in a dialog (PacsSettingsPage.dialog)."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from radview.net import NetError, Node, NodeBook
from radview.net.nodes import check_aet


class PacsSettingsPage(QWidget):
    """Edit the node book. Signals: changed() after a save; tested(ok, text) after a test."""

    changed = Signal()
    tested = Signal(bool, str)

    def __init__(self, book: NodeBook | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.book = book or NodeBook.load()
        self._worker = None
        lay = QHBoxLayout(self)
        self.list = QListWidget()
        self.list.currentTextChanged.connect(self._show)
        left = QVBoxLayout()
        left.addWidget(self.list)
        row = QHBoxLayout()
        self.new_btn, self.remove_btn = QPushButton("New"), QPushButton("Remove")
        self.new_btn.clicked.connect(self._new)
        self.remove_btn.clicked.connect(self._remove)
        row.addWidget(self.new_btn)
        row.addWidget(self.remove_btn)
        left.addLayout(row)
        lay.addLayout(left, 1)
        right = QVBoxLayout()
        form = QFormLayout()
        self.name = QLineEdit()
        self.called = QLineEdit()
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.calling = QLineEdit("RADVIEW")
        self.url = QLineEdit()
        self.url.setPlaceholderText("DICOMweb base URL (instead of host/port), e.g. http://pacs/dicom-web")
        self.retrieve = QComboBox()
        self.retrieve.addItems(["get", "move", "wado"])
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(0.5, 600)
        self.timeout.setValue(10)
        self.tls = QCheckBox("DICOM TLS")
        for label, w in (("Name", self.name), ("Called AE title", self.called), ("Host", self.host),
                         ("Port", self.port), ("Calling AE title", self.calling),
                         ("DICOMweb URL", self.url), ("Retrieve by", self.retrieve),
                         ("Timeout (s)", self.timeout), ("", self.tls)):
            form.addRow(label, w)
        right.addLayout(form)
        row = QHBoxLayout()
        self.test_btn, self.save_btn = QPushButton("Test"), QPushButton("Save")
        self.test_btn.clicked.connect(self.test)
        self.save_btn.clicked.connect(self.save)
        row.addWidget(self.test_btn)
        row.addWidget(self.save_btn)
        right.addLayout(row)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        right.addWidget(self.result)
        scp = QGroupBox("radview's Storage SCP (C-MOVE destination)")
        f2 = QFormLayout(scp)
        self.scp_aet = QLineEdit(self.book.scp.aet)
        self.scp_port = QSpinBox()
        self.scp_port.setRange(1, 65535)
        self.scp_port.setValue(int(self.book.scp.port))
        f2.addRow("AE title", self.scp_aet)
        f2.addRow("Port", self.scp_port)
        right.addWidget(scp)
        right.addStretch(1)
        lay.addLayout(right, 2)
        self._fill()

    # ------------------------------------------------------------------ fields <-> Node
    def _fill(self) -> None:
        self.list.clear()
        for n in self.book.nodes:
            self.list.addItem(n.name)
        if self.book.nodes:
            self.list.setCurrentRow(0)

    def _show(self, name: str) -> None:
        try:
            n = self.book.get(name)
        except NetError:
            return
        self.name.setText(n.name)
        self.called.setText(n.called_aet)
        self.host.setText(n.host)
        self.port.setValue(int(n.port))
        self.calling.setText(n.calling_aet)
        self.url.setText(n.url)
        self.retrieve.setCurrentText(n.retrieve)
        self.timeout.setValue(float(n.timeout))
        self.tls.setChecked(n.tls)

    def node(self) -> Node:
        """The node in the fields (validated: NetError names the bad field)."""
        n = Node(self.name.text().strip() or "pacs", host=self.host.text().strip(),
                 port=self.port.value(), called_aet=self.called.text().strip(),
                 calling_aet=self.calling.text().strip() or "RADVIEW", url=self.url.text().strip(),
                 retrieve=self.retrieve.currentText(), timeout=self.timeout.value(),
                 tls=self.tls.isChecked())
        return n.check()

    def _new(self) -> None:
        self.list.clearSelection()
        for w in (self.name, self.called, self.host, self.url):
            w.clear()
        self.port.setValue(104)

    def _remove(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        self.book.remove(item.text())
        self._save_book()
        self._fill()

    def save(self) -> bool:
        try:
            n = self.node()
            self.book.add(n)
            self.book.scp = replace(self.book.scp, aet=self.scp_aet.text().strip() or "RADVIEW",
                                    port=self.scp_port.value())
            check_aet(self.book.scp.aet, "Storage SCP AE title")
            self._save_book()
        except NetError as exc:
            self.result.setText(f"Not saved: {exc}")
            return False
        self._fill()
        items = self.list.findItems(n.name, Qt.MatchFlag.MatchExactly)
        if items:
            self.list.setCurrentItem(items[0])
        self.result.setText(f"Saved {n.name}: {n.describe()}")
        return True

    def _save_book(self) -> None:
        self.book.save()
        self.changed.emit()

    # ------------------------------------------------------------------ test
    def test(self) -> None:
        """C-ECHO / QIDO-RS in a worker thread; result in the label and `tested`."""
        try:
            node = self.node()
        except NetError as exc:
            self._tested(False, str(exc))
            return
        from superqt.utils import create_worker

        from radview.net import echo

        self.test_btn.setEnabled(False)
        self.result.setText(f"Testing {node.describe()}...")
        w = create_worker(echo, node, _start_thread=False, _ignore_errors=True)
        w.returned.connect(lambda ms: self._tested(True, f"{node.describe()}: "
                                                   f"{'QIDO-RS' if node.is_web else 'C-ECHO'} ok ({ms:.0f} ms)"))
        w.errored.connect(lambda exc: self._tested(False, str(exc)))
        self._worker = w
        w.start()

    def _tested(self, ok: bool, text: str) -> None:
        self.test_btn.setEnabled(True)
        self.result.setText(("OK: " if ok else "Failed: ") + text)
        self.tested.emit(ok, text)

    @classmethod
    def dialog(cls, parent: QWidget | None = None, book: NodeBook | None = None) -> QDialog:
        dlg = QDialog(parent)
        dlg.setWindowTitle("PACS nodes")
        lay = QVBoxLayout(dlg)
        page = cls(book, dlg)
        lay.addWidget(page)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dlg.reject)
        lay.addWidget(buttons)
        dlg.page = page
        return dlg
