"""A LIFO task queue on one daemon thread, without Qt: the io worker of the GUI (frames,
thumbnails, review images), driven by the thin Qt adapter `radview.gui.workers.TaskQueue`
(as `radview.models.executor` is by `ModelExecutor`).

    q = LifoTasks(sink=results.append, max_pending=16)   # sink(TaskDone) on the worker thread
    q.submit("a.dcm", load_frame, "a.dcm")                # the newest request runs first
    q.clear()        # drops what is queued; a task already running is not reported
    q.stop(0.25)     # stop taking work (a decode in progress may finish on its own)

- Newest first: scrolling through 10,000 studies decodes what is on screen now, not what was
  there a second ago; beyond `max_pending` the oldest requests are dropped (asked again when
  they come back on screen).
- Stale results are never delivered: `clear()` bumps a generation, and a task that was running
  when it was called reports nothing (a frame of the previous folder does not land in the cache).
- A failure is delivered as the exception object (`TaskDone.error`), never swallowed.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class TaskDone:
    key: Any
    result: Any = None
    error: BaseException | None = None


class LifoTasks:
    """See the module docstring. Thread-safe API; the thread starts with the first submit."""

    def __init__(self, sink: Callable[[TaskDone], None], max_pending: int = 64, name: str = "radview-io") -> None:
        self.sink = sink
        self.max_pending = max(1, int(max_pending))
        self.name = name
        self._lock = threading.Condition()
        self._pending: collections.OrderedDict[Any, tuple[Callable, tuple]] = collections.OrderedDict()
        self._gen = 0
        self._stop = False
        self.running_key: Any = None
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ API (any thread)
    def submit(self, key: Any, fn: Callable, *args: Any) -> None:
        """Queue fn(*args) under key (a request for a key already queued moves it to the top;
        one for the key being run now is not queued again)."""
        with self._lock:
            if self._stop or (key == self.running_key and key not in self._pending):
                return  # stopped, or running now: its result is on its way
            self._pending.pop(key, None)
            self._pending[key] = (fn, args)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)  # the oldest request is dropped
            self._lock.notify_all()
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self.thread.start()

    def clear(self) -> None:
        """Drop every queued request; the one running (if any) is not reported."""
        with self._lock:
            self._pending.clear()
            self._gen += 1
            self.running_key = None  # its result is stale: the key may be asked for again

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def pending_keys(self) -> set:
        with self._lock:
            return set(self._pending)

    def is_running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout: float = 0.25) -> bool:
        """Stop taking work and wait up to timeout for the thread; True when it has ended."""
        with self._lock:
            self._stop = True
            self._pending.clear()
            self._gen += 1
            self._lock.notify_all()
        t = self.thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        return t is None or not t.is_alive()

    # ------------------------------------------------------------------ the worker thread
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not self._pending:
                    self._lock.wait()
                if self._stop:
                    return
                key, (fn, args) = self._pending.popitem(last=True)  # newest first
                gen = self._gen
                self.running_key = key
            try:
                done = TaskDone(key, fn(*args))
            except Exception as exc:  # noqa: BLE001 - delivered to the sink as the exception object
                done = TaskDone(key, None, exc)
            with self._lock:
                self.running_key = None
                stale = gen != self._gen or self._stop
            if not stale:
                self.sink(done)
