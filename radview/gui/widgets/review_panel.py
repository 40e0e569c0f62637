"""The review panel: fastai's plot_top_losses at study level, inside the viewer.

A standalone QWidget (the main window docks it):
- a grid of the top-loss studies, each view as a thumbnail with its CAM when the host supplies
  one (`set_cam`), predicted / actual, probability of the actual class and loss; clicking a tile
  emits `studyActivated(study_key)`;
- filters: actual class, study type, reader, corrected or not; top K;
- the confusion matrix as a picture (clicking a cell lists its studies, highest loss first),
  a metrics table (overall, per study type, image level; kappa and AUROC with bootstrap 95% CIs)
  and the ROC curve with the operating point;
- for binary models a threshold slider with live sensitivity/specificity/kappa (O(log n) from
  the threshold sweep), applying it on release, and saving it as the site's threshold.

All metric computation runs on a superqt GeneratorWorker (the app's worker layer); results of
a superseded request are dropped by a generation counter; a correction starts the recomputation
in the same event-loop turn. The CAM cache keeps uint8 maps of the tiles shown, pruned.
Images load on an io thread (TaskQueue).
Call `update_label(key, label)` when a label is corrected, `set_review(data)` or
`set_predictions(preds, truths)` for new data, and `shutdown()` before the panel is destroyed.
"""
from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import QTimer, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGridLayout, QHBoxLayout,
                               QHeaderView, QLabel, QListWidget, QListWidgetItem,
                               QScrollArea, QSpinBox, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from radview.gui.widgets.confusion_view import ConfusionMatrixView
from radview.gui.widgets.review_tiles import ReviewTile
from radview.gui.widgets.roc_view import RocView
from radview.gui.widgets.threshold_bar import ThresholdBar
from radview.gui.workers import TaskQueue
from radview.review import Interpretation, ReviewSet, build_review, iter_summarize
from radview.types import ImageRef, Label
from radview.gui.widgets.agreement_view import AgreementView, model_answers_of
from radview.gui.widgets.review_grid import ReviewGridMixin
from radview.gui.widgets.review_jobs import ANY, _fmt, _summary_job, wait_until


class ReviewPanel(ReviewGridMixin, QWidget):
    studyActivated = Signal(str)
    camsWanted = Signal(object)        # list[ImageRef]: views shown in the grid
    summaryChanged = Signal(object)    # the ReviewSummary now shown
    tilesReady = Signal()              # the top-loss grid of that summary is built
    busyChanged = Signal(bool)
    thresholdSaved = Signal(str, float)
    labelIssuesWanted = Signal()       # the host computes them (model thread) -> set_label_issues

    def __init__(self, parent: QWidget | None = None, top_k: int = 12, n_resamples: int = 1000,
                 thumb_px: int = 112, load_images: bool = True):
        super().__init__(parent)
        self._data: ReviewSet | None = None
        self._interp: Interpretation | None = None
        self._summary = None
        self._gen = 0
        self._threads: list = []  # superqt GeneratorWorkers still running (superseded ones quit)
        self._threshold: float | None = None
        self._threshold_source = ""
        self._n_resamples = n_resamples
        self._thumb = thumb_px
        self._load_images = load_images
        self._grays: dict[str, np.ndarray] = {}
        self._cams: dict[str, np.ndarray] = {}
        self._refs: dict[str, ImageRef] = {}
        self._tiles: list[ReviewTile] = []
        self._pending_tops: list = []
        self._tile_gen = 0
        self._wanted: list[ImageRef] = []
        self._pending_labels: list[tuple] = []
        self._awaiting = False  # the current generation's result has not arrived yet
        self._was_busy = False
        self._last_ms = 0.0
        self._io = TaskQueue(max_pending=128, parent=self) if load_images else None
        if self._io is not None:
            self._io.done.connect(self._on_image)
        self._debounce = QTimer(self, singleShot=True, interval=150)
        self._debounce.timeout.connect(self.refresh)
        self._build_ui(top_k)

    # ------------------------------------------------------------------ UI
    def _build_ui(self, top_k: int) -> None:
        self.actual_box, self.type_box, self.reader_box = QComboBox(), QComboBox(), QComboBox()
        self.corrected_box = QComboBox()
        self.corrected_box.addItems(["corrected or not", "corrected", "not corrected"])
        self.top_spin = QSpinBox(minimum=1, maximum=500, value=top_k)
        self.top_spin.setPrefix("top ")
        for w in (self.actual_box, self.type_box, self.reader_box, self.corrected_box):
            w.currentIndexChanged.connect(self._schedule)
        self.top_spin.valueChanged.connect(self._schedule)
        bar = QHBoxLayout()
        for label, w in (("class", self.actual_box), ("type", self.type_box),
                         ("reader", self.reader_box), ("", self.corrected_box), ("", self.top_spin)):
            if label:
                bar.addWidget(QLabel(label))
            bar.addWidget(w)
        bar.addStretch(1)
        self.status = QLabel("no review yet")
        bar.addWidget(self.status)

        self.threshold_row = ThresholdBar()
        bar_ = self.threshold_row
        self.slider, self.threshold_label, self.live_label = (bar_.slider, bar_.threshold_label,
                                                              bar_.live_label)
        self.best_button, self.save_button = bar_.best_button, bar_.save_button
        bar_.moved.connect(self._update_live)
        bar_.applied.connect(self._apply_threshold)
        bar_.bestRequested.connect(self._best_threshold)
        bar_.saveRequested.connect(self.save_site_threshold)
        self.threshold_row.setVisible(False)

        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(6)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.grid_host)
        self._cols = 0
        self.scroll.viewport().installEventFilter(self)

        self.table = QTableWidget(0, 7)
        self.table.setHorizontalHeaderLabels(["group", "n", "accuracy", "kappa [95% CI]",
                                              "AUROC [95% CI]", "sens", "spec"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.confusion = ConfusionMatrixView()
        self.confusion.cellClicked.connect(self._on_cell)
        self.roc = RocView()
        self.cases = QListWidget()
        self.cases.itemActivated.connect(self._on_case)
        self.cases.itemClicked.connect(self._on_case)
        self.cases_label = QLabel("click a confusion-matrix cell to list its studies")
        self.cases_label.setWordWrap(True)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.table)
        pics = QSplitter(Qt.Orientation.Horizontal)
        pics.addWidget(self.confusion)
        pics.addWidget(self.roc)
        right.addWidget(pics)
        cases = QWidget()
        cl = QVBoxLayout(cases)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.cases_label)
        cl.addWidget(self.cases)
        right.addWidget(cases)
        right.setSizes([160, 260, 140])
        from PySide6.QtWidgets import QPushButton, QTabWidget
        from radview.gui.widgets.label_issues_view import LabelIssuesView
        self.tabs = QTabWidget()
        self.tabs.addTab(self.scroll, "Top losses")
        issues = QWidget()
        il = QVBoxLayout(issues)
        il.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.issues_button = QPushButton("Find likely label errors")
        self.issues_button.setToolTip("Out-of-fold check of every reviewed study's label with the model's "
                                      "features (runs on the model thread)")
        self.issues_button.clicked.connect(lambda: self.labelIssuesWanted.emit())
        self.issues_status = QLabel("")
        self.issues_status.setWordWrap(True)
        row.addWidget(self.issues_button)
        row.addWidget(self.issues_status, 1)
        il.addLayout(row)
        self.label_issues = LabelIssuesView(issues)
        self.label_issues.studyRequested.connect(self.studyActivated)
        il.addWidget(self.label_issues, 1)
        self.tabs.addTab(issues, "Likely label errors")
        self.agreement = AgreementView(self, store=getattr(self.parent(), "store", None))  # issue 16
        self.agreement.model_answers = lambda: model_answers_of(self._data)
        self.tabs.addTab(self.agreement, "Agreement")
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(self.tabs)
        main.addWidget(right)
        main.setSizes([560, 460])
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.threshold_row)
        lay.addWidget(main, 1)

    # ------------------------------------------------------------------ data in
    def set_review(self, data: ReviewSet) -> None:
        """Show a review of `data` (computed on the worker)."""
        self._data = data
        self._threshold, self._threshold_source = data.threshold, data.threshold_source
        self._fill_filters()
        self.refresh()

    def set_predictions(self, predictions, truths, threshold: float | None = 0.5,
                        threshold_source: str = "model", manifest=None) -> None:
        """Build the review from StudyPredictions and truths (on the worker), then show it.
        manifest: the model's; studies whose label space is not comparable with it are left
        out (listed as not comparable, with the reason)."""
        preds = list(predictions)
        truths = dict(truths)
        filters, top_k = self._filters(), self.top_spin.value()
        extra = {"manifest": manifest} if manifest is not None else {}

        def job():
            data = build_review(preds, truths, threshold=threshold,
                                threshold_source=threshold_source, **extra)
            return self._job_steps(data, filters, top_k)
        self._start(job, built=True)

    def update_label(self, study_key: str, label: Label, corrected: bool = True,
                     reader: str = "") -> bool:
        """A study's label changed (e.g. a correction): recompute soon. False when the study is
        not in the review or the label names none of the model's classes."""
        if any(t.built and t.gen == self._gen for t in self._threads):  # a build is running
            self._pending_labels.append((study_key, label, corrected, reader))
            return True
        if self._data is None or study_key not in self._data.keys:
            return False
        try:
            self._data = self._data.with_label(study_key, label, corrected, reader)
        except ValueError:
            return False
        if reader:
            self._fill_filters()
        self._debounce.stop()
        self.refresh()  # now: the recomputation starts in this event-loop turn (off this thread)
        return True

    MAX_CAMS = 256

    def set_cam(self, ref_key: str, cam) -> None:
        """A CAM (CamMap, or an array: float 0..1 or uint8) for one view of the grid. Kept as
        uint8 at most 2 x the tile size a side; maps of views no longer in the grid are pruned."""
        from radview.state import compact_cam
        from radview.types import CamMap

        data = getattr(cam, "data", cam)
        self._cams.pop(ref_key, None)
        # at the size the tile blends it (its gray image is loaded at 2 x thumb): 256 kept maps
        # are ~13 MB, not ~50 MB at the canvas's 512 px (house, issue 11)
        self._cams[ref_key] = compact_cam(CamMap(ImageRef(ref_key), np.asarray(data)),
                                          max_side=2 * self._thumb).data
        if len(self._cams) > self.MAX_CAMS:
            shown = {r.key for r in self._wanted}
            for k in [k for k in self._cams if k not in shown][: len(self._cams) - self.MAX_CAMS]:
                del self._cams[k]
        self._show_image(ref_key)

    def set_image(self, ref_key: str, gray: np.ndarray) -> None:
        """The display image of a view (uint8), when the host has it already."""
        self._grays[ref_key] = np.asarray(gray)
        self._show_image(ref_key)

    def set_label_issues(self, report, note: str = "") -> None:
        """A LabelIssueReport (or None with a note saying why there is none)."""
        self.label_issues.set_report(report)
        self.issues_button.setEnabled(True)
        self.issues_status.setText(note)

    # ------------------------------------------------------------------ state out
    def summary(self):
        return self._summary

    def interpretation(self) -> Interpretation | None:
        return self._interp

    def data(self) -> ReviewSet | None:
        return self._data

    def is_busy(self) -> bool:
        return self._awaiting or self._debounce.isActive() or bool(self._pending_tops)

    def threshold(self) -> float | None:
        return self._threshold

    def _note_busy(self) -> None:
        """Emit busyChanged when the busy state flips (computing or building tiles)."""
        busy = self.is_busy()
        if busy != self._was_busy:
            self._was_busy = busy
            self.busyChanged.emit(busy)

    def tiles(self) -> list[ReviewTile]:
        return list(self._tiles)

    # ------------------------------------------------------------------ computing
    def _filters(self) -> dict:
        def val(box):
            return None if box.currentIndex() <= 0 else box.currentText()

        corr = {0: None, 1: True, 2: False}[self.corrected_box.currentIndex()]
        return {"actual": val(self.actual_box), "study_type": val(self.type_box),
                "reader": val(self.reader_box), "corrected": corr}

    def _job_steps(self, data: ReviewSet, filters: dict, top_k: int):
        interp = Interpretation(data).filter(**filters)
        return data, interp, iter_summarize(interp, top_k=top_k, n_resamples=self._n_resamples)

    def _schedule(self, *_args) -> None:
        if self._data is not None:
            self._debounce.start()
            self._note_busy()

    def refresh(self) -> None:
        """Recompute everything for the current data, filters, threshold and top K."""
        self._debounce.stop()
        if self._data is None:
            return
        data = self._data
        if self._threshold is not None and data.n_classes == 2:
            data = data.with_threshold(self._threshold, self._threshold_source)
            self._data = data
        filters, top_k = self._filters(), self.top_spin.value()
        self._start(lambda: self._job_steps(data, filters, top_k))

    def _start(self, job, built: bool = False) -> None:
        from superqt.utils import create_worker

        for t in self._threads:
            t.quit()  # superseded: it stops at its next step, its result is dropped
        self._gen += 1
        self._awaiting = True
        gen = self._gen
        t = create_worker(_summary_job, job, _start_thread=False, _ignore_errors=True)
        t.gen, t.built, t.started_at = gen, built, time.perf_counter()
        t.returned.connect(lambda out, gen=gen: self._on_done(gen, *out, ""))
        t.errored.connect(lambda exc, gen=gen: self._on_done(gen, None, None, None,
                                                             f"{type(exc).__name__}: {exc}"))
        t.finished.connect(lambda t=t: self._reap(t))
        self._threads.append(t)
        self.status.setText("computing…")
        self._note_busy()
        t.start()

    def _reap(self, t) -> None:
        if t in self._threads:
            self._threads.remove(t)

    def _on_done(self, gen: int, base, interp, summary, error: str) -> None:
        if gen != self._gen:
            return  # superseded
        self._awaiting = False
        thread = next((t for t in self._threads if t.gen == gen), None)
        if error:
            self.status.setText(f"review failed: {error}")
            self._note_busy()
            return
        if thread is not None and thread.built:
            # set_predictions: the worker built the ReviewSet; adopt it, with the label changes
            # that arrived while it was being built
            thread.built = False  # adopted: later label changes apply directly
            self._data = base
            self._threshold, self._threshold_source = base.threshold, base.threshold_source
            pending, self._pending_labels = self._pending_labels, []
            for args in pending:
                self.update_label(*args)
            self._fill_filters()
            if pending and self._debounce.isActive():
                return  # update_label scheduled the review with them
        if thread is not None:
            self._last_ms = (time.perf_counter() - thread.started_at) * 1000
        self._interp, self._summary = interp, summary
        self._show_summary(summary)
        self.summaryChanged.emit(summary)
        self._note_busy()

    # ------------------------------------------------------------------ showing
    def _fill_filters(self) -> None:
        d = self._data
        if d is None:
            return
        wanted = {
            self.actual_box: list(d.classes),
            self.type_box: sorted({str(t) for t in d.study_types if t}),
            self.reader_box: sorted({str(r) for r in d.readers if r}),
        }
        for box, items in wanted.items():
            current = box.currentText()
            if [box.itemText(i) for i in range(1, box.count())] == items:
                continue
            box.blockSignals(True)
            box.clear()
            box.addItems([ANY, *items])
            box.setCurrentIndex(max(0, box.findText(current)))
            box.blockSignals(False)
        self.type_box.setEnabled(self.type_box.count() > 1)
        self.reader_box.setEnabled(self.reader_box.count() > 1)

    def _show_summary(self, s) -> None:
        self.status.setText(f"{s.n_studies} studies · {s.n_images} images · "
                            f"{self._last_ms:.0f} ms")
        self._fill_table(s)
        self.confusion.set_matrix(s.confusion_matrix, s.classes)
        self.cases.clear()
        self.cases_label.setText("click a confusion-matrix cell to list its studies")
        self.confusion.clear_selection()
        self.roc.set_curves(s.roc, {c: pc.auroc for c, pc in s.per_class.items()})
        binary = s.sweep is not None
        self.threshold_row.setVisible(binary)
        if binary:
            self.threshold_row.set_value(s.threshold or 0.0)
            self._update_live(s.threshold)
        else:
            self.roc.set_point(None)
        self._fill_grid(s.top_losses)

    def _fill_table(self, s) -> None:
        rows = [("all studies", s.metrics)] + [(g or "(no type)", gm) for g, gm in
                                                s.per_group.items()] + [("all images",
                                                                         s.image_metrics)]
        self.table.setRowCount(len(rows))
        for r, (name, m) in enumerate(rows):
            vals = [name, str(m.n), _fmt(m.accuracy), _fmt(m.kappa, m.ci.get("kappa")),
                    _fmt(m.auroc, m.ci.get("auroc")), _fmt(m.sensitivity), _fmt(m.specificity)]
            for c, v in enumerate(vals):
                item = QTableWidgetItem(v)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    # ------------------------------------------------------------------ interaction
    def _on_cell(self, actual: str, predicted: str) -> None:
        if self._interp is None:
            return
        keys = self._interp.cases(actual, predicted)
        losses = dict(zip(self._interp.data.keys, self._interp.losses.tolist()))
        self.cases.clear()
        for k in keys[:1000]:
            item = QListWidgetItem(f"{losses[k]:6.2f}  {k}")
            item.setData(Qt.ItemDataRole.UserRole, k)
            self.cases.addItem(item)
        more = f" (first 1000 of {len(keys)})" if len(keys) > 1000 else ""
        self.cases_label.setText(f"actual {actual}, predicted {predicted}: {len(keys)} "
                                 f"studies, highest loss first{more}")

    def _on_case(self, item: QListWidgetItem) -> None:
        self.studyActivated.emit(item.data(Qt.ItemDataRole.UserRole))

    def _apply_threshold(self, t: float) -> None:
        if self._threshold is not None and abs(t - self._threshold) < 1e-9:
            return
        self.set_threshold(t, "unsaved")

    def set_threshold(self, threshold: float, source: str = "unsaved") -> None:
        """Use this decision threshold (binary models) and recompute."""
        self._threshold, self._threshold_source = float(threshold), source
        self.refresh()

    def _update_live(self, t: float | None) -> None:
        s = self._summary
        if s is None or s.sweep is None or t is None:
            return
        at = s.sweep.at(t)
        src = self._threshold_source if abs(t - (self._threshold or -1)) < 1e-9 else "unsaved"
        self.threshold_row.show_figures(t, src, _fmt(at["sensitivity"]), _fmt(at["specificity"]),
                                        _fmt(at["kappa"]))
        self.roc.set_point((1 - at["specificity"], at["sensitivity"]))

    def _best_threshold(self) -> None:
        s = self._summary
        if s is not None and s.sweep is not None:
            best = s.sweep.best("youden")
            if math.isfinite(best):
                self.set_threshold(best, "unsaved")

    def save_site_threshold(self) -> None:
        """Save the current threshold as the site's own for this model."""
        d = self._data
        if d is None or not d.is_binary or self._threshold is None:
            return
        from radview.review.thresholds import save_site_threshold

        try:
            save_site_threshold(d.model, self._threshold, model_version=d.model_version,
                                criterion="manual (review panel)", n_studies=len(d))
        except (OSError, ValueError) as exc:
            self.status.setText(f"threshold not saved: {exc}")
            return
        self._threshold_source = "site"
        self._data = d.with_threshold(self._threshold, "site")
        self._update_live(self._threshold)
        self.thresholdSaved.emit(d.model, self._threshold)

    # ------------------------------------------------------------------ lifetime
    def wait_idle(self, timeout_ms: int = 10000) -> bool:
        """Block until no computation runs (tests and scripts)."""
        return wait_until(lambda: not self.is_busy(), timeout_ms)

    def shutdown(self) -> None:
        """Stop the worker threads (call before the panel is destroyed)."""
        self._debounce.stop()
        self._awaiting = False
        self._pending_tops = []
        for t in list(self._threads):
            t.quit()  # never blocks the GUI: the pool thread ends at its next step
        self._threads.clear()
        self.agreement.shutdown()
        if self._io is not None:
            self._io.stop()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)


__all__ = ["ReviewPanel", "ConfusionMatrixView", "RocView"]
