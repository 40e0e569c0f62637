"""Background threads: one model executor (torch lives only there), plus io helpers.

- `ModelExecutor`: the ONE thread that loads models and runs inference and Grad-CAM (core
  generators from radview.models, through `radview.gui.inference.Backend`). The visible study
  goes first, then the rest of the folder. Every request carries the generation it was made in;
  `cancel()` or a new folder/model bumps the generation, the running generator stops at its next
  yield, and results of an older generation are never emitted (the GUI drops stale ones too).
- `TaskQueue`: a small LIFO worker for io (frames, thumbnails): the newest request runs first
  and old ones beyond `max_pending` are dropped, so scrolling through 10,000 studies stays cheap.
- `run_in_thread`: one function on a throw-away QThread (the folder scan).

Signals cross to the GUI thread as queued connections (the QThread objects live in the GUI
thread, `run()` emits from the worker thread).
"""
from __future__ import annotations

import collections
import importlib
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal


@dataclass
class _Request:
    kind: str  # "load" | "cam" | "model_view" | "call"
    generation: int
    args: tuple = ()
    key: Any = None


@dataclass
class _Work:
    """Pending folder inference: study key -> refs, in order; the priority study jumps ahead."""

    studies: "collections.OrderedDict[str, tuple]" = field(default_factory=collections.OrderedDict)
    priority: list[str] = field(default_factory=list)
    total: int = 0
    done: int = 0


class ModelExecutor(QThread):
    """The one model-executor thread.

    Signals (all carry the generation first): modelLoaded(gen, info), prediction(gen, Prediction),
    studyPrediction(gen, StudyPrediction), camReady(gen, key, CamMap), modelView(gen, key, obj),
    progress(gen, done, total, message), failed(gen, message), idle(gen), ready(list of model info)
    once radview.models is importable on this thread (so the GUI may use its pure helpers)."""

    ready = Signal(object)
    modelLoaded = Signal(int, object)
    prediction = Signal(int, object)
    studyPrediction = Signal(int, object)
    camReady = Signal(int, object, object)
    modelView = Signal(int, object, object)
    called = Signal(int, object, object)
    progress = Signal(int, int, int, str)
    failed = Signal(int, str)
    idle = Signal(int)

    def __init__(self, backend_factory: Callable[[], Any] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._factory = backend_factory
        self._lock = threading.Condition()
        self._requests: collections.deque[_Request] = collections.deque()
        self._work = _Work()
        self._work_gen = 0
        self.generation = 0
        self._stop = False
        self.backend = None  # lives on this thread
        self.busy = False

    # ------------------------------------------------------------------ GUI-side API
    def next_generation(self) -> int:
        """Drop everything queued or running: a new folder, a new model, or cancel."""
        with self._lock:
            self.generation += 1
            self._requests.clear()
            self._work = _Work()
            self._lock.notify_all()
            return self.generation

    def cancel(self) -> int:
        return self.next_generation()

    def load_model(self, name: str, device: str = "auto") -> int:
        gen = self.next_generation()
        self._push(_Request("load", gen, (name, device)))
        return gen

    def predict_studies(self, studies: list[tuple[str, tuple]], priority: str | None = None) -> None:
        """Queue (study key, refs) pairs for inference in the current generation."""
        with self._lock:
            work = self._work
            for key, refs in studies:
                if key not in work.studies and refs:
                    work.studies[key] = tuple(refs)
                    work.total += len(refs)
            self._work_gen = self.generation
            if priority:
                work.priority = [priority]
            self._lock.notify_all()

    def prioritise(self, study_key: str) -> None:
        """The user is looking at this study: infer it next."""
        with self._lock:
            self._work.priority = [study_key]
            self._lock.notify_all()

    def request_cams(self, items) -> None:
        """Grad-CAM of the visible images: items = [(key, ref, target, layer)]. Replaces every
        queued CAM request (only what is on screen matters); they run before folder inference."""
        with self._lock:
            others = [r for r in self._requests if r.kind != "cam"]
            cams = [_Request("cam", self.generation, (ref, target, layer), key)
                    for key, ref, target, layer in items]
            self._requests = collections.deque(cams + others)
            self._lock.notify_all()

    def request_background_cams(self, items) -> None:
        """Grad-CAMs for a panel (e.g. the review grid): queued after the visible ones, kept
        when the viewer asks for new ones; a new request from the panel replaces them."""
        with self._lock:
            others = [r for r in self._requests if r.kind != "bgcam"]
            self._requests = collections.deque(others + [
                _Request("bgcam", self.generation, (ref, target, layer), key) for key, ref, target, layer in items])
            self._lock.notify_all()

    def request_model_view(self, key: Any, ref, target: str | None, layer: str | None) -> None:
        self._push(_Request("model_view", self.generation, (ref, target, layer), key))

    def call(self, key: Any, fn: Callable[[Any], Any]) -> None:
        """Run fn(backend) on this thread; the result comes back by `called(gen, key, result)`."""
        self._push(_Request("call", self.generation, (fn,), key))

    def stop(self, wait_ms: int = 10000) -> None:
        with self._lock:
            self._stop = True
            self.generation += 1
            self._lock.notify_all()
        self.wait(wait_ms)

    def _push(self, req: _Request) -> None:
        with self._lock:
            self._requests.append(req)
            self._lock.notify_all()

    # ------------------------------------------------------------------ thread
    def is_current(self, gen: int) -> bool:
        return gen == self.generation and not self._stop

    def run(self) -> None:  # noqa: C901
        try:
            if self._factory is None:
                from radview.gui.inference import Backend

                self.backend = Backend()
            else:
                self.backend = self._factory()
            self.ready.emit(self.backend.list_models())
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(self.generation, f"models unavailable: {exc}")
            self.backend = None
        idle_sent = -1
        while True:
            with self._lock:
                while not self._stop and not self._requests and not self._has_work():
                    if idle_sent != self.generation:
                        idle_sent = self.generation
                        self.busy = False
                        self.idle.emit(self.generation)
                    self._lock.wait(0.5)
                if self._stop:
                    break
                self.busy = True
                req = self._requests.popleft() if self._requests else None
                study = None if req is not None else self._pop_study()
                gen = self.generation
            if self.backend is None:
                continue
            try:
                if req is not None:
                    self._run_request(req)
                elif study is not None:
                    self._run_study(gen, *study)
            except Exception as exc:  # noqa: BLE001
                if self.is_current(gen):
                    self.failed.emit(gen, f"{exc}")
                traceback.print_exc()
            idle_sent = -1 if self._requests or self._has_work() else idle_sent
        close = getattr(self.backend, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                pass

    def _has_work(self) -> bool:
        return bool(self._work.studies) and self._work_gen == self.generation

    def _pop_study(self):
        work = self._work
        if not work.studies or self._work_gen != self.generation:
            return None
        key = next((k for k in work.priority if k in work.studies), None)
        if key is None:
            key = next(iter(work.studies))
        refs = work.studies.pop(key)
        return key, refs, work

    def _run_request(self, req: _Request) -> None:
        if req.generation != self.generation:
            return
        b = self.backend
        if req.kind == "load":
            name, device = req.args
            info = b.load(name, device)
            if self.is_current(req.generation):
                self.modelLoaded.emit(req.generation, info)
        elif req.kind in ("cam", "bgcam"):
            cam = b.cam(*req.args)
            if self.is_current(req.generation):
                self.camReady.emit(req.generation, req.key, cam)
        elif req.kind == "model_view":
            out = b.model_view(*req.args)
            if self.is_current(req.generation):
                self.modelView.emit(req.generation, req.key, out)
        elif req.kind == "call":
            out = req.args[0](b)
            if self.is_current(req.generation):
                self.called.emit(req.generation, req.key, out)

    def _run_study(self, gen: int, key: str, refs: tuple, work: _Work) -> None:
        preds = []
        for pred in self.backend.iter_predict(refs, cancelled=lambda: not self.is_current(gen)):
            if not self.is_current(gen):
                return
            preds.append(pred)
            work.done += 1
            self.prediction.emit(gen, pred)
            self.progress.emit(gen, work.done, work.total, "inference")
        if len(preds) == len(refs) and self.is_current(gen):
            self.studyPrediction.emit(gen, self.backend.aggregate(key, preds))


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

    def stop(self, wait_ms: int = 5000) -> None:
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


class GeneratorThread(QThread):
    """Run a core generator of Progress on a thread: progress(done, total, message) per yield,
    result(payload of the last Progress that had one) or failed(message) at the end.
    cancel() stops it at the next yield."""

    progress = Signal(int, int, str)
    result = Signal(object)
    failed = Signal(str)

    def __init__(self, make_generator: Callable[[], Any], parent: QObject | None = None):
        super().__init__(parent)
        self._make = make_generator
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        payload = None
        try:
            for p in self._make():
                if self._cancel.is_set():
                    return
                self.progress.emit(int(p.done), -1 if p.total is None else int(p.total), p.message)
                if p.payload is not None:
                    payload = p.payload
        except Exception as exc:  # noqa: BLE001
            if not self._cancel.is_set():
                self.failed.emit(str(exc) or type(exc).__name__)
            return
        if not self._cancel.is_set():
            self.result.emit(payload)


class FunctionThread(QThread):
    """Run fn() once on a thread; finishedWith(result, error-or-None)."""

    finishedWith = Signal(object, object)

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None):
        super().__init__(parent)
        self._fn = fn

    def run(self) -> None:
        try:
            self.finishedWith.emit(self._fn(), None)
        except Exception as exc:  # noqa: BLE001
            self.finishedWith.emit(None, str(exc) or type(exc).__name__)


def run_in_thread(fn: Callable[[], Any], on_done: Callable[[Any, Any], None], parent: QObject) -> FunctionThread:
    t = FunctionThread(fn, parent)
    t.finishedWith.connect(on_done)
    t.finished.connect(t.deleteLater)
    t.start()
    return t


def warm_up_imports() -> None:
    """Import the io core (pydicom, Pillow) and the overlay helpers off the GUI thread, so the
    first folder, image and heatmap do not stall the event loop with imports."""
    for name in ("radview.io.studies", "radview.io.display", "radview.io.raster", "radview.io.dicom",
                 "radview.io.labels", "radview.models.overlay"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the real use reports it
            pass
