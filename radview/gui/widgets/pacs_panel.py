"""The PACS panel: pick a node, filter (patient name, ID, date range, modality, accession, body
part), search (C-FIND / QIDO-RS), retrieve the selected studies (C-GET, C-MOVE to radview's
Storage SCP, or WADO-RS) with progress per instance and Cancel; retrieved studies land in the
local cache and open like a folder. The cache list shows each study's state: a study that did
not arrive whole says 'partial: n of m, k missing', never complete.

    panel = PacsPanel(parent=window)     # window.open_path(path) opens a cached study, if present
    panel.openRequested.connect(...)     # the same, as a signal (path of the cached study folder)

All network work runs in superqt workers over the core generators (radview.net); Cancel stops
between instances (the core closes the generator: the association is aborted, study kept partial).
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDateEdit, QFormLayout,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from radview.net import NetError, NodeBook, PacsCache, StudyQuery

COLUMNS = ("Patient", "Patient ID", "Date", "Modalities", "Accession", "Description", "Instances",
           "StudyInstanceUID")


class PacsPanel(QWidget):
    openRequested = Signal(str)
    searched = Signal(int)            # number of studies found
    retrieved = Signal(object)        # CachedStudy after each study (complete or not)
    failed = Signal(str)              # an error, as the core words it
    sent = Signal(int)                # SR / GSPS objects sent back

    def __init__(self, parent: QWidget | None = None, *, book: NodeBook | None = None,
                 cache: PacsCache | None = None, store=None) -> None:
        super().__init__(parent)
        self.store = store            # the window's LabelStore: what "Send reads" sends
        self.book = book
        self.cache = cache or PacsCache()
        self.records: list = []
        self._worker = None
        self._cancel = threading.Event()
        self._scp = None
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.node_box = QComboBox()
        self.node_box.setMinimumWidth(160)
        self.nodes_btn = QPushButton("Nodes...")
        self.nodes_btn.clicked.connect(self.edit_nodes)
        self.test_btn = QPushButton("Test")
        self.test_btn.clicked.connect(self.test_node)
        top.addWidget(QLabel("Node"))
        top.addWidget(self.node_box, 1)
        top.addWidget(self.test_btn)
        top.addWidget(self.nodes_btn)
        lay.addLayout(top)
        form = QFormLayout()
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("name, wildcards * ?")
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(["", "CR", "DX", "MG", "CT", "MR", "US", "SR", "PR"])
        self.body_part = QLineEdit()
        self.use_dates = QCheckBox("between")
        self.date_from, self.date_to = QDateEdit(), QDateEdit()
        for d in (self.date_from, self.date_to):
            d.setCalendarPopup(True)
            d.setDisplayFormat("yyyy-MM-dd")
        self.date_from.setDate(QDate.currentDate().addYears(-1))
        self.date_to.setDate(QDate.currentDate())
        dates = QHBoxLayout()
        for w in (self.use_dates, self.date_from, QLabel("and"), self.date_to):
            dates.addWidget(w)
        for label, w in (("Patient", self.patient), ("Patient ID", self.patient_id),
                         ("Accession", self.accession), ("Modality", self.modality),
                         ("Body part", self.body_part)):
            form.addRow(label, w)
        form.addRow("Study date", dates)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.search_btn = QPushButton("Search")
        self.search_btn.clicked.connect(self.search)
        self.patients_btn = QPushButton("Patients")
        self.patients_btn.setToolTip("Patient-level C-FIND (name / ID filters); double-click a"
                                     " patient to list their studies")
        self.patients_btn.clicked.connect(self.search_patients)
        self.method = QComboBox()
        self.method.addItems(["node default", "get", "move", "wado"])
        self.retrieve_btn = QPushButton("Retrieve")
        self.retrieve_btn.clicked.connect(self.retrieve_selected)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.send_btn = QPushButton("Send reads")
        self.send_btn.setToolTip("Send the selected studies' labels, boxes and measurements back"
                                 " as DICOM SR (TID 1500) + GSPS")
        self.send_btn.clicked.connect(self.send_selected)
        self.deid = QCheckBox("de-identify")
        for w in (self.search_btn, self.patients_btn, QLabel("by"), self.method, self.retrieve_btn,
                  self.cancel_btn,
                  self.send_btn, self.deid):
            row.addWidget(w)
        row.addStretch(1)
        lay.addLayout(row)
        self.patients = QTableWidget(0, 4)
        self.patients.setHorizontalHeaderLabels(("Patient", "Patient ID", "Birth date", "Studies"))
        self.patients.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.patients.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.patients.cellDoubleClicked.connect(self._patient_studies)
        self.patients.hide()
        lay.addWidget(self.patients, 1)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.setSortingEnabled(True)
        lay.addWidget(self.table, 2)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(QLabel("Local cache (double-click to open)"))
        self.cache_list = QListWidget()
        self.cache_list.itemDoubleClicked.connect(self._open_item)
        lay.addWidget(self.cache_list, 1)
        self.reload_nodes()
        self.refresh_cache()

    # ------------------------------------------------------------------ nodes
    def reload_nodes(self) -> None:
        try:
            self.book = NodeBook.load(self.book.path if self.book and self.book.path else None)
        except NetError as exc:
            self._error(str(exc))
            self.book = NodeBook()
        current = self.node_box.currentText()
        self.node_box.clear()
        for n in self.book.nodes:
            self.node_box.addItem(n.name)
        if current:
            self.node_box.setCurrentText(current)
        if not self.book.nodes:
            self.status.setText("No PACS node yet: add one with Nodes...")

    def node(self):
        name = self.node_box.currentText()
        if not name:
            raise NetError("PACS", "no node chosen (add one with Nodes...)", "config")
        return self.book.get(name)

    def edit_nodes(self) -> None:
        from radview.gui.widgets.pacs_settings import PacsSettingsPage

        dlg = PacsSettingsPage.dialog(self, self.book)
        dlg.page.changed.connect(self.reload_nodes)
        dlg.open()
        self._nodes_dialog = dlg

    def test_node(self) -> None:
        from radview.net import echo

        self._run_function(echo, "test", lambda ms: self.status.setText(f"{self.node().describe()}:"
                                                                        f" ok ({ms:.0f} ms)"))

    # ------------------------------------------------------------------ search
    def query(self) -> StudyQuery:
        a = b = ""
        if self.use_dates.isChecked():
            a = self.date_from.date().toString("yyyyMMdd")
            b = self.date_to.date().toString("yyyyMMdd")
        return StudyQuery(patient_name=self.patient.text().strip(),
                          patient_id=self.patient_id.text().strip(), date_from=a, date_to=b,
                          modality=self.modality.currentText().strip(),
                          accession=self.accession.text().strip(), body_part=self.body_part.text().strip())

    def search(self) -> None:
        from radview.net import find_studies

        q = self.query()
        self._run_function(lambda node: find_studies(node, q), "search", self._show_results)

    def search_patients(self) -> None:
        from radview.net import find_patients

        q = self.query()
        self._run_function(lambda node: find_patients(node, q), "patient search", self._show_patients)

    def _show_patients(self, records) -> None:
        self.patients.setRowCount(len(records))
        for r, rec in enumerate(records):
            for c, v in enumerate((rec.patient_name, rec.patient_id, rec.birth_date,
                                   "" if rec.n_studies is None else str(rec.n_studies))):
                self.patients.setItem(r, c, QTableWidgetItem(v))
        self.patients.show()
        self.status.setText(f"{len(records)} patients")
        self.searched.emit(len(records))

    def _patient_studies(self, row: int, _col: int = 0) -> None:
        item = self.patients.item(row, 1)
        if item is None:
            return
        self.patient.clear()
        self.patient_id.setText(item.text())
        self.search()

    def _show_results(self, records) -> None:
        self.records = list(records)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.records))
        for r, rec in enumerate(self.records):
            values = (rec.patient_name, rec.patient_id, rec.study_date, rec.modalities, rec.accession,
                      rec.description, "" if rec.n_instances is None else str(rec.n_instances),
                      rec.study_uid)
            for c, v in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(v))
        self.table.setSortingEnabled(True)
        self.status.setText(f"{len(self.records)} studies")
        self.searched.emit(len(self.records))

    def selected_uids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        col = len(COLUMNS) - 1
        return [self.table.item(r, col).text() for r in rows if self.table.item(r, col)]

    # ------------------------------------------------------------------ retrieve
    def retrieve_selected(self) -> None:
        uids = self.selected_uids()
        if not uids:
            self.status.setText("Select one or more studies first")
            return
        self.retrieve(uids)

    def retrieve(self, uids: list[str], method: str | None = None) -> None:
        try:
            node = self.node()
        except NetError as exc:
            self._error(str(exc))
            return
        chosen = method or self.method.currentText()
        chosen = None if chosen == "node default" else chosen
        scp = None
        if (chosen or node.retrieve) == "move" and not node.is_web:
            from radview.net.dimse import StorageSCP

            try:
                scp = self._scp or StorageSCP(self.book.scp, self.cache).start()
            except NetError as exc:
                self._error(str(exc))
                return
            self._scp = scp
        self._cancel.clear()
        self._start(self._retrieve_job, node, uids, chosen, scp)

    def _retrieve_job(self, node, uids, method, scp):
        from radview.net import iter_retrieve

        for uid in uids:
            gen = iter_retrieve(node, uid, method=method, cache=self.cache, scp=scp)
            try:
                for p in gen:
                    if self._cancel.is_set():
                        gen.close()  # the core aborts the association; the study stays partial
                        yield ("cancelled", self.cache.status(uid))
                        return
                    yield ("progress", p)
            except NetError as exc:
                yield ("error", (str(exc), self.cache.status(uid)))
                continue
            yield ("done", p.payload)

    # ------------------------------------------------------------------ send back
    def send_selected(self) -> None:
        uids = self.selected_uids()
        if not uids:
            self.status.setText("Select the studies whose reads to send")
            return
        self.send(uids)

    def send(self, uids: list[str]) -> None:
        if self.store is None:
            self._error("no label store: nothing to send")
            return
        try:
            node = self.node()
        except NetError as exc:
            self._error(str(exc))
            return
        self._cancel.clear()
        self._start(self._send_job, node, list(uids), self.deid.isChecked())

    def _send_job(self, node, uids, deidentify):
        from radview.export.dicom_sr import collect_reads, study_objects
        from radview.net import iter_send

        reads, _ = collect_reads(self.store, uids)
        if not reads:
            yield ("error", ("no labels, boxes or measurements on these DICOM studies", None))
            return
        deid = None
        if deidentify:
            from radview.export.deid import Deidentifier

            deid = Deidentifier.for_home()
        objs = [o for r in reads for o in study_objects(r, deid=deid)]
        try:
            for p in iter_send(node, objs):
                yield ("progress", p)
        except NetError as exc:
            yield ("error", (str(exc), None))
            return
        yield ("sent", len(objs))

    def cancel(self) -> None:
        """Stop after the instance being received (the job checks between yields)."""
        self._cancel.set()
        self.status.setText("Cancelling...")

    def _on_item(self, item) -> None:
        what, value = item
        if what == "progress":
            self.progress.setMaximum(value.total or 0)
            self.progress.setValue(value.done)
            self.status.setText(value.message)
        elif what == "done":
            self.status.setText(f"{value.study_uid}: {value.describe()}")
            self.retrieved.emit(value)
            self.refresh_cache()
        elif what == "error":
            text, st = value
            self._error(text)
            if st is not None:
                self.retrieved.emit(st)
            self.refresh_cache()
        elif what == "sent":
            self.status.setText(f"sent {value} object(s) (SR / GSPS)")
            self.sent.emit(value)
        elif what == "cancelled":
            self.status.setText("Cancelled" + (f": {value.describe()}" if value else ""))
            if value is not None:
                self.retrieved.emit(value)
            self.refresh_cache()

    # ------------------------------------------------------------------ cache
    def refresh_cache(self) -> None:
        self.cache_list.clear()
        for st in self.cache.studies():
            item = QListWidgetItem(f"{st.study_uid}  {st.describe()}")
            item.setData(Qt.ItemDataRole.UserRole, st.path)
            if not st.complete:
                item.setForeground(Qt.GlobalColor.darkYellow)
            self.cache_list.addItem(item)

    def _open_item(self, item) -> None:
        self.open_study(item.data(Qt.ItemDataRole.UserRole))

    def open_study(self, path: str) -> None:
        from pathlib import Path

        st = self.cache.status(Path(path).name)
        if st is not None and not st.complete:  # say so: the viewer shows what is there
            self.status.setText(f"Opened an INCOMPLETE study ({st.describe()})")
        self.openRequested.emit(path)
        win = self.window()
        if win is not self and hasattr(win, "open_path"):
            win.open_path(path)

    # ------------------------------------------------------------------ workers
    def busy(self) -> bool:
        return self._worker is not None

    def _set_busy(self, on: bool) -> None:
        for b in (self.search_btn, self.patients_btn, self.retrieve_btn, self.test_btn, self.send_btn):
            b.setEnabled(not on)
        self.cancel_btn.setEnabled(on)

    def _run_function(self, fn, what: str, on_result) -> None:
        from superqt.utils import create_worker

        try:
            node = self.node()
        except NetError as exc:
            self._error(str(exc))
            return
        self.status.setText(f"{what}: {node.describe()}...")
        w = create_worker(fn, node, _start_thread=False, _ignore_errors=True)
        w.returned.connect(on_result)
        self._launch(w)

    def _start(self, job, *args) -> None:
        from superqt.utils import create_worker

        w = create_worker(job, *args, _start_thread=False, _ignore_errors=True)
        w.yielded.connect(self._on_item)
        self._launch(w)

    def _launch(self, w) -> None:
        w.errored.connect(lambda exc: self._error(str(exc)))
        w.finished.connect(self._done)
        self._worker = w
        self._set_busy(True)
        w.start()

    def _done(self) -> None:
        self._worker = None
        self._set_busy(False)

    def _error(self, text: str) -> None:
        self.status.setText(f"Error: {text}")
        self.failed.emit(text)

    def closeEvent(self, event) -> None:  # noqa: N802
        self._cancel.set()
        if self._scp is not None:
            self._scp.stop()
            self._scp = None
        super().closeEvent(event)
