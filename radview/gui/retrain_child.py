"""The retraining process's entry point (no Qt here: the child imports only the training core).

The app starts `run(model, data, settings, queue, cancel)` in a separate process (spawn), so
inference goes on in the app while it trains and quitting the app ends it. It runs exactly what
`radview train` runs (radview.train.run.retrain) and sends ("progress" | "epoch" | "finished" |
"cancelled" | "failed", payload) tuples back; `cancel` (an Event) stops it between batches
(the generator is closed: nothing half-written stays).
"""
from __future__ import annotations

import os
from typing import Any


def run(model: str, data: str | None, settings: dict[str, Any], queue: Any, cancel: Any) -> None:
    if hasattr(os, "nice"):
        try:
            os.nice(5)  # the app's GUI and inference keep the upper hand on shared cores
        except OSError:
            pass
    from radview import torch_env

    torch_env.lean_import()  # a spawned process: before the training core imports torch
    from radview.train.loop import EpochEnd, Step
    from radview.train.run import TrainResult, retrain

    queue.put(("started", os.getpid()))
    result = None
    try:
        gen = retrain(model, data, **settings)
        try:
            for p in gen:
                if isinstance(p.payload, TrainResult):
                    result = p.payload  # written already: a late cancel cannot undo it
                    continue
                if cancel.is_set():
                    break
                if isinstance(p.payload, EpochEnd):
                    queue.put(("epoch", p.payload))
                queue.put(("progress", (p.done, -1 if p.total is None else p.total, p.message,
                                        p.payload if isinstance(p.payload, Step) else None)))
        finally:
            gen.close()
    except Exception as exc:  # noqa: BLE001 - every failure reaches the dialog, with its type
        queue.put(("failed", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
        return
    queue.put(("finished" if result is not None else "cancelled", result))
