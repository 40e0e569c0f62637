"""Glue between the model executor and the screen: which model, what to infer next, where each
result goes (browser columns, boxes, heatmaps, banner, study call), and stale-result dropping.

Runs on the GUI thread; everything torch happens on the executor (`workers.ModelExecutor`).
"""
from __future__ import annotations

import collections

import numpy as np
from PySide6.QtCore import QObject, Signal

from radview.gui import settings as cfg
from radview.types import CamMap, Prediction, Study, StudyPrediction


def heat_rgb(data: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """CAM map (float 0..1) -> RGB uint8 through the colormap LUT. The canvas shows it as a layer
    whose opacity is the slider's alpha, which gives exactly radview.models.overlay.blend_cam
    (image * (1 - alpha) + colour * alpha), i.e. what `radview render --overlay cam` writes."""
    d = np.clip(np.nan_to_num(np.asarray(data, np.float32)), 0.0, 1.0)
    return lut[(d * 255.0 + 0.5).astype(np.uint8)]


class AIController(QObject):
    """studyReady(study_key) once a study's prediction arrived; camsReady() when every
    visible view has its heatmap (or none is wanted); status(text)."""

    studyReady = Signal(str)
    camsReady = Signal()
    status = Signal(str)
    modelsListed = Signal(object)

    def __init__(self, window, executor):
        super().__init__(window)
        self.w = window
        self.ex = executor
        self.models: list = []
        self.model_info = None  # the loaded model's info (classes, blocks, version) or None
        self.model_name = ""
        self.gen = -1  # generation whose results we accept
        self.preds: dict[str, Prediction] = {}
        self.study_preds: dict[str, StudyPrediction] = {}
        self.cams: collections.OrderedDict[tuple, CamMap] = collections.OrderedDict()
        self.wanted_cams: set[tuple] = set()
        self.show_cam = bool(cfg.get("overlay/cam", True, type_=bool))
        self.opacity = float(cfg.get("overlay/opacity", 0.45, type_=float))
        self.colormap = str(cfg.get("overlay/colormap", "jet"))
        self.block: str | None = None
        self.show_boxes = True
        self.threshold = 0.5
        self.model_saw = False
        self._luts: dict[str, np.ndarray] = {}
        self.models_ready = False
        self.load_failed = False
        self._handed_over = False
        ex = executor
        ex.ready.connect(self._ready)
        ex.modelLoaded.connect(self._model_loaded)
        ex.prediction.connect(self._prediction)
        ex.studyPrediction.connect(self._study_prediction)
        ex.camReady.connect(self._cam_ready)
        ex.modelView.connect(self._model_view)
        ex.called.connect(self._called)
        ex.progress.connect(self._progress)
        ex.failed.connect(self._failed)
        ex.idle.connect(self._idle)

    # ------------------------------------------------------------------ models
    def _ready(self, infos) -> None:
        self.models = list(infos or [])
        self.models_ready = True
        self.modelsListed.emit(self.models)

    def default_model(self) -> str:
        """The saved choice, else the first bundled model whose weights are installed."""
        saved = str(cfg.get("model", "") or "")
        names = {m.name: m for m in self.models}
        if saved in names and names[saved].available:
            return saved
        for m in self.models:
            if m.available and getattr(m, "bundled", True):
                return m.name
        return ""

    def choose_model(self, name: str) -> None:
        self.model_name = name
        self.model_info = None
        self.load_failed = False
        self.preds.clear()
        self.study_preds.clear()
        self.cams.clear()
        self.w.browser.model.clear_predictions()
        self.w.refresh_overlays()
        if not name:
            self.gen = self.ex.next_generation()
            self.status.emit("no model")
            self.studyReady.emit("")
            return
        cfg.put("model", name)
        info = next((m for m in self.models if m.name == name), None)
        if info is not None and not info.available:
            self.gen = self.ex.next_generation()
            self.status.emit(f"{name}: weights not installed")
            self.studyReady.emit("")
            return
        self.status.emit(f"loading {name}…")
        self.gen = self.ex.load_model(name, str(cfg.get("device", "auto")))

    def _model_loaded(self, gen: int, info) -> None:
        if gen != self.gen:
            return
        self.model_info = info
        self._handed_over = False
        self.w.ai_panel.set_blocks(info.blocks, info.default_block)
        self.block = info.default_block
        self.w.ai_panel.show_model_state(self.model_name, info.summary)
        self.status.emit(f"{info.name} {info.version} ready on {info.device}")
        self.queue_folder()

    def import_weights(self, name: str, path: str) -> None:
        self.ex.call(("import", name), lambda b: b.import_weights(name, path))

    def _called(self, gen, key, result) -> None:
        if isinstance(key, tuple) and key and key[0] == "import":
            self.models = list(result)
            self.modelsListed.emit(self.models)
            self.choose_model(key[1])

    # ------------------------------------------------------------------ inference order
    def queue_folder(self) -> None:
        """The visible study first, then the rest of the folder (in browser order)."""
        if self.model_info is None:
            return
        studies = self.w.browser.model.studies
        current = self.w.viewer.study
        items = [(s.key, tuple(v.ref for v in s.views)) for s in studies
                 if s.key not in self.study_preds]
        self.ex.predict_studies(items, priority=current.key if current else None)

    def folder_opened(self) -> None:
        """A new folder: drop everything in flight and start again."""
        self._handed_over = False
        self.preds.clear()
        self.study_preds.clear()
        self.cams.clear()
        if self.model_info is not None:
            self.gen = self.ex.next_generation()
            self.queue_folder()

    def cancel(self) -> None:
        self.gen = self.ex.cancel()
        self.status.emit("cancelled")
        self.w.show_progress(None)

    def study_shown(self, study: Study | None) -> None:
        if study is None:
            return
        if self.model_info is not None and study.key not in self.study_preds:
            self.ex.prioritise(study.key)
        self.w.ai_panel.show_study(self.study_preds.get(study.key), self.w.study_label(study))
        self.w.prediction_shown(self.study_preds.get(study.key))
        self.refresh()

    # ------------------------------------------------------------------ results
    def _prediction(self, gen: int, pred: Prediction) -> None:
        if gen != self.gen:
            return  # stale: another folder or model since
        self.preds[pred.ref.key] = pred
        self.w.browser.model.set_prediction(pred)
        if pred.error:
            self.w.errors.add_error(pred.ref.path, pred.error)
        if any(v.ref.key == pred.ref.key for v in self._visible_views()):
            self.refresh()

    def _study_prediction(self, gen: int, sp: StudyPrediction) -> None:
        if gen != self.gen:
            return
        self.study_preds[sp.study_key] = sp
        self.w.browser.model.set_study_prediction(sp)
        current = self.w.viewer.study
        if current is not None and current.key == sp.study_key:
            self.w.ai_panel.show_study(sp, self.w.study_label(current))
            self.w.prediction_shown(sp)
            self.refresh()
            self.studyReady.emit(sp.study_key)

    def _progress(self, gen: int, done: int, total: int, message: str) -> None:
        if gen == self.gen:
            self.w.show_progress(done, total, f"{self.model_name}: {done}/{total}")

    def _failed(self, gen: int, message: str) -> None:
        if gen == self.gen or not self.models_ready:
            self.status.emit(message)
            self.w.ai_panel.show_model_state(self.model_name, message)
            if not self.models_ready:
                self.models_ready = True
                self.modelsListed.emit([])
            if self.model_info is None:
                self.load_failed = True
                self.studyReady.emit("")

    def _idle(self, gen: int) -> None:
        if gen == self.gen:
            self.w.show_progress(None)
            n = len(self.w.browser.model.studies)
            if self.model_info is not None and n and len(self.study_preds) >= n and not self._handed_over:
                self._handed_over = True
                self.w.folder_inferred(list(self.study_preds.values()))

    # ------------------------------------------------------------------ overlays
    def _visible_views(self):
        v = self.w.viewer
        if v.study is None:
            return []
        return [v.study.views[i] for i in v.views_shown()]

    def lut(self, name: str) -> np.ndarray:
        lut = self._luts.get(name)
        if lut is None:
            from radview.models.overlay import colormap_lut  # numpy + Pillow only, no torch

            lut = self._luts[name] = np.asarray(colormap_lut(name), np.uint8)
        return lut

    def cam_key(self, ref) -> tuple:
        return (self.model_name, ref.key, self.block or "")

    def refresh(self) -> None:
        """Put every known overlay on the visible canvases; ask for missing heatmaps."""
        viewer = self.w.viewer
        wanted = []
        for vi, canvas in viewer.visible_canvases():
            view = viewer.study.views[vi]
            pred = self.preds.get(view.ref.key)
            truth = self.w.truth_boxes(view)
            canvas.set_boxes(pred.boxes if pred is not None else (), truth)
            canvas.set_score_threshold(self.threshold)
            canvas.set_show_boxes(self.show_boxes)
            canvas.banner = ("OUT OF DOMAIN: " + (pred.domain_reason or "input unlike the training data")
                             if pred is not None and not pred.in_domain else "")
            canvas.annotations["top_right"] = self._view_lines(pred)
            if self.model_saw:
                continue
            cam = self.cams.get(self.cam_key(view.ref))
            if cam is not None and self.show_cam and canvas.frame is not None:
                canvas.set_heatmap(heat_rgb(cam.data, self.lut(self.colormap)), self.opacity)
            else:
                canvas.set_heatmap(None)
                if (self.show_cam and pred is not None and not pred.error and self.model_info is not None
                        and self.model_info.cam):
                    wanted.append((self.cam_key(view.ref), view.ref, None, self.block))
            canvas.viewport().update()
        if wanted:
            self.wanted_cams = {k for k, *_ in wanted}
            self.ex.request_cams(wanted)
        elif self.cams_complete():
            self.camsReady.emit()

    def _view_lines(self, pred: Prediction | None) -> list[str]:
        if pred is None:
            return ["…" if self.model_info is not None else ""]
        if pred.error:
            return [f"! {pred.error[:60]}"]
        line = f"{pred.predicted} {pred.probability:.2f}"
        if pred.boxes:
            n = sum(1 for b in pred.boxes if (b.score or 0) >= self.threshold)
            line += f" · {n} box(es)"
        return [line, "" if pred.in_domain else "! out of domain"]

    def cams_complete(self) -> bool:
        if not self.show_cam or self.model_info is None or not self.model_info.cam:
            return True
        for view in self._visible_views():
            pred = self.preds.get(view.ref.key)
            if pred is None:
                return False
            if not pred.error and self.cam_key(view.ref) not in self.cams:
                return False
        return True

    def _cam_ready(self, gen: int, key, cam) -> None:
        if gen != self.gen or cam is None:
            return
        if key[0] == "review":
            self.w.review_cam(key[1], cam)
            return
        self.cams[key] = cam
        while len(self.cams) > 48:
            self.cams.popitem(last=False)
        self.refresh()

    # ------------------------------------------------------------------ what the model saw
    def set_model_saw(self, on: bool) -> None:
        self.model_saw = on
        viewer = self.w.viewer
        if not on:
            for vi, canvas in viewer.visible_canvases():
                frame = self.w.frames.get(viewer.study.views[vi].ref, load=False)
                if frame is not None:
                    canvas.set_frame(frame)
            self.refresh()
            return
        if self.model_info is None:
            return
        for vi, canvas in viewer.visible_canvases():
            ref = viewer.study.views[vi].ref
            canvas.set_heatmap(None)
            canvas.set_boxes(())
            canvas.set_message("Preprocessing…")
            self.ex.request_model_view(("saw", ref.key), ref, None, self.block)

    def _model_view(self, gen: int, key, out) -> None:
        if gen != self.gen or not self.model_saw:
            return
        viewer = self.w.viewer
        for vi, canvas in viewer.visible_canvases():
            if ("saw", viewer.study.views[vi].ref.key) == key:
                image, cam = out
                canvas.set_message("")
                canvas.show_array(image)
                if cam is not None and self.show_cam:
                    canvas.set_heatmap(heat_rgb(cam, self.lut(self.colormap)), self.opacity)
                canvas.annotations["top_left"] = ["What the model saw",
                                                  f"input {image.shape[1]}×{image.shape[0]}"]

    # ------------------------------------------------------------------ layer settings
    def set_show_cam(self, on: bool) -> None:
        self.show_cam = on
        cfg.put("overlay/cam", on)
        self.refresh()

    def set_opacity(self, value: float) -> None:
        self.opacity = value
        cfg.put("overlay/opacity", value)
        for _vi, canvas in self.w.viewer.visible_canvases():
            canvas.set_heat_opacity(value)

    def set_colormap(self, name: str) -> None:
        self.colormap = name
        cfg.put("overlay/colormap", name)
        self.refresh()

    def set_block(self, name: str) -> None:
        if name and name != self.block:
            self.block = name
            self.refresh()

    def set_show_boxes(self, on: bool) -> None:
        self.show_boxes = on
        for _vi, canvas in self.w.viewer.visible_canvases():
            canvas.set_show_boxes(on)

    def set_threshold(self, value: float) -> None:
        self.threshold = value
        self.refresh()
