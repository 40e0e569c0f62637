"""The Qt-free LIFO io queue (radview.io.tasks): newest first, bounded, stale results dropped."""
from __future__ import annotations

import threading

from radview.io.tasks import LifoTasks, TaskDone


class Sink:
    def __init__(self):
        self.items: list[TaskDone] = []
        self.cond = threading.Condition()

    def __call__(self, d: TaskDone) -> None:
        with self.cond:
            self.items.append(d)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> list[TaskDone]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout), self.items
            return list(self.items)


def _blocked(q: LifoTasks, sink: Sink) -> threading.Event:
    """Occupy the worker with a task that waits for the returned event."""
    gate, started = threading.Event(), threading.Event()

    def hold():
        started.set()
        gate.wait(5)
        return "held"

    q.submit("hold", hold)
    assert started.wait(5)
    return gate


def test_newest_request_runs_first_and_the_oldest_are_dropped():
    sink = Sink()
    q = LifoTasks(sink, max_pending=3)
    gate = _blocked(q, sink)
    for k in "abcde":  # a and b are dropped (beyond 3 pending)
        q.submit(k, str.upper, k)
    assert q.pending() == 3 and q.pending_keys() == {"c", "d", "e"}
    q.submit("c", str.upper, "c")  # asked again: to the top
    gate.set()
    got = sink.wait(4)
    assert [d.key for d in got] == ["hold", "c", "e", "d"]
    assert [d.result for d in got[1:]] == ["C", "E", "D"]
    assert q.stop(1.0)


def test_clear_drops_the_queued_and_the_running_result():
    sink = Sink()
    q = LifoTasks(sink)
    gate = _blocked(q, sink)
    q.submit("queued", str.upper, "x")
    q.clear()  # the folder changed: neither the held task nor the queued one may be delivered
    q.submit("new", str.upper, "n")
    gate.set()
    got = sink.wait(1)
    assert [d.key for d in got] == ["new"]
    q.stop(1.0)
    assert [d.key for d in sink.items] == ["new"]


def test_a_request_for_the_running_key_is_not_run_twice():
    sink = Sink()
    q = LifoTasks(sink)
    calls = []
    gate, started = threading.Event(), threading.Event()

    def load(k):
        calls.append(k)
        started.set()
        gate.wait(5)
        return k

    q.submit("f", load, "f")
    assert started.wait(5)
    q.submit("f", load, "f")  # the viewer asks again while it decodes
    gate.set()
    sink.wait(1)
    q.stop(1.0)
    assert calls == ["f"] and [d.key for d in sink.items] == ["f"]


def test_a_failure_arrives_as_the_exception_object():
    sink = Sink()
    q = LifoTasks(sink)

    def bad(path):
        raise ValueError(f"{path}: not an image")

    q.submit("x", bad, "x.png")
    d = sink.wait(1)[0]
    assert isinstance(d.error, ValueError) and "x.png" in str(d.error) and d.result is None
    assert q.stop(1.0) and not q.is_running()
    q.submit("late", str.upper, "y")  # after stop nothing runs
    assert q.pending() == 0
