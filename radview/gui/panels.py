"""Docking of the panels other engineers build as standalone widgets (label, retraining queue,
review) and their wiring to the viewer. Each is optional: a panel that is missing or fails to
build never stops the app."""
from __future__ import annotations

import importlib

from PySide6.QtCore import Qt

# Panels other engineers build as standalone widgets: (module, class, dock title, area).
EXTRA_PANELS = (
    ("radview.gui.widgets.label_panel", "LabelPanel", "Label", "right"),
    ("radview.gui.widgets.queue_panel", "QueuePanel", "Retraining queue", "bottom"),
    ("radview.gui.widgets.review_panel", "ReviewPanel", "Review", "bottom"),
)


class PanelsMixin:
    """Mixed into MainWindow (which provides _dock, docks, browser, ai, extra_panels)."""

    def _dock_extra_panels(self) -> None:
        for module_name, cls_name, title, side in EXTRA_PANELS:
            area = Qt.DockWidgetArea.RightDockWidgetArea if side == "right" else Qt.DockWidgetArea.BottomDockWidgetArea
            try:
                module = importlib.import_module(module_name)
                panel = getattr(module, cls_name)(parent=self)
            except Exception:  # noqa: BLE001 - a panel not built yet (or broken) never stops the app
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
        """Connect the label / queue / review panels (built by other engineers) to the viewer."""
        label = self.extra_panels.get("labelpanel")
        review = self.extra_panels.get("reviewpanel")
        if review is not None and hasattr(review, "studyActivated"):
            review.studyActivated.connect(self.show_study_key)
        if review is not None and hasattr(review, "camsWanted") and hasattr(review, "set_cam"):
            review.camsWanted.connect(self._review_cams_wanted)
        if label is not None and hasattr(label, "labelled"):
            label.labelled.connect(self._labelled)
        if label is not None and hasattr(label, "undo_action"):
            edit = self.menuBar().addMenu("&Edit")
            self.menuBar().insertMenu(self.menuBar().actions()[1], edit)  # after File
            edit.addAction(label.undo_action)
            edit.addAction(label.redo_action)
        try:
            from radview.gui.undo import store_signals

            store_signals().changed.connect(self._store_changed)  # a bound slot: dropped with the window
        except Exception:  # noqa: BLE001 - no store wiring without issue 5's module
            pass
        try:
            from radview.gui.retrain import install

            install(self)  # the queue panel's Retrain button; runs on the model executor
        except Exception:  # noqa: BLE001
            pass
        if label is not None and hasattr(label, "replace_box"):
            for canvas in self.viewer.canvases:
                canvas.boxChanged.connect(self._box_changed)
                canvas.boxDrawn.connect(label.add_box)

    def _store_changed(self, *_args) -> None:
        if self.built and self.isVisible():
            self.ai.refresh()

    def _review_cams_wanted(self, refs) -> None:
        ai = self.ai
        if ai.model_info is None or not ai.model_info.cam:
            return
        self.executor.request_background_cams([(("review", r.key), r, None, ai.block) for r in refs])

    def review_cam(self, ref_key: str, cam) -> None:
        review = self.extra_panels.get("reviewpanel")
        if review is not None:
            review.set_cam(ref_key, cam)

    def _box_changed(self, old, new) -> None:
        """A box moved or resized on the canvas: a label box is replaced, a predicted box
        becomes a label box (accepted as edited)."""
        label = self.extra_panels.get("labelpanel")
        if label is None:
            return
        if old.label.startswith("predicted:"):
            from dataclasses import replace

            label.add_box(replace(new, score=None))
        else:
            label.replace_box(old, new)

    def box_key(self, accept: bool) -> None:
        """Accept (Return) or reject/delete (Delete) the selected box of the active canvas."""
        label = self.extra_panels.get("labelpanel")
        item = self.viewer.active_canvas().selected_box()
        if label is None or item is None:
            return
        if item.predicted:
            (label.accept_box if accept else label.reject_box)(item.box)
        elif not accept:
            label.delete_box(item.box)

    def truth_boxes(self, view) -> tuple:
        """A view's label boxes as they stand now (corrections win), else the scan's."""
        label = self.extra_panels.get("labelpanel")
        store = getattr(label, "store", None)
        if store is not None:
            try:
                state = store.state(view.ref.key, "image")
                if state.label is not None and (state.corrected or state.boxes_known):
                    return tuple(state.label.boxes)
            except Exception:  # noqa: BLE001 - the panel reports store problems itself
                pass
        return view.label.boxes if view.label is not None else ()

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
        if getattr(correction, "kind", "") == "boxes":
            self.ai.refresh()
        value = getattr(correction, "new_value", None)
        text = value if isinstance(value, str) else ("boxes" if value is not None else "removed")
        self.browser.model.set_corrected(correction.key, f"✎ {text}")
        review = self.extra_panels.get("reviewpanel")
        if review is not None and getattr(correction, "level", "") == "study" and isinstance(value, str):
            from radview.types import Label

            try:
                review.update_label(correction.key, Label(value, source="correction"), True,
                                    getattr(correction, "reader", ""))
            except Exception:  # noqa: BLE001 - the review panel reports its own problems
                pass

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
            label = self.extra_panels.get("labelpanel")
            if getattr(label, "store", None) is not None:
                from radview.review.collect import store_overrides

                overrides, corrected = store_overrides(label.store, studies)
            truths = truths_from_studies(studies, overrides, corrected)
            threshold, source = info.threshold if len(info.classes) == 2 else None, "model"
            if threshold is not None:
                from radview.review.thresholds import effective_threshold

                threshold, source = effective_threshold(info.name, threshold)
            review.set_predictions(list(study_preds), truths, threshold=threshold, threshold_source=source)
        except Exception as exc:  # noqa: BLE001 - the viewer carries on without the review
            self.status_label.setText(f"review unavailable: {exc}")
