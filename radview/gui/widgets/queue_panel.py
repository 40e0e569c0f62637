"""Retraining queue panel: pending corrections with counts per class and per reader.

    panel = QueuePanel(store=None, parent=window)   # store None: the default LabelStore()
    panel.retrainRequested.connect(start_training)  # the Retrain button
    panel.itemActivated.connect(open_item)          # double-click: (key, level)

It refreshes when any undoable edit of this process changes an item (radview.gui.undo's
store_signals) and polls the store every `poll_ms` (default 2 s, one cheap query) so that
corrections written by another program (the CLI, a second window) appear too.
`set_retrain_enabled(False)` while a training run is going.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from shiboken6 import isValid

from radview.gui.undo import open_owned_store, store_signals
from radview.store import REASON_CODES, Correction, LabelStore, StoreError

COLUMNS = ("#", "Time (UTC)", "Reader", "Level", "Item", "Change", "Reason", "Note", "Model",
           "Excluded")


def _short(value: Any, kind: str) -> str:
    if kind == "boxes":
        n = len(value or ())
        return f"{n} box{'es' if n != 1 else ''}"
    return "unlabelled" if value is None else str(value)


class QueuePanel(QWidget):
    retrainRequested = Signal()
    itemActivated = Signal(str, str)
    countChanged = Signal(int)

    def __init__(self, store: LabelStore | None = None, parent: QWidget | None = None, *,
                 poll_ms: int = 2000, store_problem: str | None = None) -> None:
        """store_problem: the host's store failed (with this reason): do not open another."""
        super().__init__(parent)
        self.store: LabelStore | None = None
        self.store_problem = store_problem or ""
        self.space: str | None = None  # the queue of one label space (the model's), None: all
        self.follow_hub = True  # a host that forwards the store event itself sets False
        self.events: list[Correction] = []
        self._last_seen = -1
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self.refresh)
        self._build()
        if store is None and store_problem is None:
            store, problem = open_owned_store(self)
            self.store_problem = problem or ""
        self.set_store(store)
        store_signals().changed.connect(self._on_store_changed)
        self.timer = QTimer(self)
        self.timer.setInterval(max(100, poll_ms))
        self.timer.timeout.connect(self.poll)
        if poll_ms > 0:
            self.timer.start()
        if parent is not None and hasattr(parent, "show_study"):
            self.attach(parent)

    def _build(self) -> None:
        self.summary = QLabel("")
        self.retrain = QPushButton("Retrain…")
        self.retrain.setToolTip("Fine-tune the model with the pending corrections")
        self.retrain.clicked.connect(self.retrainRequested.emit)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.retrain)
        self.table = self._table(COLUMNS)
        self.table.cellDoubleClicked.connect(self._activated)
        self.by_class = self._table(("Class", "Pending"))
        self.by_reader = self._table(("Reader", "Pending"))
        counts = QWidget()
        cl = QVBoxLayout(counts)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.by_class)
        cl.addWidget(self.by_reader)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(counts)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)

    @staticmethod
    def _table(headers) -> QTableWidget:
        t = QTableWidget(0, len(headers))
        t.setHorizontalHeaderLabels(list(headers))
        t.verticalHeader().setVisible(False)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.horizontalHeader().setStretchLastSection(True)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        t.setAlternatingRowColors(True)
        t.setSortingEnabled(False)
        return t

    def attach(self, window: Any) -> None:
        """Open activated items in a main window (show_study + scan_result), when it has them."""
        def open_item(key: str, level: str) -> None:
            result = getattr(window, "scan_result", None)
            for study in getattr(result, "studies", ()):
                if level == "study" and study.key == key:
                    window.show_study(study)
                    return
                for i, view in enumerate(study.views):
                    if view.ref.key == key:
                        window.show_study(study, view=i)
                        return
        self.itemActivated.connect(open_item)

    # ------------------------------------------------------------------ store
    def set_store(self, store: LabelStore | None) -> None:
        self.store = store
        self.retrain.setEnabled(store is not None)
        self.refresh()

    def set_retrain_enabled(self, on: bool) -> None:
        self.retrain.setEnabled(on and self.store is not None)

    def poll(self) -> None:
        """Refresh if the store got new events (from this or another program)."""
        if self.store is None:
            return
        try:
            last = self.store.last_event_id()
        except StoreError:
            return
        if last != self._last_seen:
            self.refresh()

    def set_space(self, space: str | None) -> None:
        """Show the queue of one label space (the selected model's): its corrections only."""
        if space != self.space:
            self.space = space
            self.refresh()

    def _on_store_changed(self, _key: str, _level: str) -> None:
        if not self.follow_hub:
            return
        if isValid(self) and isValid(self._refresh_timer):  # the hub outlives panels
            self._refresh_timer.start(0)  # one refresh for a burst of changes

    # ------------------------------------------------------------------ display
    def refresh(self) -> None:
        if self.store is None:
            self.summary.setText("Label store unavailable" + (f": {self.store_problem}"
                                                             if self.store_problem else ""))
            self.events = []
            self._fill_counts(self.by_class, {})
            self._fill_counts(self.by_reader, {})
            self.table.setRowCount(0)
            return
        try:  # one read transaction (radview.store.service.read_queue), not three
            from radview.store.service import read_queue

            q = read_queue(self.store, space=self.space)
            self._last_seen, self.events, summary = q.last_event_id, list(q.pending), q.summary
        except StoreError as exc:
            self.summary.setText(str(exc))
            return
        text = f"{summary.total} pending correction{'s' if summary.total != 1 else ''}"
        if summary.excluded:
            text += f" ({summary.excluded} excluding their item from training)"
        self.summary.setText(text)
        self._fill_counts(self.by_class, summary.by_class)
        self._fill_counts(self.by_reader, summary.by_reader)
        t = self.table
        t.setRowCount(len(self.events))
        for row, e in enumerate(reversed(self.events)):  # newest first
            change = f"{_short(e.old_value, e.kind)} → {_short(e.new_value, e.kind)}"
            if e.inverse_of is not None:
                change = f"undo #{e.inverse_of}: {change}"
            cells = (str(e.id), e.time[:19].replace("T", " "), e.reader, e.level, e.key, change,
                     REASON_CODES.get(e.reason, e.reason), e.note,
                     f"{e.model} {e.model_version}".strip(), "yes" if e.exclude_from_training else "")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 4:
                    item.setToolTip(e.key)
                    item.setData(Qt.ItemDataRole.UserRole, (e.key, e.level))
                t.setItem(row, col, item)
        self.countChanged.emit(summary.total)

    @staticmethod
    def _fill_counts(table: QTableWidget, counts: dict[str, int]) -> None:
        table.setRowCount(len(counts))
        for row, (name, n) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))):
            table.setItem(row, 0, QTableWidgetItem(name))
            cnt = QTableWidgetItem(str(n))
            cnt.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(row, 1, cnt)

    def counts(self, which: str = "class") -> dict[str, int]:
        """What the per-class (or 'reader') table shows."""
        table = self.by_class if which == "class" else self.by_reader
        return {table.item(r, 0).text(): int(table.item(r, 1).text())
                for r in range(table.rowCount())}

    def _activated(self, row: int, _col: int) -> None:
        item = self.table.item(row, 4)
        if item is not None:
            key, level = item.data(Qt.ItemDataRole.UserRole)
            self.itemActivated.emit(key, level)
