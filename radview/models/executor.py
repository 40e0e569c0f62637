"""The model executor, without Qt: one thread that loads models and runs inference, Grad-CAM and
small jobs on a backend (radview.gui.inference.Backend in the app, anything with the same
methods in tests), fed by typed requests and reporting typed events to one sink.

    ex = Executor(make_backend, sink=events.append)   # sink(event) is called on the worker thread
    ex.start()
    gen = ex.load_model("region")                     # -> ModelLoaded(gen, info)
    ex.predict_studies([(study_key, refs), ...], priority=visible_key)
    ex.set_auto_cams(block)                           # CAMs of the visible study come with its prediction
    ex.request_cams([CamRequest(key, ref, None, block)])
    ex.cancel()                                       # drops queued work; a model being loaded stays
    ex.stop(timeout=0.5)                              # joins the thread, reaps decoder processes

- A generation counter: every request is tagged with the generation it was made in; a new
  folder, model or cancel bumps it, the running batch stops at its next yield and nothing of an
  older generation is reported (`cancel()` keeps model loads: Esc never leaves no model).
- Priority: CAM and model-view requests first (what is on screen), then the visible study, then
  the rest of the folder in order, batched ACROSS studies (`batch_images` per backend call: one
  prediction-cache read and write per batch, not per study).
- CAMs with the prediction: with `set_auto_cams(block)` the images of the priority study get
  their Grad-CAM right after their prediction, in the same pass (no second round trip).
- Routing (issues 12/13): `set_routing(gate="body-part", side=("rsna-pneumonia",))` runs the
  gate model on every study first (`BodyPartReady(gen, study_key, verdict)`, verdict from
  radview.models.routing.study_verdict: DICOM header, then the gate's answers), then the primary
  model (the one `load_model` loaded: heatmap and study call) and each side model (e.g. the
  detector whose boxes are drawn) on the studies `routing.route` sends it to (primary:
  `PredictionReady` / `StudyPredictionReady`, side: `SidePredictionReady` / `SideStudyReady`),
  or `Skipped(gen, model, study_key, reason)` for a study outside that model's domain (a chest
  model is not run on a hand). `run_anyway(key, refs,
  model)`: the user asked for that model on that study (requested), which queues it again.
  Backends with several models implement `iter_predict(refs, cancelled, model=name)`,
  `aggregate(key, preds, model=name)` and `manifest_of(name)`; without routing the single-model
  calls are used unchanged.
- Errors are events carrying the exception object (`Failed(gen, error, where)`); the sink (the
  GUI's notification sink) shows them; the loop carries on.
"""
from __future__ import annotations

import collections
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from radview.models.executor_events import (  # noqa: F401 - re-exported: the executor's API
    LoadModel,
    CamRequest,
    ModelViewRequest,
    CallRequest,
    Ready,
    ModelLoaded,
    PredictionReady,
    StudyPredictionReady,
    CamReady,
    ModelViewReady,
    Called,
    ProgressEvent,
    Failed,
    BodyPartReady,
    SidePredictionReady,
    SideStudyReady,
    Skipped,
    Idle,
)


@dataclass
class _Work:
    """Pending folder inference: study key -> refs, in order; the priority study jumps ahead."""

    studies: "collections.OrderedDict[str, tuple]" = field(default_factory=collections.OrderedDict)
    priority: list[str] = field(default_factory=list)
    total: int = 0
    done: int = 0


class Executor:
    """See the module docstring. Thread-safe API; `run()` is the loop (start() runs it on a
    daemon thread of its own)."""

    def __init__(self, backend_factory: Callable[[], Any], sink: Callable[[Any], None],
                 batch_images: int = 16) -> None:
        self._factory = backend_factory
        self.sink = sink
        self.batch_images = max(1, int(batch_images))
        self._lock = threading.Condition()
        self._requests: collections.deque[tuple[int, Any]] = collections.deque()
        self._work = _Work()
        self._work_gen = 0
        self.generation = 0
        self._load_seq = 0
        self._auto_cam_block: str | None = None
        self._auto_cams = False
        self._auto_done: set[tuple] = set()
        self._gate: str | None = None
        self._side: tuple[str, ...] = ()
        self._metas: dict[str, tuple] = {}
        self._requested: dict[str, set[str]] = {}
        self._stop = False
        self.backend = None
        self.busy = False
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ API (any thread)
    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, name="radview-model-executor", daemon=True)
            self.thread.start()

    def is_running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def next_generation(self, keep_loads: bool = False) -> int:
        """Drop everything queued or running (a new folder, a new model, or cancel)."""
        with self._lock:
            self.generation += 1
            kept = [(self.generation, r) for _g, r in self._requests if keep_loads and isinstance(r, LoadModel)]
            self._requests = collections.deque(kept)
            self._work = _Work()
            self._lock.notify_all()
            return self.generation

    def cancel(self) -> int:
        """Stop inference and CAMs; a model being loaded (or queued to load) still arrives."""
        return self.next_generation(keep_loads=True)

    def load_model(self, name: str, device: str = "auto") -> int:
        gen = self.next_generation()
        with self._lock:
            self._load_seq += 1
        self._push(LoadModel(name, device))
        return gen

    def set_routing(self, gate: str | None = None, side=()) -> None:
        """The gate model run on every study (None: body part from the DICOM header only) and
        the side models routed by body part (see the module doc). Applies to work queued next."""
        with self._lock:
            self._gate = gate or None
            self._side = tuple(dict.fromkeys(n for n in side if n))

    def run_anyway(self, study_key: str, refs, model: str, metas=()) -> None:
        """The user asked for `model` on this study whatever its body part: queue it again
        (cached answers come back at once) with the model requested."""
        with self._lock:
            self._requested.setdefault(study_key, set()).add(model)
            work = self._work
            if study_key not in work.studies and refs:
                work.studies[study_key] = tuple(refs)
                work.total += len(refs)
            if metas:
                self._metas[study_key] = tuple(metas)
            self._work_gen = self.generation
            work.priority = [study_key]
            self._lock.notify_all()

    def requested(self, study_key: str) -> set[str]:
        with self._lock:
            return set(self._requested.get(study_key, ()))

    def predict_studies(self, studies, priority: str | None = None) -> None:
        """Queue (study key, refs) or (study key, refs, metas) items for inference in the
        current generation; metas: each view's header values (Modality, BodyPartExamined) for
        routing."""
        with self._lock:
            work = self._work
            for item in studies:
                key, refs = item[0], item[1]
                if len(item) > 2 and item[2]:
                    self._metas[key] = tuple(item[2])
                if key not in work.studies and refs:
                    work.studies[key] = tuple(refs)
                    work.total += len(refs)
            self._work_gen = self.generation
            if priority:
                work.priority = [priority]
            self._lock.notify_all()

    def prioritise(self, study_key: str) -> None:
        with self._lock:
            self._work.priority = [study_key]
            self._lock.notify_all()

    def set_auto_cams(self, on: bool, block: str | None = None) -> None:
        """CAMs of the priority (visible) study are computed with its prediction."""
        with self._lock:
            self._auto_cams, self._auto_cam_block = bool(on), block

    def request_cams(self, items) -> None:
        """CAMs of what is on screen: replaces the queued visible CAM requests (background ones
        stay); they run before folder inference."""
        cams = [self._cam(it, False) for it in items]
        with self._lock:
            others = [(g, r) for g, r in self._requests
                      if not (isinstance(r, CamRequest) and not r.background)]
            self._requests = collections.deque([(self.generation, c) for c in cams] + others)
            self._lock.notify_all()

    def request_background_cams(self, items) -> None:
        cams = [self._cam(it, True) for it in items]
        with self._lock:
            others = [(g, r) for g, r in self._requests if not (isinstance(r, CamRequest) and r.background)]
            self._requests = collections.deque(others + [(self.generation, c) for c in cams])
            self._lock.notify_all()

    @staticmethod
    def _cam(item, background: bool) -> CamRequest:
        if isinstance(item, CamRequest):
            return item if item.background == background else CamRequest(item.key, item.ref, item.target,
                                                                          item.layer, background)
        key, ref, target, layer = item
        return CamRequest(key, ref, target, layer, background)

    def request_model_view(self, key: Any, ref, target: str | None, layer: str | None) -> None:
        self._push(ModelViewRequest(key, ref, target, layer))

    def call(self, key: Any, fn: Callable[[Any], Any]) -> None:
        self._push(CallRequest(key, fn))

    def stop(self, timeout: float = 0.5) -> bool:
        """Stop the loop; wait up to `timeout` s for it (the running batch stops at its next
        yield; the thread is a daemon, so a long step never holds the process); then the
        decoder processes and the forkserver are reaped. True if the thread ended."""
        with self._lock:
            self._stop = True
            self.generation += 1
            self._requests.clear()
            self._work = _Work()
            self._lock.notify_all()
        ended = True
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
            ended = not self.thread.is_alive()
        reap_children(timeout=max(0.1, timeout / 2))
        return ended

    def is_current(self, gen: int) -> bool:
        return gen == self.generation and not self._stop

    def _push(self, req: Any) -> None:
        with self._lock:
            self._requests.append((self.generation, req))
            self._lock.notify_all()

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        try:
            self.backend = self._factory()
            self._emit(Ready(self.backend.list_models()))
        except Exception as exc:  # noqa: BLE001 - reported as an event; the app goes on without models
            self._emit(Failed(self.generation, exc, "models unavailable"))
            self.backend = None
        idle_sent = -1
        while True:
            with self._lock:
                while not self._stop and not self._requests and not self._has_work():
                    if idle_sent != self.generation:
                        idle_sent = self.generation
                        self.busy = False
                        self._emit(Idle(self.generation))
                    self._lock.wait(0.5)
                if self._stop:
                    break
                self.busy = True
                item = self._requests.popleft() if self._requests else None
                batch = None if item is not None else self._pop_batch()
                gen = self.generation
            if self.backend is None:
                continue
            try:
                if item is not None:
                    self._run_request(*item)
                elif batch:
                    self._run_batch(gen, batch)
            except Exception as exc:  # noqa: BLE001 - delivered as an object to the sink
                if item is not None and isinstance(item[1], LoadModel):
                    self._emit(Failed(self.generation, exc, f"loading {item[1].name}"))
                elif self.is_current(gen):
                    self._emit(Failed(gen, exc, type(item[1]).__name__ if item else "inference"))
            with self._lock:
                if self._requests or self._has_work():
                    idle_sent = -1
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def _emit(self, event: Any) -> None:
        if not self._stop or isinstance(event, (Failed,)):
            self.sink(event)

    def _has_work(self) -> bool:
        return bool(self._work.studies) and self._work_gen == self.generation

    def _pop_batch(self) -> list[tuple[str, tuple, bool]] | None:
        """The priority study alone (latency), else studies in order up to batch_images images."""
        work = self._work
        if not work.studies or self._work_gen != self.generation:
            return None
        key = next((k for k in work.priority if k in work.studies), None)
        if key is not None:
            return [(key, work.studies.pop(key), True)]
        out, n = [], 0
        while work.studies and n < self.batch_images:
            k = next(iter(work.studies))
            refs = work.studies.pop(k)
            out.append((k, refs, False))
            n += len(refs)
        return out

    def _run_request(self, gen: int, req: Any) -> None:
        b = self.backend
        if isinstance(req, LoadModel):
            with self._lock:
                seq = self._load_seq
            info = b.load(req.name, req.device)
            with self._lock:  # a cancel since does not drop it; a newer load does
                current = seq == self._load_seq and not self._stop
                gen_now = self.generation
            if current:
                self._emit(ModelLoaded(gen_now, info))
            return
        if gen != self.generation:
            return
        if isinstance(req, CamRequest):
            if (gen, req.key) in self._auto_done:
                return  # computed with its prediction already (and delivered)
            cam = b.cam(req.ref, req.target, req.layer)
            if self.is_current(gen):
                self._emit(CamReady(gen, req.key, cam))
        elif isinstance(req, ModelViewRequest):
            out = b.model_view(req.ref, req.target, req.layer)
            if self.is_current(gen):
                self._emit(ModelViewReady(gen, req.key, out))
        elif isinstance(req, CallRequest):
            out = req.fn(b)
            if self.is_current(gen):
                self._emit(Called(gen, req.key, out))
        else:
            raise TypeError(f"unknown request {req!r}")

    def _routed(self) -> bool:
        return bool(self._gate or self._side) and hasattr(self.backend, "manifest_of")

    def _predict(self, gen: int, refs, model: str | None):
        kw = {} if model is None else {"model": model}
        for pred in self.backend.iter_predict(refs, cancelled=lambda: not self.is_current(gen), **kw):
            if not self.is_current(gen):
                return
            yield pred

    def _run_batch(self, gen: int, batch: list[tuple[str, tuple, bool]]) -> None:
        if self._routed():
            return self._run_routed(gen, batch)
        work = self._work
        refs = [r for _k, rs, _p in batch for r in rs]
        owner = {}
        for k, rs, _p in batch:
            for r in rs:
                owner.setdefault(r.key, k)
        got: dict[str, list] = {k: [] for k, _rs, _p in batch}
        for pred in self.backend.iter_predict(refs, cancelled=lambda: not self.is_current(gen)):
            if not self.is_current(gen):
                return
            k = owner.get(pred.ref.key)
            if k is None:
                continue
            got[k].append(pred)
            work.done += 1
            self._emit(PredictionReady(gen, pred))
            self._emit(ProgressEvent(gen, work.done, work.total, "inference"))
        for k, rs, priority in batch:
            preds = got[k]
            if len(preds) != len(rs) or not self.is_current(gen):
                continue
            self._emit(StudyPredictionReady(gen, self.backend.aggregate(k, preds)))
            if priority:
                self._auto_cam_study(gen, preds)

    def _auto_cam_study(self, gen: int, preds) -> None:
        if not (self._auto_cams and getattr(getattr(self.backend, "info", None), "cam", False)):
            return
        block = self._auto_cam_block
        model = getattr(self.backend.info, "name", "")
        for pred in preds:
            if pred.error or not self.is_current(gen):
                continue
            cam = self.backend.cam(pred.ref, None, block)
            key = (model, pred.ref.key, block or "")
            if self.is_current(gen):
                self._auto_done.add((gen, key))
                if len(self._auto_done) > 4096:
                    self._auto_done = {k for k in self._auto_done if k[0] == gen}
                self._emit(CamReady(gen, key, cam))

    def _run_routed(self, gen: int, batch: list[tuple[str, tuple, bool]]) -> None:
        """Gate on every study, then the primary on every study, then each side model on the
        studies routed to it (see the module doc)."""
        from radview.models import routing

        work, b = self._work, self.backend
        primary = getattr(getattr(b, "info", None), "name", "") or ""
        keys = [k for k, _rs, _p in batch]
        refs_of = {k: rs for k, rs, _p in batch}
        # 1. body part of each study: header first, then the gate model (run on all of them)
        gate_preds: dict[str, list] = {k: [] for k in keys}
        if self._gate:
            owner = {r.key: k for k, rs, _p in batch for r in rs}
            try:
                gated = list(self._predict(gen, [r for k in keys for r in refs_of[k]],
                                           None if self._gate == primary else self._gate))
            except Exception as exc:  # noqa: BLE001 - no gate: body part from the headers only
                if self._gate == primary:
                    raise
                self._emit(Failed(gen, exc, f"model {self._gate}"))
                gated = []
            for pred in gated:
                k = owner.get(pred.ref.key)
                if k is not None:
                    gate_preds[k].append(pred)
                    if self._gate == primary:
                        work.done += 1
                        self._emit(PredictionReady(gen, pred))
                        self._emit(ProgressEvent(gen, work.done, work.total, "inference"))
                    else:
                        self._emit(SidePredictionReady(gen, self._gate, pred))
            if not self.is_current(gen):
                return
        verdicts = {}
        for k in keys:
            v = routing.study_verdict(self._metas.get(k, ()), gate_preds[k])
            verdicts[k] = v
            self._emit(BodyPartReady(gen, k, v))
            if self._gate and self._gate != primary and len(gate_preds[k]) == len(refs_of[k]):
                self._emit(SideStudyReady(gen, self._gate, b.aggregate(k, gate_preds[k], model=self._gate)))
        # 2. the primary (picked by the user: every study); 3. side models where routed
        prio = {k for k, _rs, p in batch if p}
        if primary and primary != self._gate:
            run = self._route_primary(gen, batch, primary, verdicts)
            if run:
                self._run_model(gen, run, None, primary, prio)
        elif self._gate == primary:
            for k in keys:
                if len(gate_preds[k]) == len(refs_of[k]):
                    self._emit(StudyPredictionReady(gen, b.aggregate(k, gate_preds[k])))
                    if k in prio:
                        self._auto_cam_study(gen, gate_preds[k])
        for name in self._side:
            if name in (primary, self._gate) or not self.is_current(gen):
                continue
            manifest = b.manifest_of(name)
            run = []
            for k in keys:
                r = routing.route(verdicts[k], [manifest], self._requested.get(k, ()))[0] if manifest else None
                if r is None:
                    self._emit(Skipped(gen, name, k, f"model {name} is not installed"))
                elif r.run:
                    run.append((k, refs_of[k], k in prio))
                else:
                    self._emit(Skipped(gen, name, k, r.reason))
            if run:
                try:
                    self._run_model(gen, run, name, name, set())
                except Exception as exc:  # noqa: BLE001 - the side model fails alone; reported
                    self._emit(Failed(gen, exc, f"model {name}"))
                    for k, _rs, _p in run:
                        self._emit(Skipped(gen, name, k, f"{name} failed: {exc}"))

    def _route_primary(self, gen: int, batch, primary: str, verdicts) -> list:
        """(bodypart, issue 13) The primary is routed like a side model: a study whose body part
        is outside its manifest's domain is Skipped (with the reason; it counts as done for the
        progress) unless the user asked for it (run_anyway)."""
        from radview.models import routing

        manifest = self.backend.manifest_of(primary)
        if manifest is None:
            return list(batch)
        run, work = [], self._work
        for k, rs, p in batch:
            r = routing.route(verdicts[k], [manifest], self._requested.get(k, ()))[0]
            if r.run:
                run.append((k, rs, p))
                continue
            work.done += len(rs)
            self._emit(Skipped(gen, primary, k, r.reason))
            self._emit(ProgressEvent(gen, work.done, work.total, "inference"))
        return run

    def _run_model(self, gen: int, batch, model: str | None, name: str, prio: set) -> None:
        """One model over the batch's studies; model None = the primary (progress, CAMs)."""
        work = self._work
        owner = {r.key: k for k, rs, _p in batch for r in rs}
        got: dict[str, list] = {k: [] for k, _rs, _p in batch}
        for pred in self._predict(gen, [r for _k, rs, _p in batch for r in rs], model):
            k = owner.get(pred.ref.key)
            if k is None:
                continue
            got[k].append(pred)
            if model is None:
                work.done += 1
                self._emit(PredictionReady(gen, pred))
                self._emit(ProgressEvent(gen, work.done, work.total, "inference"))
            else:
                self._emit(SidePredictionReady(gen, name, pred))
        for k, rs, _p in batch:
            preds = got[k]
            if len(preds) != len(rs) or not self.is_current(gen):
                continue
            if model is None:
                self._emit(StudyPredictionReady(gen, self.backend.aggregate(k, preds)))
                if k in prio:
                    self._auto_cam_study(gen, preds)
            else:
                self._emit(SideStudyReady(gen, name, self.backend.aggregate(k, preds, model=name)))


# --------------------------------------------------------------------------- shutdown


def reap_children(timeout: float = 0.3) -> list[int]:
    """End every child process this process started (decoder pools, the forkserver): decoders
    shut down, live children terminated (then killed after `timeout`). Returns their pids."""
    import multiprocessing

    pids: list[int] = []
    try:
        from radview.models import decoding
    except ImportError:  # torch-free install: there are no decoders
        decoding = None
    if decoding is not None:
        decoding.shutdown_decoders()
    children = multiprocessing.active_children()
    for p in children:
        pids.append(p.pid)
        p.terminate()
    deadline = time.monotonic() + timeout
    for p in children:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(0.1)
    pids += _stop_forkserver()
    return pids


def _stop_forkserver() -> list[int]:
    """The forkserver outlives a SIGTERM of the app unless told: close its alive pipe and end it."""
    try:
        from multiprocessing import forkserver
    except ImportError:
        return []
    fs = getattr(forkserver, "_forkserver", None)
    pid = getattr(fs, "_forkserver_pid", None)
    if not pid:
        return []
    stop = getattr(fs, "_stop", None)
    if stop is not None:
        try:
            stop()  # Python >= 3.9: closes the pipe and waits for it
            return [pid]
        except (OSError, ChildProcessError):
            pass
    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (OSError, ChildProcessError):
        pass
    return [pid]
