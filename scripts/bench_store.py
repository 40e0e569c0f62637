#!/usr/bin/env python
"""Benchmark: the label store's incremental queries on a store with N corrections (generated,
with undos, redos, a consumed run and three label spaces). Ratios against the baselines measured
in the same run:

  - queue counts: `queue_summary(space=...)` (SQL) vs loading every event and folding them in
    Python (`derive.pending(store.history())`, what the queue panel did before);
  - live refresh: `events_since(last_seen)` after one new correction vs reading the whole history;
  - undo: `undo_last()` vs the old GUI chain walk (history of the item, then undo).

Usage: .venv/bin/python scripts/bench_store.py [--events 20000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from radview.store import LabelStore, derive  # noqa: E402


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def fill(store: LabelStore, n: int) -> None:
    spaces = (("folder:openi", ("abd", "chest")), ("mura", ("normal", "abnormal")),
              ("rsna-pneumonia", ("normal", "pneumonia")))

    def txn(conn):
        rows = []
        for i in range(n):
            space, classes = spaces[i % 3]
            rows.append((f"u{i}", "image", f"/data/{space}/{i % (n // 2)}.png", "label", '"x"',
                         f'"{classes[i % 2]}"', "bench", "2026-01-01T00:00:00+00:00", "wrong_label",
                         space))
        conn.executemany("INSERT INTO corrections (uid, level, key, kind, old_value, new_value, reader,"
                         " time, reason, space) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    store._db.write(txn)
    ids = [e.id for e in store.history()]
    for i in ids[: n // 10]:  # some undone, some of those redone
        u = store.undo(i)
        if i % 2:
            store.undo(u.id)
    store.mark_consumed(ids[n // 10: n // 5], "run-1")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = LabelStore(Path(tmp) / "bench.sqlite", reader="bench")
        t0 = time.perf_counter()
        fill(store, args.events)
        n = store.last_event_id()
        print(f"store with {n} events ({time.perf_counter() - t0:.1f} s to make)")

        t_sql, q = best_of(lambda: store.queue_summary(space="mura"), args.repeat)
        t_py, pend = best_of(lambda: [e for e in derive.pending(store.history()) if e.space == "mura"],
                             args.repeat)
        assert q.total == len(pend), (q.total, len(pend))
        print(f"queue counts (mura, {q.total} pending): SQL {t_sql * 1e3:.1f} ms, all events in Python "
              f"{t_py * 1e3:.1f} ms: {t_py / t_sql:.1f}x faster")

        last = store.last_event_id()
        store.set_label("/data/new.png", "chest", space="folder:openi")
        t_inc, new = best_of(lambda: store.events_since(last), args.repeat)
        t_all, _ = best_of(store.history, args.repeat)
        assert len(new) == 1
        print(f"live refresh after one correction: events_since {t_inc * 1e3:.2f} ms, whole history "
              f"{t_all * 1e3:.1f} ms: {t_all / t_inc:.0f}x faster")

        def old_undo():
            target = store.history("/data/new.png", "image")[-1]
            return store.undo(target.id)

        t_undo, _ = best_of(lambda: (store.undo_last(key="/data/new.png", level="image"),
                                     store.redo_last(key="/data/new.png", level="image")), args.repeat)
        t_old, _ = best_of(lambda: (old_undo(), old_undo()), args.repeat)
        print(f"undo + redo of one item: store {t_undo * 1e3:.1f} ms, history walk {t_old * 1e3:.1f} ms "
              f"(ratio {t_old / t_undo:.2f})")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
