"""Docking of the label, retraining-queue and review panels, their wiring to the viewer, the
ONE label store of the window (opened once, passed to every panel and to the model side) and
the ONE store event after each correction / undo / redo.

A panel that fails to build does not stop the app, but its error is never swallowed: it goes
to the window's notification sink (status bar + errors panel, `window.notifications`) and to
`window.panel_errors`, which the GUI tests assert empty."""
from __future__ import annotations

import importlib
import inspect
import traceback

from PySide6.QtCore import Qt

# Panels built as standalone widgets: (module, class, dock title, area).
EXTRA_PANELS = (
    ("radview.gui.widgets.label_panel", "LabelPanel", "Label", "right"),
    ("radview.gui.widgets.queue_panel", "QueuePanel", "Retraining queue", "bottom"),
    ("radview.gui.widgets.review_panel", "ReviewPanel", "Review", "bottom"),
    ("radview.gui.widgets.pacs_panel", "PacsPanel", "PACS", "bottom"),
    ("radview.gui.widgets.worklist_panel", "WorklistPanel", "Worklist", "right"),
)


def open_app_store():
    """(the process's LabelStore, '') or (None, the reason naming the file)."""
    from radview.store import StoreError, open_store

    try:
        return open_store(), ""
    except StoreError as exc:
        return None, str(exc)


class PanelsMixin:
    """Mixed into MainWindow (which provides _dock, docks, browser, ai, extra_panels, state)."""

    def _dock_extra_panels(self) -> None:
        self.panel_errors: list[str] = []
        for module_name, cls_name, title, side in EXTRA_PANELS:
            area = Qt.DockWidgetArea.RightDockWidgetArea if side == "right" else Qt.DockWidgetArea.BottomDockWidgetArea
            try:
                cls = getattr(importlib.import_module(module_name), cls_name)
                kwargs = {"store": self.store} if "store" in inspect.signature(cls).parameters else {}
                if "store" in kwargs and self.store is None:
                    kwargs["store_problem"] = self.store_problem
                panel = cls(parent=self, **{k: v for k, v in kwargs.items()
                                            if k in inspect.signature(cls).parameters})
            except Exception as exc:  # noqa: BLE001 - reported to the user and the tests, below
                text = f"the {title} panel could not be built: {type(exc).__name__}: {exc}"
                self.panel_errors.append(text + "\n" + traceback.format_exc())
                self.notify(text, where=module_name)
                continue
            key = cls_name.lower()
            self.extra_panels[key] = panel
            dock = self._dock(key, title, panel, area)
            if area == Qt.DockWidgetArea.RightDockWidgetArea:
                self.tabifyDockWidget(self.docks["ai"], dock)
            elif "errors" in self.docks:
                self.tabifyDockWidget(self.docks["errors"], dock)
                dock.hide()

    def _wire_extra_panels(self) -> None:
        """Connect the label / queue / review panels to the viewer and to the store's event."""
        label = self.extra_panels.get("labelpanel")
        review = self.extra_panels.get("reviewpanel")
        if review is not None:
            review.studyActivated.connect(self.show_study_key)
            review.camsWanted.connect(self._review_cams_wanted)
            review.labelIssuesWanted.connect(self.find_label_issues)
            self.executor.called.connect(self._label_issues_done)
        for panel in (label, self.extra_panels.get("queuepanel")):
            if panel is not None:
                panel.follow_hub = False  # _store_event forwards the one event to them
        if label is not None:
            label.labelled.connect(self._labelled)
            label.boxToolRequested.connect(lambda what: self.box_key(accept=what == "accept"))
            edit = self.menuBar().addMenu("&Edit")
            self.menuBar().insertMenu(self.menuBar().actions()[1], edit)  # after File
            edit.addAction(label.undo_action)
            edit.addAction(label.redo_action)
        from radview.gui.undo import store_signals

        store_signals().event.connect(self._store_event)  # a bound slot: dropped with the window
        store_signals().failed.connect(lambda msg: self.notify(msg, where="label store"))
        from radview.gui.retrain import install

        install(self)  # the queue panel's Retrain button
        from radview.gui import blinding

        blinding.install(self)  # the worklist panel: blinded reads hide labels and the model
        for canvas in self.viewer.canvases:
            self._wire_canvas(canvas)
        self.viewer.on_canvas_added = self._canvas_added

    def _wire_canvas(self, canvas) -> None:
        label = self.extra_panels.get("labelpanel")
        if label is not None:
            canvas.boxChanged.connect(self._box_changed)
            canvas.boxDrawn.connect(self._box_drawn)

    # ------------------------------------------------------------------ the one store event
    def _store_event(self, correction) -> None:
        """After each correction, undo or redo (one event): the item's current label goes into
        the view state, and from there in this same event-loop turn to the browser's label
        columns, the viewer's label overlay and boxes, the label and queue panels, and the
        review (recomputed off the GUI thread)."""
        if not self.built:
            return
        from radview.store import StoreError

        key, level = correction.key, correction.level
        label, corrected = None, True
        if self.store is not None:
            try:  # the one read of the item per event (label panel refresh: a cache hit)
                from radview.store.service import snapshots_of

                st = snapshots_of(self.store).item(key, level).state
                label, corrected = st.label, bool(st.corrected)
            except StoreError as exc:
                self.notify(str(exc), where="label store")
                return
        self.state.set_label(key, label)
        self.browser.model.set_label(key, label, corrected)
        study = self.viewer.study
        if study is not None and (study.key == key or any(v.ref.key == key for v in study.views)):
            self._update_label_overlay()
            if correction.kind == "boxes":
                self.ai.refresh()
        panel = self.extra_panels.get("labelpanel")
        if panel is not None and panel.key == key:
            panel.refresh()
        queue = self.extra_panels.get("queuepanel")
        if queue is not None:
            queue.refresh()
        review = self.extra_panels.get("reviewpanel")
        study_key = key
        if level == "image":  # an image label is its study's truth when it is the only view
            node = self.browser.model.by_ref.get(key)
            study_key = node.study.key if node is not None and len(node.study.views) == 1 else None
        if review is not None and study_key is not None and label is not None and label.value:
            from radview.types import Label

            review.update_label(study_key, Label(label.value, source="correction" if corrected else label.source,
                                                 space=getattr(label, "space", "")),
                                corrected, getattr(correction, "reader", ""))

    def find_label_issues(self) -> None:
        """Likely label errors among the reviewed studies (their own label space, corrections
        win): the model's features and an out-of-fold check, on the model thread."""
        review = self.extra_panels.get("reviewpanel")
        data = review.data() if review is not None else None
        info = self.ai.model_info
        if data is None or info is None or info.task == "detection":
            review.set_label_issues(None, "needs a review of a classification model first")
            return
        by_key = {s.key: s for s in self.browser.model.studies}
        studies = [by_key[k] for k in data.keys if k in by_key]
        given = [data.classes[int(y)] for k, y in zip(data.keys, data.y_true) if k in by_key]
        name, version = info.name, info.version
        self._issues_seq = getattr(self, "_issues_seq", 0) + 1
        key = ("label-issues", self._issues_seq)
        review.issues_button.setEnabled(False)
        review.issues_status.setText(f"computing {name} features of {len(studies)} studies…")

        def job(_backend):
            import numpy as np

            from radview.models.model_features import iter_features
            from radview.review.label_issues import find_label_issues

            from radview.models.model_features import FeatureError

            feats = None
            try:
                for p in iter_features([v.ref for s in studies for v in s.views], name):
                    feats = p.payload if p.payload is not None else feats
            except (FeatureError, RuntimeError, ValueError, OSError) as exc:
                return None, f"no features: {exc}"
            rows, owner, kept, kept_given = [], [], [], []
            for s, g in zip(studies, given):
                r = [i for i in (feats.row(v.ref.key) for v in s.views) if i is not None]
                if r:
                    rows += r
                    owner += [len(kept)] * len(r)
                    kept.append(s)
                    kept_given.append(g)
            if len(set(kept_given)) < 2:
                return None, "fewer than two classes among the reviewed studies"
            try:
                return find_label_issues(
                    feats.matrix[np.asarray(rows, np.intp)], np.asarray(owner, np.intp), kept_given,
                    [s.key for s in kept], groups=[s.patient or s.key for s in kept],
                    paths=[s.views[0].ref.path if len(s.views) == 1 else s.key for s in kept],
                    model=name, model_version=version), ""
            except ValueError as exc:  # too few studies per class for the folds, ...
                return None, f"label issues: {exc}"
        self.executor.call(key, job)

    def _label_issues_done(self, _gen, key, result) -> None:
        review = self.extra_panels.get("reviewpanel")
        if review is None or key != ("label-issues", getattr(self, "_issues_seq", 0)):
            return
        report, note = result
        if report is not None:
            note = (f"{len(report.issues)} of {report.n_studies} studies flagged (out-of-fold accuracy "
                    f"{report.oof_accuracy:.3f}, {report.method})")
        review.set_label_issues(report, note)

    def load_labels(self, study) -> None:
        """The current labels (corrections win) of a study and its views, in ONE store read,
        into the view state (the canvases' truth boxes and label overlay read them there)."""
        if self.store is None or study is None:
            return
        from radview.store import StoreError

        keys = [v.ref.key for v in study.views]
        try:
            images = self.store.states("image", keys=keys)
            studies = self.store.states("study", keys=[study.key])
        except StoreError as exc:
            self.notify(str(exc), where="label store")
            return
        for k, st in list(images.items()) + list(studies.items()):
            if st.label is not None and (st.corrected or getattr(st, "boxes_known", False) or st.label.value):
                self.state.labels[k] = st.label

    def _review_cams_wanted(self, refs) -> None:
        ai = self.ai
        if ai.model_info is None or not ai.model_info.cam:
            return
        from radview.gui.ai_controller import ReviewCam

        self.executor.request_background_cams([(ReviewCam(r.key), r, None, ai.block) for r in refs])

    def review_cam(self, ref_key: str, cam) -> None:
        review = self.extra_panels.get("reviewpanel")
        if review is not None:
            review.set_cam(ref_key, cam)

    @staticmethod
    def _image_key(canvas) -> str | None:
        """The image a canvas shows: box edits are recorded for it (also on a study-level item)."""
        frame = getattr(canvas, "frame", None)
        return frame.ref.key if frame is not None else None

    def _box_drawn(self, box) -> None:
        label = self.extra_panels.get("labelpanel")
        if label is not None:
            label.add_box(box, image_key=self._image_key(self.sender()))

    def _box_changed(self, old, new) -> None:
        """A box moved or resized on the canvas: a label box is replaced, a predicted box
        becomes a label box (accepted as edited)."""
        label = self.extra_panels.get("labelpanel")
        if label is None:
            return
        key = self._image_key(self.sender())
        if old.label.startswith("predicted:"):
            from dataclasses import replace

            label.add_box(replace(new, score=None), image_key=key)
        else:
            label.replace_box(old, new, image_key=key)

    def box_key(self, accept: bool) -> None:
        """Accept (Return) or reject/delete (Delete) the selected box of the active canvas."""
        label = self.extra_panels.get("labelpanel")
        canvas = self.viewer.active_canvas()
        item = canvas.selected_box()
        if label is None or item is None:
            return
        key = self._image_key(canvas)
        if item.predicted:
            (label.accept_box if accept else label.reject_box)(item.box, image_key=key)
        elif not accept:
            label.delete_box(item.box, image_key=key)

    def truth_boxes(self, view) -> tuple:
        """A view's label boxes as they stand now (corrections win: the view state holds the
        store's current labels, read once per study and updated by the store event)."""
        label = self.state.label_of(view.ref.key, view.label)
        return tuple(label.boxes) if label is not None else ()

    def show_study_key(self, key: str) -> None:
        study = next((s for s in self.browser.model.studies if s.key == key), None)
        if study is None:
            for s in self.browser.model.studies:
                for i, v in enumerate(s.views):
                    if v.ref.key == key:
                        self.show_study(s, i)
                        return
            return
        self.show_study(study)

    def _labelled(self, correction) -> None:
        """The label panel recorded a correction (the store event did the updates)."""

    def prediction_shown(self, sp) -> None:
        """The visible study's prediction (for the label panel's audit trail)."""
        label = self.extra_panels.get("labelpanel")
        if label is not None and hasattr(label, "set_prediction"):
            label.set_prediction(sp)

    def folder_inferred(self, study_preds) -> None:
        """Every study of the folder has its prediction: hand them to the review panel, with
        truths from the scan and the store (corrections win) and the site's threshold if any."""
        review = self.extra_panels.get("reviewpanel")
        if review is None or not study_preds or not hasattr(review, "set_predictions"):
            return
        studies = self.browser.model.studies
        info = self.ai.model_info
        try:
            from radview.review.data import truths_from_studies

            overrides, corrected = {}, {}
            if self.store is not None:
                from radview.review.collect import store_overrides

                overrides, corrected = store_overrides(self.store, studies)
            truths = truths_from_studies(studies, overrides, corrected)
            threshold, source = info.threshold if len(info.classes) == 2 else None, "model"
            if threshold is not None:
                from radview.review.thresholds import effective_threshold

                threshold, source = effective_threshold(info.name, threshold)
            review.set_predictions(list(study_preds), truths, threshold=threshold, threshold_source=source,
                                   manifest=getattr(info, "manifest", None))
        except (OSError, ValueError, KeyError) as exc:  # the viewer carries on without the review
            self.notify(f"review unavailable: {exc}", where="review")
