"""Glue between the model executor and the screen: which model, what to infer next, where each
result goes (browser columns, boxes, heatmaps, banner, study call), and stale-result dropping.

Runs on the GUI thread; everything torch happens on the executor (`workers.ModelExecutor`).

Several models at once (issues 12/13): the *heatmap* model (the AI panel's "Heatmap & call
from": Grad-CAM, study call, browser Prediction column; the user picked it, but it too runs
only on studies of its domain), the *boxes* model ("Boxes from": by default the first installed
detection model, e.g. the bundled rsna-pneumonia) and the `body-part` gate. The executor runs
body-part on every study (Body part column, `routing.study_verdict`: DICOM header first), then
the heatmap model and the boxes model only on the studies `routing.route` sends each to; a
skipped study says why, and "Run on this study" asks for it anyway.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from radview.gui import settings as cfg
from radview.gui.ai_routing import GATE_MODEL, RoutingMixin, body_part_text, view_metas  # noqa: F401
from radview.types import CamMap, Prediction, Study, StudyPrediction


def heat_rgb(data: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """CAM map (uint8 0..255 as the state keeps it, or float 0..1) -> RGB uint8 through the
    colormap LUT. The canvas shows it as a layer
    whose opacity is the slider's alpha, which gives exactly radview.models.overlay.blend_cam
    (image * (1 - alpha) + colour * alpha), i.e. what `radview render --overlay cam` writes."""
    data = np.asarray(data)
    if data.dtype == np.uint8:
        return lut[data]
    d = np.clip(np.nan_to_num(data.astype(np.float32, copy=False)), 0.0, 1.0)
    return lut[(d * 255.0 + 0.5).astype(np.uint8)]


class ReviewCam(tuple):
    """The key of a CAM asked for by the review panel (typed: a model may be called anything)."""

    __slots__ = ()

    def __new__(cls, ref_key: str):
        return super().__new__(cls, (ref_key,))

    @property
    def ref_key(self) -> str:
        return self[0]


class AIController(RoutingMixin, QObject):
    """studyReady(study_key) once a study's prediction arrived; camsReady() when every
    visible view has its heatmap (or none is wanted); status(text).

    Predictions, CAMs and the overlay settings live in the window's ViewState (`self.state`);
    this object turns executor results into state changes and state events into canvas draws
    (only what changed: the score slider touches box visibility, never the heatmaps)."""

    studyReady = Signal(str)
    camsReady = Signal()
    status = Signal(str)
    modelsListed = Signal(object)

    def __init__(self, window, executor):
        super().__init__(window)
        self.w = window
        self.ex = executor
        self.state = window.state
        self.models: list = []
        self._calibration: dict[tuple[str, str, str], str] = {}
        self.model_info = None  # the loaded model's info (classes, blocks, version) or None
        self.model_name = ""
        self.gen = -1  # generation whose results we accept
        self.wanted_cams: set[tuple] = set()
        self._threshold_gen = 0  # score-slider updates in flight (one canvas per turn)
        self._luts: dict[str, np.ndarray] = {}
        self.models_ready = False
        self.load_failed = False
        self._handed_over = False
        self.box_model = ""     # the model the boxes are drawn from ("" : the heatmap model's own)
        self.gate = ""          # the body-part model when installed and wanted
        self.box_preds: dict[str, Prediction] = {}
        self.box_study: dict[str, StudyPrediction] = {}
        self.skips: dict[tuple[str, str], str] = {}   # (model, study key) -> why it was not run
        self.asked: dict[str, tuple] = {}  # study key -> (refs, metas): "Run on this study" pressed on it
        self.body_parts: dict[str, object] = {}       # study key -> routing.BodyPartVerdict
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
        ex.failedWith.connect(self._failed_with)
        ex.idle.connect(self._idle)
        for sig, slot in (("bodyPart", self._body_part), ("sidePrediction", self._side_prediction),
                          ("sideStudyPrediction", self._side_study), ("skipped", self._skipped)):
            if hasattr(ex, sig):
                getattr(ex, sig).connect(slot)
        self.state.events.overlays.connect(self._overlays_changed)
        panel = getattr(window, "ai_panel", None)
        if panel is not None and hasattr(panel, "boxModelChosen"):
            panel.boxModelChosen.connect(self.set_box_model)
            panel.runAnyway.connect(self.run_anyway)

    # ------------------------------------------------------------------ the state's fields
    @property
    def preds(self) -> dict[str, Prediction]:
        return self.state.predictions

    @property
    def study_preds(self) -> dict[str, StudyPrediction]:
        return self.state.study_predictions

    @property
    def cams(self):
        return self.state.cams

    @property
    def show_cam(self) -> bool:
        return self.state.overlays.show_cam

    @property
    def opacity(self) -> float:
        return self.state.overlays.opacity

    @property
    def colormap(self) -> str:
        return self.state.overlays.colormap

    @property
    def block(self) -> str | None:
        return self.state.overlays.block

    @property
    def show_boxes(self) -> bool:
        return self.state.overlays.show_boxes

    @property
    def threshold(self) -> float:
        return self.state.overlays.threshold

    @property
    def model_saw(self) -> bool:
        return self.state.overlays.model_saw

    # ------------------------------------------------------------------ models
    def _ready(self, infos) -> None:
        self.models = list(infos or [])
        self.models_ready = True
        # the user said "no model" (`--model ""`): the viewer only, no side models either
        viewer_only = getattr(self.w, "_requested_model", None) == ""
        names = {m.name: m for m in self.models if m.available}
        self.gate = GATE_MODEL if GATE_MODEL in names and not viewer_only else ""
        box = "" if viewer_only else self.default_box_model()
        panel = getattr(self.w, "ai_panel", None)
        if panel is not None and hasattr(panel, "set_box_models"):
            panel.set_box_models([m for m in self.models if m.available and m.task == "detection"], box)
        self.box_model = box
        self._box_threshold()
        self._apply_routing()
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
        self.state.set_model(name)
        self.w.browser.model.clear_predictions()
        self.w.refresh_overlays()
        if not name:
            self.gen = self.ex.next_generation()
            self.ex.call(("unload",), lambda b: getattr(b, "unload", lambda: None)())
            self.status.emit("no model")
            self._apply_routing()
            self.queue_folder()  # the boxes model and the body-part column still run
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
        self.state.model = info.name
        self.w.ai_panel.set_blocks(info.blocks, info.default_block)
        with self.state.events.overlays.blocked():
            self.state.set_overlays(block=info.default_block)
        self._auto_cams()
        self.w.ai_panel.show_model_state(self.model_name, info.summary)
        queue = self.w.extra_panels.get("queuepanel")
        if queue is not None:
            queue.set_space(info.space or None)  # each model's queue holds only its label space
        self.status.emit(f"{info.name} {info.version} ready on {info.device}")
        self._apply_routing()
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
        """The visible study first, then the rest of the folder (in browser order): each study
        the heatmap model, the boxes model or the body-part column still lacks."""
        side = self.side_models()
        if self.model_info is None and (self.model_name or not side):
            return  # loading (the load queues it), or nothing to run
        studies = self.w.browser.model.studies
        current = self.w.viewer.study

        def todo(s) -> bool:
            if self.model_info is not None and s.key not in self.study_preds and not self.primary_skip(s.key):
                return True
            if self.gate and s.key not in self.body_parts:
                return True
            return any(s.key not in self.box_study and (m, s.key) not in self.skips for m in side)

        items = [(s.key, tuple(v.ref for v in s.views), view_metas(s)) for s in studies if todo(s)]
        self.ex.predict_studies(items, priority=current.key if current else None)

    def folder_opened(self) -> None:
        """A new folder: drop everything in flight and start again."""
        self._handed_over = False
        self.preds.clear()
        self.study_preds.clear()
        self.cams.clear()
        self.wanted_cams.clear()
        self.box_preds.clear()
        self.box_study.clear()
        self.skips.clear()
        self.asked.clear()
        self.body_parts.clear()
        if self.model_info is not None or (self.side_models() and not self.model_name):
            # (a heatmap model still loading queues the folder when it arrives: no new
            # generation then, or its ModelLoaded, maybe already on its way, would be dropped)
            self.gen = self.ex.cancel()
            self.queue_folder()

    def cancel(self) -> None:
        self.wanted_cams.clear()
        self.gen = self.ex.cancel()
        self.status.emit("cancelled")
        self.w.show_progress(None)

    def study_shown(self, study: Study | None) -> None:
        if study is None:
            return
        if (self.model_info is not None and study.key not in self.study_preds) or (
                self.side_models() and study.key not in self.box_study):
            self.ex.prioritise(study.key)
        sp = self.study_preds.get(study.key)
        self.w.ai_panel.show_study(sp, self.w.study_label(study), self.calibration_text(sp))
        self.w.prediction_shown(self._panel_prediction(study))
        self._show_routes(study)
        self.refresh()

    def calibration_text(self, sp: StudyPrediction | None) -> str:
        """Whether sp's probabilities are calibrated for this folder's site (issue 17): read
        once per model, version and folder (the site's calibration is a small JSON file)."""
        if sp is None:
            return ""
        from radview.review.calibration import calibration_status, site_for_path

        key = (sp.model, sp.model_version, self.w.root or "")
        if key not in self._calibration:
            site = site_for_path(self.w.root) if self.w.root else ""
            self._calibration[key] = calibration_status(sp.model, site, sp.model_version).text
        return self._calibration[key]

    # ------------------------------------------------------------------ results
    def _prediction(self, gen: int, pred: Prediction) -> None:
        if gen != self.gen:
            return  # stale: another folder or model since
        self.state.put_prediction(pred)
        self.w.browser.model.set_prediction(pred)
        if pred.error:
            self.w.errors.add_error(pred.ref.path, pred.error)
        if any(v.ref.key == pred.ref.key for v in self._visible_views()):
            self.refresh()

    def _study_prediction(self, gen: int, sp: StudyPrediction) -> None:
        if gen != self.gen:
            return
        self.state.put_study_prediction(sp)
        self.w.browser.model.set_study_prediction(sp)
        current = self.w.viewer.study
        if current is not None and current.key == sp.study_key:
            self.w.ai_panel.show_study(sp, self.w.study_label(current), self.calibration_text(sp))
            self.w.prediction_shown(self._panel_prediction(current))
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

    def _failed_with(self, gen: int, exc, where: str) -> None:
        """The exception object goes to the window's notification sink (errors panel)."""
        if gen == self.gen or not self.models_ready or where.startswith("loading"):
            self.w.notify(exc, where=f"model: {where}" if where else "model")

    def _auto_cams(self) -> None:
        """CAMs of the visible study come with its prediction while the heatmap is on."""
        info = self.model_info
        on = bool(info is not None and info.cam and self.show_cam and not self.model_saw)
        self.ex.set_auto_cams(on, self.block)

    def _idle(self, gen: int) -> None:
        if gen == self.gen:
            self.w.show_progress(None)
            n = len(self.w.browser.model.studies)
            skipped = sum(1 for (m, _k) in self.skips if m == self.model_name)  # routed away (bodypart)
            if self.model_info is not None and n and len(self.study_preds) + skipped >= n and not self._handed_over:
                self._handed_over = True
                self.w.folder_inferred(list(self.study_preds.values()))

    # ------------------------------------------------------------------ overlays
    def _visible_views(self):
        v = self.w.viewer
        if v.study is None:
            return []
        return [v.study.views[i] for i in v.views_shown()]

    def lut(self, name: str) -> np.ndarray:
        """The colormap as a 256x3 uint8 table (CAMs are kept as uint8: lut[cam] is the RGB)."""
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
        ov = self.state.overlays
        blind = getattr(self.w, "blinding", None)  # a blinded read (radview.gui.blinding)
        for vi, canvas in viewer.visible_canvases():
            view = viewer.study.views[vi]
            truth = self.w.truth_boxes(view) if blind is None or blind.others else ()
            if blind is not None and not blind.model:  # no answer, boxes nor CAM of the model
                canvas.set_boxes((), truth)
                canvas.banner = ""
                canvas.annotations["top_right"] = []
                canvas.heat_key = None
                canvas.set_heatmap(None)
                canvas.viewport().update()
                continue
            pred = self.preds.get(view.ref.key)
            bpred = self.boxes_of(view.ref.key)
            canvas.set_boxes(bpred.boxes if bpred is not None else (), truth)
            canvas.score_threshold = ov.threshold
            canvas.set_show_boxes(ov.show_boxes)
            canvas.banner = self._banner(pred, bpred)
            canvas.annotations["top_right"] = self._view_lines(pred, view.ref.key)
            if ov.model_saw:
                continue
            if not self._show_heat(canvas, view.ref) and (
                    ov.show_cam and pred is not None and not pred.error and self.model_info is not None
                    and self.model_info.cam):
                wanted.append((self.cam_key(view.ref), view.ref, None, ov.block))
            canvas.viewport().update()
        if wanted:
            keys = {k for k, *_ in wanted}
            if keys != self.wanted_cams:  # the same request again would only requeue it
                self.wanted_cams = keys
                self.ex.request_cams(wanted)
        elif self.cams_complete():
            self.camsReady.emit()

    def _show_heat(self, canvas, ref) -> bool:
        """Draw the view's heatmap if known (True), else clear it. The RGB is rebuilt only when
        the CAM or the colormap changed (it is cached on the canvas), never per slider tick."""
        ov = self.state.overlays
        cam = self.cams.get(self.cam_key(ref)) if ov.show_cam else None
        if cam is None or canvas.frame is None:
            if canvas.heat_key is not None:
                canvas.heat_key = None
                canvas.set_heatmap(None)
            return cam is not None
        key = (id(cam), ov.colormap)
        if canvas.heat_key != key:
            canvas.heat_key = key
            canvas.set_heatmap(heat_rgb(cam.data, self.lut(ov.colormap)), ov.opacity)
        return True

    def _overlays_changed(self, ov, changed) -> None:
        canvases = self.w.viewer.visible_canvases()
        if "opacity" in changed:
            for _vi, canvas in canvases:
                canvas.set_heat_opacity(ov.opacity)
        if "show_boxes" in changed:
            for _vi, canvas in canvases:
                canvas.set_show_boxes(ov.show_boxes)
        if "threshold" in changed:  # box visibility and the corner text only
            self._threshold_gen += 1
            active = self.w.viewer.active_canvas()
            todo = sorted(canvases, key=lambda vc: vc[1] is not active)  # the active view first
            self._threshold_step(self._threshold_gen, todo)
            self._show_routes(self.w.viewer.study)
        if {"show_cam", "block", "model_saw"} & set(changed):
            self._auto_cams()
        if {"show_cam", "colormap", "block"} & set(changed):
            self.refresh()

    def _threshold_step(self, gen: int, todo: list) -> None:
        """One canvas per event-loop turn: each repaints in a turn of its own (4 large canvases
        repainted in one turn stalled the loop ~4x as long), a newer threshold supersedes."""
        if gen != self._threshold_gen or not todo:
            return
        (vi, canvas), rest = todo[0], todo[1:]
        study = self.w.viewer.study
        if study is not None and vi < len(study.views) and canvas.isVisible():
            canvas.set_score_threshold(self.threshold)
            key = study.views[vi].ref.key
            canvas.annotations["top_right"] = self._view_lines(self.preds.get(key), key)
        if rest:
            QTimer.singleShot(0, lambda: self._threshold_step(gen, rest))

    def _view_lines(self, pred: Prediction | None, ref_key: str | None = None) -> list[str]:
        lines = (self._primary_skip_lines(self.w.viewer.study) if pred is None else []) or self._primary_lines(pred)
        key = ref_key or (pred.ref.key if pred is not None else None)
        side = self.box_model if self.box_model in self.side_models() else ""
        if side and key is not None:
            bpred = self.box_preds.get(key)
            study = self.w.viewer.study
            skip = self.skips.get((side, study.key), "") if study is not None else ""
            if bpred is not None and not bpred.error:
                n = sum(1 for b in bpred.boxes if (b.score or 0) >= self.threshold)
                best = max((b.score or 0 for b in bpred.boxes), default=0.0)
                lines.append(f"{side}: {n} box(es) · best {best:.2f}")
            elif skip:
                verdict = self.body_parts.get(study.key) if study is not None else None
                lines.append(f"{side}: not run ({verdict.part if verdict is not None else 'outside its domain'})")
        return lines

    def _primary_lines(self, pred: Prediction | None) -> list[str]:
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
        if isinstance(key, ReviewCam):
            self.w.review_cam(key.ref_key, cam)
            return
        self.wanted_cams.discard(key)
        self.state.put_cam(key, cam)
        if any(v.ref.key == key[1] for v in self._visible_views()):
            self.refresh()

    # ------------------------------------------------------------------ what the model saw
    def set_model_saw(self, on: bool) -> None:
        with self.state.events.overlays.blocked():
            self.state.set_overlays(model_saw=bool(on))
        viewer = self.w.viewer
        if not on:
            for vi, canvas in viewer.visible_canvases():
                frame = self.w.frames.get(viewer.study.views[vi].ref, load=False)
                if frame is not None:
                    canvas.set_frame(frame)
                    canvas.heat_key = None
            self.refresh()
            return
        if self.model_info is None:
            return
        for vi, canvas in viewer.visible_canvases():
            ref = viewer.study.views[vi].ref
            canvas.heat_key = None
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
        cfg.put("overlay/cam", bool(on))
        self.state.set_overlays(show_cam=bool(on))

    def set_opacity(self, value: float) -> None:
        cfg.put("overlay/opacity", float(value))
        self.state.set_overlays(opacity=float(value))

    def set_colormap(self, name: str) -> None:
        cfg.put("overlay/colormap", name)
        self.state.set_overlays(colormap=name)

    def set_block(self, name: str) -> None:
        if name:
            self.state.set_overlays(block=name)

    def set_show_boxes(self, on: bool) -> None:
        self.state.set_overlays(show_boxes=bool(on))

    def set_threshold(self, value: float) -> None:
        self.state.set_overlays(threshold=float(value))
