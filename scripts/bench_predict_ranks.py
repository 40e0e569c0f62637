#!/usr/bin/env python
"""Scale-out inference on this machine: `torchrun -m radview predict` with 1 rank vs 2 CPU ranks
(gloo), each run into a fresh SQLite store (nothing skipped), the ratio measured in the same run.

Each rank uses the defaults of radview.cli.predict_dist: torch threads = cores / local ranks
(2 cores: 1 rank x 2 threads, 2 ranks x 1 thread), decoder threads. Runs are interleaved
(1, 2, 1, 2, ...) and the median of each is reported, with `uptime` before and after each run (the
2 cores are shared: the load says how much of them the runs had). Throughput is images / s of
(a) the inference phase (the slowest rank's predict loop, from its stderr line) and (b) the whole
command's wall time (torchrun start, scan, model load, the final CSV included).

Usage: nice -n 5 .venv/bin/python scripts/bench_predict_ranks.py [--images 240] [--size 384]
       [--model region] [--repeat 2] [--ranks 2] [--shard-by hash|index]
The archive is synthetic (radview.train.synthetic.stripes, class folders of gray PNGs) in a
temporary folder with its own RADVIEW_HOME; the model is a bundled one (default: region,
efficientnet_lite0 at 224x224), run with --all-studies (the body-part routing would skip stripes).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_LINE = re.compile(r"radview predict: shard (\d+)/(\d+): \d+ studies, (\d+) images: (\d+) already done, "
                   r"(\d+) predicted, (\d+) failed \(([\d.]+) s")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(uptime failed: {exc})"


def load1() -> float:
    return os.getloadavg()[0]


def run(ranks: int, archive: Path, store: Path, model: str, env: dict, by: str = "hash",
        threads: int | None = None, shard: str | None = None) -> dict:
    threads = threads or max(1, (os.cpu_count() or 1) // ranks)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
           "-m", "radview", "predict", str(archive), "--model", model, "--device", "cpu", "--store", str(store),
           "--out", str(store.with_suffix(".csv")), "--shard-by", by, "--threads", str(threads),
           "--all-studies"]  # synthetic stripes are no body part: routing would skip them all
    if shard:  # the warm-up: one shard of the studies (the scan still reads every file)
        cmd += ["--shard", shard]
    env = {**env, "OMP_NUM_THREADS": str(threads)}
    before, l0 = uptime(), load1()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=3600)
    wall = time.perf_counter() - t0
    after, l1 = uptime(), load1()
    if proc.returncode:
        raise SystemExit(f"{ranks} rank(s) failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [m.groups() for m in _LINE.finditer(proc.stderr)]
    if len(lines) != ranks:
        raise SystemExit(f"expected {ranks} shard lines, got {len(lines)}:\n{proc.stderr[-3000:]}")
    images = sum(int(g[2]) for g in lines)
    predicted = sum(int(g[4]) for g in lines)
    if predicted != images or any(int(g[5]) for g in lines) or not images:
        raise SystemExit(f"not every image was predicted:\n{proc.stderr[-3000:]}")
    phase = max(float(g[6]) for g in lines)
    return {"ranks": ranks, "threads": threads, "images": images, "shards": [int(g[2]) for g in lines],
            "phase": phase, "wall": wall, "before": before, "after": after, "load": (l0 + l1) / 2}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--size", type=int, default=384, help="PNG side in pixels")
    ap.add_argument("--model", default="region")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--ranks", type=int, default=2, help="the scaled-out run's rank count")
    ap.add_argument("--shard-by", choices=("hash", "index"), default="hash",
                    help="hash (default, as users get it) or index (shard sizes equal within one)")
    ap.add_argument("--with-one-thread", action="store_true",
                    help="also 1 rank x 1 thread (a 2-thread rank on a loaded machine can be far slower)")
    a = ap.parse_args(argv)

    from radview.train import synthetic

    with tempfile.TemporaryDirectory(prefix="radview-bench-ranks-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "RADVIEW_HOME": str(tmp / "home")}
        env.pop("RADVIEW_STORE", None)
        archive = tmp / "archive"
        synthetic.stripes(archive, n_h=a.images // 2, n_v=a.images - a.images // 2, n_checker=0, size=a.size)
        print(f"archive: {a.images} PNGs {a.size}x{a.size}; model {a.model}; {os.cpu_count()} cores; "
              f"shards by {a.shard_by}", flush=True)
        run(1, archive, tmp / "warmup.sqlite", a.model, env, shard="0/8")  # scan index, file cache, model
        configs = [(1, None), (a.ranks, None)] + ([(1, 1)] if a.with_one_thread else [])
        results: dict[tuple, list[dict]] = {c: [] for c in configs}
        for i in range(a.repeat):
            for ranks, threads in configs:
                r = run(ranks, archive, tmp / f"r{ranks}-{threads}-{i}.sqlite", a.model, env, a.shard_by, threads)
                results[(ranks, threads)].append(r)
                print(f"  {ranks} rank(s) x {r['threads']} thread(s): shards {r['shards']}: inference "
                      f"{r['images'] / r['phase']:.1f} img/s ({r['phase']:.2f} s), wall {r['wall']:.2f} s | "
                      f"before: {r['before']} | after: {r['after']}", flush=True)
    med = {k: (statistics.median(r["phase"] for r in v), statistics.median(r["wall"] for r in v))
           for k, v in results.items()}
    loads = [r["load"] for v in results.values() for r in v]
    n = a.images
    print()
    for (ranks, threads), (phase, wall) in med.items():
        t = results[(ranks, threads)][0]["threads"]
        print(f"{ranks} rank(s) x {t} thread(s): {n / phase:.1f} img/s inference, {n / wall:.1f} img/s wall")
    many = med[(a.ranks, None)]
    for key, label in (((1, None), f"1 rank x {max(1, (os.cpu_count() or 1))} threads"), ((1, 1), "1 rank x 1 thread")):
        if key in med:
            one = med[key]
            print(f"ratio {a.ranks} ranks / {label}: {one[0] / many[0]:.2f}x inference phase, "
                  f"{one[1] / many[1]:.2f}x wall (incl. torchrun start, scan, model load, CSV)")
    best = min(v for k, v in med.items() if k[0] == 1)
    print(f"ratio {a.ranks} ranks / the best 1-rank run: {best[0] / many[0]:.2f}x inference phase, "
          f"{best[1] / many[1]:.2f}x wall; 1-min load during the runs {min(loads):.2f}..{max(loads):.2f} "
          f"on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
