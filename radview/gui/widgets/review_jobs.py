"""Small helpers of the review panel: the summary job run on a superqt worker, number formatting."""
from __future__ import annotations

import math
import time

ANY = "(any)"


def _summary_job(job):
    """Build (optional) + filter + iter_summarize, as a generator for a superqt GeneratorWorker:
    it can be stopped (worker.quit()) between summary steps; returns (base, interp, summary)."""
    base, interp, steps = job()
    summary = None
    for prog in steps:
        yield None
        if prog.payload is not None:
            summary = prog.payload
    return base, interp, summary


def _fmt(v, ci=None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    txt = f"{v:.3f}"
    if ci is not None and math.isfinite(ci.low):
        txt += f" [{ci.low:.2f}, {ci.high:.2f}]"
    return txt


def wait_until(done, timeout_ms: int = 10000) -> bool:
    """Run the event loop until done() is true or the time is up; done()'s last answer."""
    from PySide6.QtCore import QCoreApplication

    deadline = time.perf_counter() + timeout_ms / 1000
    while not done() and time.perf_counter() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.005)
    QCoreApplication.processEvents()
    return bool(done())
