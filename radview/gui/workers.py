"""Background work for the GUI.

- `ModelExecutor`: the thin Qt adapter of the Qt-free core `radview.models.executor.Executor`
  (one model thread, typed requests, generation counter, batching across studies, CAMs with the
  prediction). Core events become Qt signals (queued to the GUI thread); a failure arrives as the
  exception object (`failedWith(gen, exc, where)`) for the window's notification sink.
- `TaskQueue`: the thin Qt adapter of the Qt-free LIFO io queue `radview.io.tasks.LifoTasks`
  (frames, thumbnails, review images): the newest request runs first, old ones beyond
  `max_pending` are dropped and cleared ones never delivered, so scrolling through 10,000
  studies stays cheap. The same shape as ModelExecutor: one worker layer.
- Scans, reviews and small jobs use superqt's `create_worker` (GeneratorWorker / FunctionWorker)
  directly; see main_window.open_path and the review panel.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal


class ModelExecutor(QObject):
    """The one model-executor thread (the core Executor's), as Qt signals.

    Signals (all carry the generation first): modelLoaded(gen, info), prediction(gen, Prediction),
    studyPrediction(gen, StudyPrediction), camReady(gen, key, CamMap), modelView(gen, key, obj),
    called(gen, key, result), progress(gen, done, total, message), failed(gen, message),
    failedWith(gen, exception, where), idle(gen), ready(list of model info) once radview.models
    is importable on the executor thread."""

    ready = Signal(object)
    modelLoaded = Signal(int, object)
    prediction = Signal(int, object)
    studyPrediction = Signal(int, object)
    camReady = Signal(int, object, object)
    modelView = Signal(int, object, object)
    called = Signal(int, object, object)
    progress = Signal(int, int, int, str)
    failed = Signal(int, str)
    failedWith = Signal(int, object, str)
    idle = Signal(int)
    bodyPart = Signal(int, str, object)            # gen, study key, routing.BodyPartVerdict
    sidePrediction = Signal(int, str, object)      # gen, model, Prediction
    sideStudyPrediction = Signal(int, str, object)  # gen, model, StudyPrediction
    skipped = Signal(int, str, str, str)           # gen, model, study key, reason

    class Priority:  # what QThread.start(priority) took: kept for callers
        LowPriority = None

    def __init__(self, backend_factory: Callable[[], Any] | None = None, parent: QObject | None = None,
                 batch_images: int = 16):
        super().__init__(parent)
        from radview.models.executor import Executor

        self._factory = backend_factory or _default_backend
        self.core = Executor(self._factory, self._sink, batch_images=batch_images)

    # ------------------------------------------------------------------ the core's API
    @property
    def backend(self):
        return self.core.backend

    @property
    def generation(self) -> int:
        return self.core.generation

    @property
    def busy(self) -> bool:
        return self.core.busy

    def start(self, _priority=None) -> None:
        self.core.start()

    def isRunning(self) -> bool:  # noqa: N802 - the QThread name callers use
        return self.core.is_running()

    def next_generation(self) -> int:
        return self.core.next_generation()

    def cancel(self) -> int:
        return self.core.cancel()

    def load_model(self, name: str, device: str = "auto") -> int:
        return self.core.load_model(name, device)

    def predict_studies(self, studies, priority: str | None = None) -> None:
        self.core.predict_studies(studies, priority)

    def prioritise(self, study_key: str) -> None:
        self.core.prioritise(study_key)

    def set_routing(self, gate: str | None = None, side=()) -> None:
        self.core.set_routing(gate, side)

    def run_anyway(self, study_key: str, refs, model: str, metas=()) -> None:
        self.core.run_anyway(study_key, refs, model, metas)

    def set_auto_cams(self, on: bool, block: str | None = None) -> None:
        self.core.set_auto_cams(on, block)

    def request_cams(self, items) -> None:
        self.core.request_cams(items)

    def request_background_cams(self, items) -> None:
        self.core.request_background_cams(items)

    def request_model_view(self, key: Any, ref, target: str | None, layer: str | None) -> None:
        self.core.request_model_view(key, ref, target, layer)

    def call(self, key: Any, fn: Callable[[Any], Any]) -> None:
        self.core.call(key, fn)

    def is_current(self, gen: int) -> bool:
        return self.core.is_current(gen)

    def stop(self, wait_ms: int = 500) -> bool:
        """Stop the thread (at most wait_ms; it is a daemon) and reap decoder processes."""
        return self.core.stop(timeout=wait_ms / 1000.0)

    def wait(self, wait_ms: int = 500) -> bool:
        t = self.core.thread
        if t is not None:
            t.join(wait_ms / 1000.0)
        return t is None or not t.is_alive()

    # ------------------------------------------------------------------ core events -> signals
    def _sink(self, ev) -> None:  # on the executor thread: emits are queued to the GUI thread
        from radview.models import executor as x

        try:
            if isinstance(ev, x.PredictionReady):
                self.prediction.emit(ev.gen, ev.pred)
            elif isinstance(ev, x.ProgressEvent):
                self.progress.emit(ev.gen, ev.done, ev.total, ev.message)
            elif isinstance(ev, x.StudyPredictionReady):
                self.studyPrediction.emit(ev.gen, ev.study_prediction)
            elif isinstance(ev, x.CamReady):
                # compacted here, on the executor thread: the GUI thread only ever gets the
                # uint8 display-size map (a 2.5k x 2k float32 map took ~180 ms to compact there)
                from radview.state import compact_cam

                self.camReady.emit(ev.gen, ev.key, compact_cam(ev.cam) if ev.cam is not None else None)
            elif isinstance(ev, x.ModelLoaded):
                self.modelLoaded.emit(ev.gen, ev.info)
            elif isinstance(ev, x.ModelViewReady):
                self.modelView.emit(ev.gen, ev.key, ev.out)
            elif isinstance(ev, x.Called):
                self.called.emit(ev.gen, ev.key, ev.result)
            elif isinstance(ev, x.SidePredictionReady):
                self.sidePrediction.emit(ev.gen, ev.model, ev.pred)
            elif isinstance(ev, x.SideStudyReady):
                self.sideStudyPrediction.emit(ev.gen, ev.model, ev.study_prediction)
            elif isinstance(ev, x.BodyPartReady):
                self.bodyPart.emit(ev.gen, ev.study_key, ev.verdict)
            elif isinstance(ev, x.Skipped):
                self.skipped.emit(ev.gen, ev.model, ev.study_key, ev.reason)
            elif isinstance(ev, x.Idle):
                self.idle.emit(ev.gen)
            elif isinstance(ev, x.Ready):
                self.ready.emit(ev.models)
            elif isinstance(ev, x.Failed):
                text = str(ev.error) or type(ev.error).__name__
                self.failed.emit(ev.gen, f"{ev.where}: {text}" if ev.where.startswith("models") else text)
                self.failedWith.emit(ev.gen, ev.error, ev.where)
        except RuntimeError:  # the window (and this object) is gone while the thread ends
            pass


def _default_backend():
    from radview.gui.inference import Backend

    return Backend()


class TaskQueue(QObject):
    """The io worker (frames, thumbnails, review images) as Qt signals: the thin adapter of the
    Qt-free `radview.io.tasks.LifoTasks` (newest request first, the oldest beyond max_pending
    dropped, results of cleared requests never delivered).

    submit(key, fn, *args) -> done(key, result, error text or None) on the GUI thread, and for a
    failure also failedWith(key, exception)."""

    done = Signal(object, object, object)
    failedWith = Signal(object, object)

    def __init__(self, max_pending: int = 64, parent: QObject | None = None):
        super().__init__(parent)
        from radview.io.tasks import LifoTasks

        self.core = LifoTasks(self._sink, max_pending=max_pending)

    def submit(self, key: Any, fn: Callable, *args) -> None:
        self.core.submit(key, fn, *args)

    def clear(self) -> None:
        self.core.clear()

    def pending(self) -> int:
        return self.core.pending()

    @property
    def _pending(self) -> set:  # read by widgets.thumbnails (the keys still queued)
        return self.core.pending_keys()

    def isRunning(self) -> bool:  # noqa: N802 - the QThread name callers used
        return self.core.is_running()

    def stop(self, wait_ms: int = 250) -> None:
        """Stop taking work; a decode in progress may finish on its own (quit never waits for it)."""
        self.core.stop(wait_ms / 1000.0)

    def _sink(self, d) -> None:  # on the io thread: the emits are queued to the GUI thread
        try:
            if d.error is None:
                self.done.emit(d.key, d.result, None)
            else:
                self.done.emit(d.key, None, str(d.error) or type(d.error).__name__)
                self.failedWith.emit(d.key, d.error)
        except RuntimeError:  # the window (and this object) is gone while the thread ends
            pass


def warm_up_imports() -> None:
    """Import the io core (pydicom, Pillow) and the overlay helpers off the GUI thread, so the
    first folder, image and heatmap do not stall the event loop with imports."""
    for name in ("radview.io.studies", "radview.io.display", "radview.io.raster", "radview.io.dicom",
                 "radview.io.labels", "radview.models.overlay"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the real use reports it
            pass
