#!/usr/bin/env python
"""Load test of a team on one database: P processes (default 8) append E events in total
(default 10,000) to one label store at the same moment, on SQLite and on PostgreSQL, and the
store is checked afterwards: 0 lost (every event a writer got back is in the history, with its
note), 0 duplicated (ids and uids unique, exactly E events), ids in commit order. Several writers
hit the same items (the "two readers correct the same study" case): every event is kept.

Time is measured per backend (events/s); the ratio PostgreSQL / SQLite is measured in the same run.
PostgreSQL: --pg URL, or a temporary server started from the machine's binaries (tests/postgres.py;
durable: fsync on, as SQLite's synchronous=FULL).

Usage: nice -n 10 .venv/bin/python scripts/bench_store_team.py [--procs 8] [--events 10000]
       [--pg postgresql://user@host:port/db] [--only sqlite|postgresql] [--together]
--together runs both backends' writers at the same time (16 processes on 2 cores).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _store_targets import store_targets  # noqa: E402 - scripts/ is on sys.path


def _writer(target, worker: int, n: int, items: int, start, out) -> None:
    from radview.store import LabelStore

    store = LabelStore(target, reader=f"reader{worker}")
    try:
        start.wait(120)
        got = []
        for j in range(n):
            c = store.set_label(f"/team/study{j % items}.png", ("chest", "abd")[(worker + j) % 2],
                                note=f"w{worker}:{j}", space="folder:team")
            got.append((c.id, c.uid, c.note))
        out.put((worker, got, None, time.time()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        out.put((worker, [], f"{type(exc).__name__}: {exc}", time.time()))
    finally:
        store.close()


def start_writers(target, procs: int, events: int, items: int, ctx, start):
    out = ctx.Queue()
    per = [events // procs + (1 if i < events % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=_writer, args=(target, i, per[i], items, start, out))
          for i in range(procs)]
    for p in ps:
        p.start()
    return ps, out, per


def collect(target, ps, out, per, t0: float) -> dict:
    """Wait for the writers; seconds = from the start signal to the last writer's finish."""
    results, errors, last = {}, [], t0
    for _ in ps:
        worker, got, err, finished = out.get(timeout=1800)
        results[worker] = got
        last = max(last, finished)
        if err:
            errors.append(f"writer {worker}: {err}")
    for p in ps:
        p.join(60)
    res = check(target, results, per, errors)
    res["seconds"] = last - t0
    res["events_per_s"] = res["events"] / res["seconds"] if res["seconds"] > 0 else 0.0
    return res


def check(target, results: dict, per: list[int], errors: list[str]) -> dict:
    from radview.store import LabelStore

    with LabelStore(target) as store:
        history = store.history()
    returned = [r for got in results.values() for r in got]
    ids = [e.id for e in history]
    by_id = {e.id: e for e in history}
    lost = sum(1 for (i, uid, note) in returned
               if i not in by_id or by_id[i].uid != uid or by_id[i].note != note)
    expected = {f"w{w}:{j}" for w, n in enumerate(per) for j in range(n)}
    notes = [e.note for e in history]
    return {"events": len(history), "expected": sum(per), "returned": len(returned),
            "lost": lost + len(expected - set(notes)),
            "duplicated": (len(ids) - len(set(ids))) + (len(notes) - len(set(notes)))
                          + len(set(notes) - expected),
            "ordered": ids == sorted(ids), "errors": errors}


def run(target, procs: int = 8, events: int = 10000, items: int = 200) -> dict:
    """Run the load on one store; returns the check dict plus seconds and events/s."""
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    ps, out, per = start_writers(target, procs, events, items, ctx, start)
    time.sleep(0.2)
    t0 = time.time()
    start.set()
    return collect(target, ps, out, per, t0)


def run_together(targets: dict, procs: int, events: int, items: int = 200) -> dict:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    started = {name: start_writers(t, procs, events, items, ctx, start) for name, t in targets.items()}
    time.sleep(0.5)
    t0 = time.time()
    start.set()
    return {name: collect(targets[name], ps, q, per, t0) for name, (ps, q, per) in started.items()}


def _ensure_store(target) -> None:
    from radview.store import LabelStore
    LabelStore(target).close()  # create the schema once, before the writers race


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--items", type=int, default=200, help="distinct studies written (overlap)")
    ap.add_argument("--pg", default="", help="PostgreSQL URL of an EMPTY database to use")
    ap.add_argument("--only", choices=("sqlite", "postgresql"))
    ap.add_argument("--together", action="store_true")
    args = ap.parse_args()
    with store_targets("radview-bench-team-", args.only, args.pg) as targets:
        for t in targets.values():
            _ensure_store(t)
        print(f"{args.procs} processes, {args.events} events per backend, {args.items} studies, "
              f"{'both backends at once' if args.together else 'one backend at a time'}")
        if args.together:
            results = run_together(targets, args.procs, args.events, args.items)
        else:
            results = {name: run(t, args.procs, args.events, args.items) for name, t in targets.items()}
        ok = True
        for name, r in results.items():
            print(f"{name:10s} events {r['events']}/{r['expected']}  lost {r['lost']}  duplicated "
                  f"{r['duplicated']}  ids ordered {r['ordered']}  {r['seconds']:.1f} s  "
                  f"{r['events_per_s']:.0f} events/s" + (f"  ERRORS {r['errors']}" if r['errors'] else ""))
            ok &= r["lost"] == 0 and r["duplicated"] == 0 and r["events"] == r["expected"] and not r["errors"]
        if "sqlite" in results and "postgresql" in results:
            ratio = results["postgresql"]["events_per_s"] / results["sqlite"]["events_per_s"]
            print(f"throughput ratio PostgreSQL / SQLite: {ratio:.2f}x")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
