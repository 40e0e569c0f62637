"""The "Likely label errors" list: studies whose label an out-of-fold head disagrees with.

Standalone widget (mounted by the review panel): `set_report(report)` takes a
radview.review.label_issues.LabelIssueReport (or the dict of `issues_to_dict` / the JSON of
`radview review --label-issues`); the table shows rank, study, given label, suggested label,
score and the reason, most likely wrong first, sortable by any column. Double-click or Return
on a row emits `studyRequested(study key)`; the panel opens that study. "Show all studies"
lists the whole ranking (flagged rows in bold) instead of the flagged ones only.
"""
from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt,
                            Signal)
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel,
                               QTableView, QVBoxLayout, QWidget)

__all__ = ["LabelIssuesView", "COLUMNS"]

COLUMNS = ("#", "study", "given", "suggested", "score", "why")


def _rows_of(report: Any) -> tuple[list[dict], list[dict], str]:
    """(flagged rows, all rows, summary) from a LabelIssueReport or its dict."""
    if report is None:
        return [], [], ""
    if isinstance(report, dict):
        flagged = [dict(r, flagged=True) for r in report.get("label_issues", [])]
        ranked = [dict(r) for r in report.get("ranked", [])] or flagged
        n = report.get("n_studies")
        if n is None and report.get("label_spaces"):
            n = sum(s.get("n_studies", 0) for s in report["label_spaces"])
        summary = f"{len(flagged)} of {n if n is not None else '?'} studies flagged"
        return flagged, ranked, summary
    def as_row(r) -> dict:
        return {"key": r.key, "path": r.path, "given": r.given, "suggested": r.suggested,
                "score": r.score, "reason": r.reason, "flagged": r.flagged}

    flagged = [as_row(r) for r in report.issues]
    ranked = [as_row(r) for r in report.ranked]
    noise = ", ".join(f"{c} {v:.0%}" for c, v in zip(report.classes, report.noise_rate))
    summary = (f"{len(flagged)} of {report.n_studies} studies flagged "
               f"({report.n_folds} folds, out-of-fold accuracy {report.oof_accuracy:.2f}; "
               f"estimated label noise {noise})")
    return flagged, ranked, summary


class _Model(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self._bold = QFont()
        self._bold.setBold(True)

    def set_rows(self, rows: list[dict]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        r = self.rows[index.row()]
        c = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if c == 0:
                return index.row() + 1
            if c == 1:
                return os.path.basename(str(r.get("path") or r["key"]).rstrip("/")) or r["key"]
            if c == 2:
                return r["given"]
            if c == 3:
                return r["suggested"]
            if c == 4:
                return f"{float(r['score']):.3f}"
            return r.get("reason", "")
        if role == Qt.ItemDataRole.UserRole:  # sort keys
            return (index.row(), str(r.get("path") or r["key"]), r["given"], r["suggested"],
                    float(r["score"]), r.get("reason", ""))[c]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{r.get('path') or r['key']}\n{r.get('reason', '')}"
        if role == Qt.ItemDataRole.FontRole and r.get("flagged"):
            return self._bold
        if role == Qt.ItemDataRole.TextAlignmentRole and c in (0, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class _Table(QTableView):
    activatedKey = Signal(QModelIndex)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.activatedKey.emit(self.currentIndex())
            return
        super().keyPressEvent(event)


class LabelIssuesView(QWidget):
    """See the module doc. studyRequested(study key)."""

    studyRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._flagged: list[dict] = []
        self._ranked: list[dict] = []
        self.summary = QLabel("No label issues computed yet "
                              "(`radview review PATH --model M --label-issues`).")
        self.summary.setWordWrap(True)
        self.show_all = QCheckBox("Show all studies")
        self.show_all.setToolTip("the whole out-of-fold ranking, flagged studies in bold")
        self.show_all.toggled.connect(self._refill)
        self.model = _Model(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = _Table(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        h = self.table.horizontalHeader()
        h.setStretchLastSection(True)
        h.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(self._open)
        self.table.activatedKey.connect(self._open)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.show_all)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        self.setToolTip("Studies whose label a head trained without them disagrees with "
                        "(confident learning). Double-click or Return opens the study.")

    # ------------------------------------------------------------------ API
    def set_report(self, report: Any) -> None:
        """A LabelIssueReport, its dict (issues_to_dict), the CLI's JSON, or None to clear."""
        self._flagged, self._ranked, summary = _rows_of(report)
        self.summary.setText(summary or "No label issues computed.")
        self._refill()

    def clear(self) -> None:
        self.set_report(None)

    def row_count(self) -> int:
        return self.proxy.rowCount()

    def key_at(self, row: int) -> str:
        """Study key of the visible row `row` (after sorting)."""
        src = self.proxy.mapToSource(self.proxy.index(row, 0))
        return self.model.rows[src.row()]["key"]

    def current_key(self) -> str | None:
        idx = self.table.currentIndex()
        if not idx.isValid():
            return None
        return self.model.rows[self.proxy.mapToSource(idx).row()]["key"]

    def select_key(self, key: str) -> bool:
        for row in range(self.proxy.rowCount()):
            if self.key_at(row) == key:
                self.table.selectRow(row)
                return True
        return False

    # ------------------------------------------------------------------ internals
    def _refill(self, *_args) -> None:
        self.model.set_rows(list(self._ranked if self.show_all.isChecked() else self._flagged))

    def _open(self, index: QModelIndex) -> None:
        if index.isValid():
            self.studyRequested.emit(self.model.rows[self.proxy.mapToSource(index).row()]["key"])
