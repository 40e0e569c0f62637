"""Background work for the GUI.

- `ModelExecutor`: the thin Qt adapter of the Qt-free core `radview.models.executor.Executor`
  (one model thread, typed requests, generation counter, batching across studies, CAMs with the
  prediction). Core events become Qt signals (queued to the GUI thread); a failure arrives as the
  exception object (`failedWith(gen, exc, where)`) for the window's notification sink.
- `TaskQueue`: a small LIFO worker for io (frames, thumbnails): the newest request runs first
  and old ones beyond `max_pending` are dropped, so scrolling through 10,000 studies stays cheap.
- Scans, reviews and small jobs use superqt's `create_worker` (GeneratorWorker / FunctionWorker)
  directly; see main_window.open_path and the review panel.
"""
from __future__ import annotations

import collections
import importlib
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal


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
                self.camReady.emit(ev.gen, ev.key, ev.cam)
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


class TaskQueue(QThread):
    """A LIFO io worker: submit(key, fn, *args) -> done(key, result, error-text-or-None)."""

    done = Signal(object, object, object)

    def __init__(self, max_pending: int = 64, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Condition()
        self._pending: collections.OrderedDict[Any, tuple] = collections.OrderedDict()
        self._max = max_pending
        self._stop = False

    def submit(self, key: Any, fn: Callable, *args) -> None:
        with self._lock:
            self._pending.pop(key, None)
            self._pending[key] = (fn, args)
            while len(self._pending) > self._max:
                self._pending.popitem(last=False)  # the oldest request is dropped
            self._lock.notify_all()
        if not self.isRunning():
            self.start(QThread.Priority.LowPriority)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> int:
        return len(self._pending)

    def stop(self, wait_ms: int = 250) -> None:
        """Stop taking work; a decode in progress may finish on its own (quit never waits for it)."""
        with self._lock:
            self._stop = True
            self._pending.clear()
            self._lock.notify_all()
        self.wait(wait_ms)

    def run(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not self._pending:
                    self._lock.wait(0.5)
                if self._stop:
                    return
                key, (fn, args) = self._pending.popitem(last=True)  # newest first
            try:
                result, error = fn(*args), None
            except Exception as exc:  # noqa: BLE001
                result, error = None, str(exc) or type(exc).__name__
            self.done.emit(key, result, error)


def warm_up_imports() -> None:
    """Import the io core (pydicom, Pillow) and the overlay helpers off the GUI thread, so the
    first folder, image and heatmap do not stall the event loop with imports."""
    for name in ("radview.io.studies", "radview.io.display", "radview.io.raster", "radview.io.dicom",
                 "radview.io.labels", "radview.models.overlay"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the real use reports it
            pass
