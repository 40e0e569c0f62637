"""The review panel's Agreement tab (issue 16): inter-reader agreement of a reading project's
reads (Cohen's kappa for two readers, Fleiss' kappa for more), each reader vs the model and vs
the final label, per study type, every kappa with its bootstrap CI (radview.review.agreement).
Without a project: the readers' corrections in the store, vs the model and the current label.

    view = AgreementView(parent=review_panel)
    view.set_store(store)                      # the window's one store
    view.model_answers = lambda: {key: cls}    # the model's answer per study (the review's data)
    view.refresh()                             # computed on a worker thread; `computed` when shown

Blinding: the statistics use every read, so the tab shows them only to an adjudicator or an
admin of a blinded project (a reader is told why not).
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

CORRECTIONS = "(corrections)"
COLUMNS = ("Comparison", "Kappa", "95% CI", "Items")


def agreement_rows(t: Any, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Table rows of a TeamAgreement: (what, kappa, CI, items)."""
    import math

    def row(what: str, a) -> tuple[str, str, str, str]:
        ci = "" if math.isnan(a.low) else f"{a.low:.3f} to {a.high:.3f}"
        kappa = "n/a" if math.isnan(a.value) else f"{a.value:.3f}"
        return (prefix + what, kappa, ci, str(a.n_items))

    out = [row(f"{a} vs {b} (Cohen)", k) for (a, b), k in t.inter.pairs.items()]
    if t.inter.fleiss is not None:
        out.append(row(f"all {len(t.readers)} readers (Fleiss)", t.inter.fleiss))
    out += [row(f"{r} vs model", k) for r, k in t.vs_model.items()]
    out += [row(f"{r} vs final", k) for r, k in t.vs_final.items()]
    for st, sub in t.by_type.items():
        out += agreement_rows(sub, prefix=f"{prefix}{st}: ")
    return out


def model_answers_of(data: Any) -> dict[str, str]:
    """{study key: the model's class} of a review's ReviewSet (empty without one)."""
    if data is None or not len(data):
        return {}
    return {k: data.classes[int(i)] for k, i in zip(data.keys, data.y_pred)}


class AgreementView(QWidget):
    computed = Signal(object)   # the TeamAgreement shown (None when nothing to show)

    def __init__(self, parent: QWidget | None = None, store: Any = None, n_boot: int = 1000) -> None:
        super().__init__(parent)
        self.store = store
        self.n_boot = n_boot
        self.model_answers: Callable[[], dict[str, str]] | None = None
        self.result = None
        self._gen = 0
        self._workers: list = []
        self.project_box = QComboBox()
        self.refresh_button = QPushButton("Compute")
        self.refresh_button.clicked.connect(self.refresh)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("reads of"))
        bar.addWidget(self.project_box, 1)
        bar.addWidget(self.refresh_button)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)

    def set_store(self, store: Any) -> None:
        self.store = store
        self._fill_projects()

    def showEvent(self, event) -> None:  # noqa: N802
        self._fill_projects()
        super().showEvent(event)

    def _fill_projects(self) -> None:
        from radview.store import StoreError

        names = [CORRECTIONS]
        if self.store is not None:
            try:
                names += [p.name for p in self.store.projects()]
            except StoreError as exc:
                self.status.setText(str(exc))
        if names != [self.project_box.itemText(i) for i in range(self.project_box.count())]:
            keep = self.project_box.currentText()
            self.project_box.clear()
            self.project_box.addItems(names)
            if keep in names:
                self.project_box.setCurrentText(keep)

    def _job(self, project: str, model: dict[str, str], store: Any, n_boot: int):
        from radview.review import agreement as ag

        if project and project != CORRECTIONS:
            return ag.project_agreement(store, project, model=model or None, n_boot=n_boot)
        reads = ag.reads_from_store(store, level="study")
        keys = sorted({k for per in reads.values() for k in per})
        current = {k: v.value for k, v in store.labels("study", keys).items() if v.value}
        items = store.items("study", keys)
        return ag.team_agreement(reads, final=current, model=model or None, n_boot=n_boot,
                                 study_types={k: i["study_type"] for k, i in items.items()
                                              if i["study_type"]})

    def refresh(self) -> None:
        """Compute the agreement of the chosen project (on a worker thread)."""
        if self.store is None:
            self.status.setText("no label store")
            return
        project = self.project_box.currentText()
        if project and project != CORRECTIONS:
            try:
                pol = self.store.view_policy(project)
            except ValueError as exc:
                self.status.setText(str(exc))
                return
            if not pol.others:
                self.table.setRowCount(0)
                self.status.setText(f"{pol.reader} reads {project} blinded: its agreement is for "
                                    "adjudicators and admins")
                self.computed.emit(None)
                return
        from superqt.utils import create_worker

        model = self.model_answers() if self.model_answers else {}
        self._gen += 1
        gen = self._gen
        w = create_worker(self._job, project, model, self.store, self.n_boot, _start_thread=False)
        w.returned.connect(lambda t, gen=gen: self._show(gen, t, ""))
        w.errored.connect(lambda exc, gen=gen: self._show(gen, None, f"{type(exc).__name__}: {exc}"))
        w.finished.connect(lambda w=w: w in self._workers and self._workers.remove(w))
        self._workers.append(w)
        self.status.setText("computing…")
        w.start()

    def _show(self, gen: int, t: Any, error: str) -> None:
        if gen != self._gen:
            return  # superseded
        self.result = t
        if t is None:
            self.table.setRowCount(0)
            self.status.setText(error)
            self.computed.emit(None)
            return
        rows = agreement_rows(t)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(v))
        skipped = "; ".join(f"{w}: {y}" for w, y in t.skipped[:4])
        self.status.setText(f"{len(t.readers)} readers, {t.n_items} items"
                            + (f" (not computed: {skipped})" if skipped else ""))
        self.computed.emit(t)

    def shutdown(self) -> None:
        for w in self._workers:
            w.quit()
