"""Decoding that overlaps compute: the pools behind engine.iter_predict.

Measured on 2 cores (scripts/bench_models.py): a DICOM decode (pydicom + pylibjpeg) holds the GIL
for most of its ~15 ms, so decoder *threads* stall the model thread between layers and the whole
pipeline runs on one core (process CPU / wall ~1.0). Decoder *processes* do not share the GIL:

- `decoder_kind(decoder=None)`: 'process' (default with >= 2 cores) or 'thread';
  RADVIEW_DECODER=thread|process overrides.
- `process_pool(workers=2)`: shared decoder processes, started once (forkserver where available,
  so a threaded or Qt parent is never forked; spawn elsewhere), at nice +5 so that the GUI and the
  model thread come first. They import radview.io and radview.models.preprocess only, never
  torch. `shutdown_decoders()` stops them (also at exit).
  A decoder process that dies (a crashing codec) breaks the pool for every file of its batch:
  `result(fut, ref, specs)` then decodes each of them again alone in a fresh process
  (`decode_isolated`), so only the culprit gets the error; a fresh pool serves the rest.
  As with any multiprocessing, a *script* that runs iter_predict with process decoders must guard
  its entry point with `if __name__ == "__main__":` (the children import the main module);
  `radview` itself, `python -m radview` and pytest are fine.
- `thread_pool(workers)`: a private thread pool (the caller shuts it down).
- `fast_gil_switching()`: while inference runs, sys.setswitchinterval is lowered to 1 ms (restored
  when the last user leaves), so that Python work in other threads (the GUI, thread decoders)
  hands the GIL back to the model thread sooner.
- `result(fut, ref) -> Decoded`: a decode future's result, or a Decoded error, never a raise.
"""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from radview.models.preprocess import Decoded
from radview.types import ImageRef

FAST_SWITCH_INTERVAL = 0.001

_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
_ATEXIT = False
_SWITCH_USERS = 0
_SWITCH_SAVED = 0.005


SMALL_JOB_IMAGES = 64  # a job of at most this many images decodes in threads (see decoder_kind)


def decoder_kind(decoder: str | None = None, n_images: int | None = None, spec=None) -> str:
    """'process' or 'thread': the explicit choice, else RADVIEW_DECODER, else by the work size:
    threads for a job of a known size <= SMALL_JOB_IMAGES (a study, a few files: the viewer's
    everyday job) or on one core; processes for larger or open-ended jobs (a folder), where the
    GIL that DICOM decoding holds would stall the model thread over the whole run."""
    kind = (decoder or os.environ.get("RADVIEW_DECODER") or "").strip().lower()
    if kind in ("process", "thread"):
        return kind
    if (os.cpu_count() or 1) < 2:
        return "thread"
    if n_images is not None and n_images <= SMALL_JOB_IMAGES:
        return "thread"
    return "process"


def process_pool(workers: int = 2) -> ProcessPoolExecutor:
    global _POOL, _POOL_WORKERS, _ATEXIT
    with _LOCK:
        if _POOL is not None and _POOL_WORKERS != workers:
            _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
        if _POOL is None:
            ctx = _context()
            _POOL = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx, initializer=_lower_priority)
            _POOL_WORKERS = workers
            if not _ATEXIT:
                atexit.register(shutdown_decoders)
                _ATEXIT = True
        return _POOL


def _lower_priority() -> None:
    """Decoder processes yield the CPU to the app (GUI, model thread) when cores are busy."""
    if hasattr(os, "nice"):
        try:
            os.nice(5)
        except OSError:
            pass


def loaded_modules(names: list[str]) -> dict[str, bool]:
    """Which of these modules a process has imported (diagnostics: decoders never load torch)."""
    return {n: n in sys.modules for n in names}


def shutdown_decoders() -> None:
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def thread_pool(workers: int = 2) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="radview-decode")


def _context():
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["radview.io", "radview.models.preprocess"])
    return ctx


def decode_isolated(ref: ImageRef, specs, decode=None) -> Decoded:
    """Decode one file in a fresh one-worker process: if that process dies, this file is the culprit.
    decode: the picklable decode function (default preprocess.decode_ref)."""
    from radview.models.preprocess import decode_ref

    pool = ProcessPoolExecutor(max_workers=1, mp_context=_context(), initializer=_lower_priority)
    try:
        return pool.submit(decode or decode_ref, ref, specs).result()
    except BrokenProcessPool:
        return Decoded(ref, error=f"{ref.path}: the decoder process died while reading it (a crashing codec)")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def result(fut: Future, ref: ImageRef, specs=None, decode=None) -> Decoded:
    """The decode result. When the shared decoder process died, every file of its batch sees the
    broken pool: with `specs`, each such file is decoded again on its own (decode_isolated), so only
    the file that crashes the decoder gets the error; without, the file is reported as unverified."""
    try:
        return fut.result()
    except BrokenProcessPool:
        shutdown_decoders()
        if specs is not None:
            return decode_isolated(ref, specs, decode)
        return Decoded(ref, error=f"{ref.path}: the decoder process died while this batch was read")
    except Exception as exc:  # noqa: BLE001 - a bad file never stops the run
        return Decoded(ref, error=f"{ref.path}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def fast_gil_switching():
    global _SWITCH_USERS, _SWITCH_SAVED
    with _LOCK:
        if _SWITCH_USERS == 0:
            _SWITCH_SAVED = sys.getswitchinterval()
            sys.setswitchinterval(min(_SWITCH_SAVED, FAST_SWITCH_INTERVAL))
        _SWITCH_USERS += 1
    try:
        yield
    finally:
        with _LOCK:
            _SWITCH_USERS -= 1
            if _SWITCH_USERS == 0:
                sys.setswitchinterval(_SWITCH_SAVED)
