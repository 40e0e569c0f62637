"""Worklist panel (issue 16): the reader's worklist of a reading project, their progress
("37/120 read"), claim / release, and their read of the study on screen; for an adjudicator or
admin every reader's progress, the items' states, every read of the study on screen and the
final label with its reason.

    panel = WorklistPanel(store=store, parent=window)
    panel.studyActivated.connect(window.show_study_key)    # double-click an item
    panel.blindingChanged.connect(...)                     # ViewPolicy, or None: see everything
    panel.set_current(study_key)                           # the study on screen
    panel.recorded                                         # a Read or the final Correction

Who reads: the Reader field (default: the store's reader, i.e. the label panel's saved
reader, RADVIEW_READER or the OS user); the role is the store's. A blinded project's reader
sees only their own items and reads here (radview.store.worklists / reads enforce it too).
The panel polls the store every `poll_ms` so another reader's work shows up.
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QPushButton, QScrollArea, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from radview.gui import settings as cfg
from radview.store import LabelStore, StoreError

READER_COLUMNS = ("Item", "Type", "My read")
LEAD_COLUMNS = ("Item", "Type", "Status", "Reads", "Final")


def _short(key: str) -> str:
    parts = key.replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-3:])


def _button(text: str, slot: Callable) -> QPushButton:
    b = QPushButton(text)
    b.clicked.connect(slot)
    return b


def _line_edit(placeholder: str) -> QLineEdit:
    e = QLineEdit()
    e.setPlaceholderText(placeholder)
    return e


def _form_box(title: str, *rows: tuple) -> QGroupBox:
    """A group box of form rows: (label, widget) or (widget,) spanning the row."""
    box = QGroupBox(title)
    form = QFormLayout(box)
    for row in rows:
        form.addRow(*row)
    return box


class WorklistPanel(QWidget):
    studyActivated = Signal(str)
    blindingChanged = Signal(object)
    recorded = Signal(object)

    def __init__(self, store: LabelStore | None = None, parent: QWidget | None = None, *,
                 store_problem: str | None = None, poll_ms: int = 3000) -> None:
        super().__init__(parent)
        self.store = store
        self.store_problem = store_problem or ("" if store is not None else "no label store")
        self.policy = None                 # the reader's ViewPolicy in the chosen project
        self.current_key: str | None = None
        self.model_answer: Callable[[str], tuple[str, str, str | None]] | None = None
        self._rows: list[str] = []
        self.timer = QTimer(self)
        self.timer.setInterval(max(200, poll_ms))
        self.timer.timeout.connect(self.refresh)
        self._build()
        self.reload_projects()  # the saved project, if any, is chosen at once
        if poll_ms > 0:
            self.timer.start()

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.reader_edit = QLineEdit()
        self.reader_edit.setToolTip("Who reads (saved; the role is the store's: radview worklist "
                                    "reader NAME --role ...)")
        self.reader_edit.editingFinished.connect(self._reader_changed)
        self.role_label = QLabel("")
        self.project_combo = QComboBox()
        self.project_combo.currentTextChanged.connect(self._project_changed)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.table = QTableWidget(0, len(READER_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setMinimumHeight(120)
        self.table.cellDoubleClicked.connect(lambda r, _c: self._open_row(r))
        self.table.itemSelectionChanged.connect(self._selected)
        self.claim_button = _button("Claim next", self.claim_next)
        self.release_button = _button("Release", self.release_current)
        self.open_button = _button("Open", lambda: self.current_key
                                   and self.studyActivated.emit(self.current_key))
        buttons = QHBoxLayout()
        for b in (self.open_button, self.claim_button, self.release_button):
            buttons.addWidget(b)
        # my read of the item on screen
        self.item_label = QLabel("")
        self.read_combo = QComboBox()
        self.read_note = _line_edit("note (optional)")
        self.read_button = _button("Record read", self.record_read)
        self.read_box = _form_box("My read", ("Item", self.item_label), ("Class", self.read_combo),
                                  ("Note", self.read_note), (self.read_button,))
        # adjudication (leads)
        self.reads_list = QListWidget()
        self.reads_list.setMaximumHeight(6 * (self.fontMetrics().height() + 4))
        self.final_combo = QComboBox()
        self.reason_edit = _line_edit("reason (required)")
        self.final_button = _button("Record final label", self.record_final)
        self.adj_box = _form_box("Adjudication", ("Reads", self.reads_list), ("Final", self.final_combo),
                                 ("Reason", self.reason_edit), (self.final_button,))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        top = QFormLayout()
        who = QHBoxLayout()
        who.addWidget(self.reader_edit, 1)
        who.addWidget(self.role_label)
        top.addRow("Reader", who)
        top.addRow("Project", self.project_combo)
        # the form scrolls: docked beside the AI and label panels, it must not force the window
        # taller than a laptop screen (its own minimum height is ~600 px)
        inner = QWidget()
        lay = QVBoxLayout(inner)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        lay.addLayout(top)
        lay.addWidget(self.progress_label)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.read_box)
        lay.addWidget(self.adj_box)
        lay.addWidget(self.message)
        if self.store is not None:
            self.reader_edit.setText(self.store.reader)

    # ------------------------------------------------------------------ state
    @property
    def project(self) -> str:
        return self.project_combo.currentText()

    @property
    def is_lead(self) -> bool:
        return self.policy is not None and self.policy.role in ("adjudicator", "admin")

    def _say(self, text: str) -> None:
        self.message.setText(text)

    def reload_projects(self) -> None:
        """The store's projects into the combo (keeps the choice; the saved one at first)."""
        if self.store is None:
            self._say(f"Worklists unavailable: {self.store_problem}")
            self.setEnabled(False)
            return
        try:
            names = [p.name for p in self.store.projects()]
        except StoreError as exc:
            self._say(str(exc))
            return
        want = self.project or str(cfg.get("worklist/project", "") or "")
        if names == [self.project_combo.itemText(i) for i in range(self.project_combo.count())]:
            return
        self.project_combo.blockSignals(True)
        self.project_combo.clear()
        self.project_combo.addItems(names)
        if want in names:
            self.project_combo.setCurrentText(want)
        self.project_combo.blockSignals(False)
        self._project_changed(self.project)

    def set_reader(self, name: str) -> None:
        """Read as `name` (what typing in the Reader field does)."""
        self.reader_edit.setText(name)
        self._reader_changed()

    def _reader_changed(self) -> None:
        name = self.reader_edit.text().strip()
        if self.store is None or not name:
            return
        if name != self.store.reader:
            self.store.reader = name
            cfg.put("label_panel/reader", name)  # the label panel's key: one reader per app
        self._project_changed(self.project)

    def _project_changed(self, name: str) -> None:
        if name:
            cfg.put("worklist/project", name)
        old = self.policy
        self.policy = None
        if self.store is not None and name:
            try:
                self.policy = self.store.view_policy(name)
            except (StoreError, ValueError) as exc:
                self._say(str(exc))
        if (old is None) != (self.policy is None) or (old is not None and self.policy is not None
                                                      and (old.others, old.model, old.reader)
                                                      != (self.policy.others, self.policy.model,
                                                          self.policy.reader)):
            self.blindingChanged.emit(self.policy if self.policy is not None and self.policy.blinded
                                      else None)
        self.refresh()

    def set_current(self, key: str | None) -> None:
        """The study on screen: its read / adjudication is shown below the list."""
        self.current_key = key
        self._show_current()

    def _selected(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if rows:
            self.current_key = self._rows[min(rows)]
            self._show_current()

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self._rows):
            self.current_key = self._rows[row]
            self.studyActivated.emit(self._rows[row])
            self._show_current()

    # ------------------------------------------------------------------ refresh
    def refresh(self) -> None:
        if self.store is None:
            return
        if not self.isVisible() and self.sender() is self.timer:
            return
        if self.sender() is self.timer:
            self.reload_projects()
        name, pol = self.project, self.policy
        lead = self.is_lead
        self.role_label.setText(f"({pol.role})" if pol else "")
        self.adj_box.setVisible(lead)
        self.read_box.setVisible(not lead)  # a lead adjudicates; reads come from the readers
        self.claim_button.setEnabled(bool(name))
        if not name or pol is None:
            self.table.setRowCount(0)
            self._rows = []
            self.progress_label.setText("No reading project yet (radview worklist create ...)"
                                        if not name else "")
            return
        try:
            progress = self.store.progress(name)
            if lead:
                states = self.store.statuses(name)
                rows = [(k, s.study_type, s.status, f"{s.n_reads}/{s.needed}", s.final or "")
                        for k, s in states.items()]
            else:
                rows = [(w.key, w.study_type, w.read.value if w.read else "")
                        for w in self.store.worklist(name)]
        except (StoreError, ValueError) as exc:
            self._say(str(exc))
            return
        text = "  ·  ".join(f"{p.reader}: {p.text}" for p in progress) or "nothing assigned yet"
        if lead:
            n = sum(1 for r in rows if r[2] in ("disputed", "agreed"))
            text += f"  ·  {n} to adjudicate"
        elif pol.blinded:
            text += "  (blinded" + (", model hidden)" if not pol.model else ")")
        self.progress_label.setText(text)
        cols = LEAD_COLUMNS if lead else READER_COLUMNS
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(list(cols))
        self.table.setRowCount(len(rows))
        self._rows = [r[0] for r in rows]
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                item = QTableWidgetItem(_short(value) if j == 0 else str(value))
                if j == 0:
                    item.setToolTip(value)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self._show_current()

    def _classes(self, key: str) -> tuple[str, ...]:
        from radview import spaces

        p = self.store.project(self.project)
        space = p.space
        if not space:
            info = self.store.items(p.level, [key]).get(key) or {}
            space = info.get("space", "")
        sp = spaces.get_space(space) if space else None
        return tuple(sp.classes) if sp is not None and sp.classes else ()

    def _show_current(self) -> None:
        key = self.current_key
        name = self.project
        on_list = key is not None and key in self._rows
        self.read_box.setEnabled(bool(on_list))
        self.item_label.setText(_short(key) if on_list else "(not on this worklist)")
        self.reads_list.clear()
        if not on_list or self.store is None or not name:
            self.final_button.setEnabled(False)
            return
        try:
            classes = self._classes(key)
            mine = [r for r in self.store.reads(name, key, viewer=self.store.reader)
                    if r.reader == self.store.reader]
            status = self.store.item_status(name, key)
        except (StoreError, ValueError) as exc:
            self._say(str(exc))
            return
        for combo in (self.read_combo, self.final_combo):
            if tuple(combo.itemText(i) for i in range(combo.count())) != classes:
                combo.clear()
                combo.addItems(list(classes))
        if mine:
            self.read_combo.setCurrentText(mine[-1].value)
        self.read_button.setEnabled(status.status in ("open", "read", "disputed", "agreed")
                                    and not self.is_lead)
        if self.is_lead:
            for r in status.reads:
                self.reads_list.addItem(f"{r.reader}: {r.value}" + (f" ({r.note})" if r.note else ""))
            if status.final is not None:
                self.reads_list.addItem(f"final: {status.final} ({status.final_by}, {status.final_reader})")
            self.final_button.setEnabled(status.status in ("disputed", "agreed", "final"))

    # ------------------------------------------------------------------ actions
    def _after_write(self, result: Any, before: int) -> None:
        """Tell the window (the one store event) about the final label this write appended (an
        adjudication, or the consensus a read completed)."""
        from radview.gui.undo import store_signals

        try:
            finals = [e for e in self.store.events_since(before) if e.project == self.project
                      and e.key == self.current_key]
        except StoreError as exc:
            self._say(str(exc))
            finals = []
        for c in finals:
            store_signals().event.emit(c)
            store_signals().changed.emit(c.key, c.level)
        self.recorded.emit(result)
        self.refresh()

    def _record(self, write: Callable[[], Any], edit: QLineEdit, what: str, key: str,
                value: str) -> bool:
        """One write of the item on screen (a read, a final label): on success `edit` is
        cleared, the message says so and the window is told; False (and why) when refused."""
        try:
            before = self.store.last_event_id()
            result = write()
        except (StoreError, ValueError, PermissionError) as exc:
            self._say(str(exc))
            return False
        edit.clear()
        self._say(f"{what} recorded: {_short(key)} = {value}")
        self._after_write(result, before)
        return True

    def record_read(self) -> None:
        key, value = self.current_key, self.read_combo.currentText()
        if not key or not value:
            self._say("choose an item of your worklist and a class")
            return
        pol, note = self.policy, self.read_note.text().strip()

        def write():
            return self.store.record_read(self.project, key, value, note=note,
                                          model_shown=bool(pol and pol.model),
                                          others_shown=bool(pol and pol.others))
        if self._record(write, self.read_note, "read", key, value):
            self.next_unread()

    def next_unread(self) -> str | None:
        """Open the next item of the worklist still to read (after the current one, wrapping)."""
        if self.is_lead or not self._rows:
            return None
        unread = [k for i, k in enumerate(self._rows)
                  if self.table.item(i, 2) is not None and not self.table.item(i, 2).text()]
        if not unread:
            return None
        at = self._rows.index(self.current_key) if self.current_key in self._rows else -1
        key = next((k for k in unread if self._rows.index(k) > at), unread[0])
        self.current_key = key
        self.studyActivated.emit(key)
        self._show_current()
        return key

    def record_final(self) -> None:
        key, value, reason = self.current_key, self.final_combo.currentText(), self.reason_edit.text().strip()
        if not key or not value:
            self._say("choose an item and the final class")
            return
        model, version, output = (self.model_answer(key) if self.model_answer else ("", "", None))
        self._record(lambda: self.store.adjudicate(self.project, key, value, note=reason, model=model,
                                                   model_version=version, model_output=output),
                     self.reason_edit, "final label", key, value)

    def claim_next(self) -> None:
        try:
            key = self.store.claim(self.project)
        except (StoreError, ValueError) as exc:
            self._say(str(exc))
            return
        self._say(f"claimed {_short(key)}" if key else "nothing left to claim")
        self.refresh()
        if key:
            self.current_key = key
            self.studyActivated.emit(key)

    def release_current(self) -> None:
        if not self.current_key:
            return
        try:
            self.store.release(self.project, self.current_key)
        except (StoreError, ValueError, PermissionError) as exc:
            self._say(str(exc))
            return
        self._say(f"released {_short(self.current_key)}")
        self.refresh()
