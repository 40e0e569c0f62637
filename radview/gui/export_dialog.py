"""File > Export: the store's current labels (corrections win) in a training format, filtered by
label space and folder, optionally de-identified, with a progress bar. The work is the core's
`radview.export.iter_export` generator on a superqt GeneratorWorker: Cancel stops it between
yields (nothing is written then); an exception arrives as an object and is shown here and in the
window's notification sink."""
from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

ALL = "(all)"
SUFFIX = {"coco": ".json", "json": ".json"}


class ExportDialog(QDialog):
    """exported(ExportResult) when a file was written; failed(Exception)."""

    exported = Signal(object)
    failed = Signal(object)

    def __init__(self, store: Any, parent: QWidget | None = None, *, spaces: list[str] | None = None,
                 folders: list[str] | None = None, space: str | None = None, folder: str | None = None,
                 notify=None) -> None:
        super().__init__(parent)
        from radview.export import EXPORT_FORMATS

        self.setWindowTitle("Export labels")
        self.store = store
        self.worker = None
        self.result = None
        self.error: BaseException | None = None
        self._notify = notify
        self.format_box = QComboBox()
        self.format_box.addItems(list(EXPORT_FORMATS))
        self.space_box = QComboBox()
        self.space_box.addItem(ALL, None)
        for name in _unique(spaces or []):
            self.space_box.addItem(name, name)
        if space:
            i = self.space_box.findData(space)
            self.space_box.setCurrentIndex(i if i >= 0 else 0)
        self.folder_box = QComboBox()
        self.folder_box.addItem(ALL, None)
        for f in _unique(folders or []):
            self.folder_box.addItem(f, f)
        if folder:
            i = self.folder_box.findData(folder)
            if i < 0:
                self.folder_box.addItem(folder, folder)
                i = self.folder_box.count() - 1
            self.folder_box.setCurrentIndex(i)
        self.deid = QCheckBox("De-identify (pseudonymous ids, no names or dates)")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(browse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        form = QFormLayout()
        form.addRow("Format", self.format_box)
        form.addRow("Label space", self.space_box)
        form.addRow("Folder", self.folder_box)
        form.addRow("", self.deid)
        form.addRow("Save as", out_row)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        self.format_box.currentTextChanged.connect(self._fix_suffix)

    # ------------------------------------------------------------------ input
    def _browse(self) -> None:
        fmt = self.format_box.currentText()
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", self.out_edit.text() or
                                              f"labels-{fmt}{SUFFIX.get(fmt, '.csv')}")
        if path:
            self.out_edit.setText(path)

    def _fix_suffix(self, fmt: str) -> None:
        path = self.out_edit.text().strip()
        if path:
            base, _ext = os.path.splitext(path)
            self.out_edit.setText(base + SUFFIX.get(fmt, ".csv"))

    def settings(self) -> dict[str, Any]:
        return {"fmt": self.format_box.currentText(), "out": self.out_edit.text().strip(),
                "space": self.space_box.currentData(), "folder": self.folder_box.currentData(),
                "deidentify": self.deid.isChecked()}

    # ------------------------------------------------------------------ run
    def start(self) -> bool:
        """Run the export on a worker (False when the settings are incomplete)."""
        from superqt.utils import create_worker

        from radview.export import iter_export

        s = self.settings()
        if not s["out"]:
            self.message.setText("Choose the file to write (Save as).")
            return False
        if self.store is None:
            self.message.setText("No label store is open: nothing to export.")
            return False
        if self.worker is not None:
            return False
        self.result, self.error = None, None
        self.progress.setRange(0, 0)
        self.message.setText(f"Exporting {s['fmt']} to {s['out']}…")
        self.export_button.setEnabled(False)
        worker = create_worker(iter_export, self.store, s["fmt"], s["out"], space=s["space"],
                               folder=s["folder"], deidentify=s["deidentify"], _start_thread=False,
                               _ignore_errors=True)  # errors arrive as objects in _errored
        worker.yielded.connect(self._progress)
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()
        return True

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()  # stops at the next yield: nothing is written
            self.message.setText("Cancelling…")
        else:
            self.reject()

    def _progress(self, p) -> None:
        if p.total:
            self.progress.setRange(0, int(p.total))
            self.progress.setValue(min(int(p.done), int(p.total)))
        if p.message:
            self.message.setText(p.message)
        if p.payload is not None:
            self.result = p.payload

    def _errored(self, exc: BaseException) -> None:
        self.error = exc
        self.message.setText(f"Export failed: {exc}")
        if self._notify is not None:
            self._notify(exc, where="export")
        self.failed.emit(exc)

    def _finished(self) -> None:
        worker, self.worker = self.worker, None
        self.export_button.setEnabled(True)
        self.progress.setRange(0, 1)
        if self.error is not None:
            self.progress.setValue(0)
            return
        if self.result is None:
            aborted = worker is not None and getattr(worker, "abort_requested", False)
            self.message.setText("Cancelled: nothing was written." if aborted else "Nothing was exported.")
            self.progress.setValue(0)
            return
        self.progress.setValue(1)
        r = self.result
        skipped = "; ".join(f"{n} skipped: {why}" for why, n in r.skipped.items())
        self.message.setText(f"Wrote {r.rows} {'rows' if r.format == 'rsna' else 'items'} to {r.path}"
                             + (" (de-identified)" if r.deidentified else "") + (f"\n{skipped}" if skipped else ""))
        self.exported.emit(r)


def _unique(values) -> list[str]:
    out: list[str] = []
    for v in values:
        v = str(getattr(v, "name", v))
        if v and v not in out:
            out.append(v)
    return out
