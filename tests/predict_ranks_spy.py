"""`python tests/predict_ranks_spy.py ARGS` = `radview ARGS`, run as a torchrun rank, watching the store.

Every batch the rank writes through LabelStore.put_predictions is recorded, after the write
returned (so: committed), as one key a line in $SPY_DIR/rank<RANK>.<pid>.keys. With
SPY_KILL_RANK=r and SPY_KILL_AFTER=n, rank r sends itself SIGKILL right after its n-th stored
batch: a rank that dies mid-run, with no chance to clean up. The store and the model are real;
the wrapper only counts and kills (tests/test_predict_ranks.py).
"""
from __future__ import annotations

import os
import signal
import sys


def _install() -> None:
    from radview.store.items import ItemsMixin

    real = ItemsMixin.put_predictions
    rank = os.environ.get("RANK", "0")
    log = os.path.join(os.environ["SPY_DIR"], f"rank{rank}.{os.getpid()}.keys")
    kill = os.environ.get("SPY_KILL_RANK") == rank
    after = int(os.environ.get("SPY_KILL_AFTER", "0") or 0)
    calls = [0]

    def put_predictions(self, preds, **kw):
        preds = list(preds)
        n = real(self, preds, **kw)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write("".join(p.ref.key + "\n" for p in preds if not p.error))
        calls[0] += 1
        if kill and calls[0] >= after:
            os.kill(os.getpid(), signal.SIGKILL)
        return n

    ItemsMixin.put_predictions = put_predictions


if __name__ == "__main__":  # decoder processes import this module: nothing runs there
    _install()
    from radview.cli import main

    sys.exit(main(sys.argv[1:]))
