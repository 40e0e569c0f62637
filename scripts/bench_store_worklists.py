#!/usr/bin/env python
"""Team reading on one store (issue 16): a project of N studies (default 500) read twice
(blinded), by R readers (default 4) writing their reads from R processes at once, then the
adjudication of the disagreements and the agreement statistics; on SQLite and on PostgreSQL.

Checked: every read kept (N x 2), every study final (consensus or adjudicated), one final event
per study. Timed per backend; the PostgreSQL / SQLite ratio is printed from the same run.
PostgreSQL: --pg URL of an empty database, or a temporary server from the machine's binaries
(tests/postgres.py, fsync on).

Usage: nice -n 10 .venv/bin/python scripts/bench_store_worklists.py [--items 500] [--readers 4]
       [--only sqlite|postgresql] [--pg URL]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _store_targets import store_targets  # noqa: E402 - scripts/ is on sys.path
P = "bench"


def _reader(target, name: str, start, out) -> None:
    from radview.store import LabelStore

    store = LabelStore(target, reader=name)
    try:
        rng = random.Random(name)
        start.wait(120)
        t0 = time.perf_counter()
        items = store.worklist(P)
        for w in items:
            store.record_read(P, w.key, rng.choice(("normal", "abnormal", "abnormal")))
        out.put((name, len(items), time.perf_counter() - t0, ""))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        out.put((name, 0, 0.0, f"{type(exc).__name__}: {exc}"))
    finally:
        store.close()


def run(target, items: int, readers: int) -> dict:
    from radview.review.agreement import project_agreement
    from radview.store import LabelStore

    names = [f"reader{i}" for i in range(readers)]
    with LabelStore(target, reader="lead") as s:
        s.set_reader("lead", "adjudicator")
        t = time.perf_counter()
        s.create_project(P, reads=2, space="mura")
        s.add_to_project(P, [f"XR_WRIST/patient{i:05d}/study1" for i in range(items)])
        s.assign(P, names, shuffle=True, seed=1)
        t_assign = time.perf_counter() - t
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    ps = [ctx.Process(target=_reader, args=(target, n, start, out)) for n in names]
    for p in ps:
        p.start()
    time.sleep(2.0)  # the spawned readers import radview first
    t = time.perf_counter()
    start.set()
    got = [out.get(timeout=600) for _ in ps]
    t_reads = time.perf_counter() - t
    for p in ps:
        p.join()
    errors = [f"{n}: {e}" for n, _k, _s, e in got if e]
    with LabelStore(target, reader="lead") as s:
        t = time.perf_counter()
        disputed = s.disputed(P)
        for st in disputed:
            s.adjudicate(P, st.key, "abnormal", note="bench")
        t_adj = time.perf_counter() - t
        t = time.perf_counter()
        ag = project_agreement(s, P, n_boot=1000)
        t_agree = time.perf_counter() - t
        statuses = s.statuses(P)
        finals = [e for e in s.history(level="study") if e.project == P]
        n_reads = len(s.read_log(P))
    return {"reads": n_reads, "expected": 2 * items, "final": sum(x.status == "final" for x in statuses.values()),
            "final_events": len(finals), "disputed": len(disputed), "errors": errors,
            "assign_s": t_assign, "reads_s": t_reads, "reads_per_s": n_reads / t_reads if t_reads else 0,
            "adjudicate_s": t_adj, "agreement_s": t_agree,
            "kappa": ag.headline.value if ag.headline is not None else float("nan")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--pg", default="")
    ap.add_argument("--only", choices=("sqlite", "postgresql"))
    args = ap.parse_args()
    with store_targets("radview-bench-worklists-", args.only, args.pg) as targets:
        print(f"{args.items} studies x 2 blinded reads, {args.readers} reader processes at once")
        results = {name: run(t, args.items, args.readers) for name, t in targets.items()}
        ok = True
        for name, r in results.items():
            print(f"{name:10s} reads {r['reads']}/{r['expected']}  final {r['final']}/{args.items} "
                  f"(events {r['final_events']}, {r['disputed']} adjudicated)  assign {r['assign_s']:.2f} s  "
                  f"reads {r['reads_s']:.1f} s ({r['reads_per_s']:.0f}/s)  adjudication {r['adjudicate_s']:.1f} s"
                  f"  agreement {r['agreement_s']:.2f} s  kappa {r['kappa']:.3f}"
                  + (f"  ERRORS {r['errors']}" if r["errors"] else ""))
            ok &= (r["reads"] == r["expected"] and r["final"] == args.items
                   and r["final_events"] == args.items and not r["errors"])
        if len(results) == 2:
            print(f"reads/s ratio PostgreSQL / SQLite: "
                  f"{results['postgresql']['reads_per_s'] / results['sqlite']['reads_per_s']:.2f}x")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
