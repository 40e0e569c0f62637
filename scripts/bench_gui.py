#!/usr/bin/env python
"""GUI benchmarks, all measured in one run (ratios against baselines of the same run).

1. Start-up: process start -> main window painted, radview vs a bare PySide6 QMainWindow
   (fresh interpreters, median of --repeat runs).                       target <= 1.5x
2. Event-loop stall: a 10 ms QTimer heartbeat on the GUI thread while the model executor runs
   inference over --images generated images (from the end of the folder scan until the last
   prediction) and Grad-CAM for each study the "user" steps to (one step every --step-ms,
   default 60 ms, as when holding the Down key).          targets max <= 50 ms, p99 <= 20 ms
3. Memory: RSS after browsing through --studies generated studies (MURA layout, one view
   each: frame decode, display, thumbnails, browser selection for every study). target <= 1.5 GB

Model: the bundled model when one is installed (--model NAME to choose), else a random-weight
EfficientNet-Lite0 at 224x224 made for the run (same cost as a real one).
Usage: .venv/bin/python scripts/bench_gui.py [--images 500] [--studies 10000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE = r"""
import time, sys
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow(); w.resize(1440, 900); w.show(); app.processEvents()
print(time.time())
"""

RADVIEW = r"""
import time, sys
from radview.gui.app import make_app
from radview.gui.main_window import MainWindow
app = make_app()
w = MainWindow(deferred=True); w.resize(1440, 900); w.show(); app.processEvents()
t = time.time()
print(t, 'torch' in sys.modules)
"""


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def bench_startup(repeat: int, env: dict, tmp: Path) -> dict:
    def once(code: str) -> tuple[float, str]:
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True).stdout.split()
        return float(out[0]) - t0, " ".join(out[1:])

    # Both sides start from compiled bytecode, as an installed app does (a private pycache).
    env = dict(env, PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    once(BARE)
    once(RADVIEW)
    bare, rad, extra = [], [], ""
    for _ in range(repeat):
        bare.append(once(BARE)[0])
        t, extra = once(RADVIEW)
        rad.append(t)
    b, r = statistics.median(bare), statistics.median(rad)
    return {"bare_s": round(b, 3), "radview_s": round(r, 3), "ratio": round(r / b, 2),
            "torch_imported_at_paint": extra == "True"}


def make_model(home: Path, size: int) -> str:
    import torch

    from radview.models import arch
    from radview.models.manifest import sha256_file

    folder = home / "models" / "bench-lite0"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(arch.build("efficientnet_lite0", 1, "binary").state_dict(), folder / "weights.pt")
    manifest = {"format": 1, "name": "bench-lite0", "version": "1", "task": "binary",
                "classes": ["normal", "abnormal"], "arch": "efficientnet_lite0",
                "input": {"size": [size, size], "channels": 3},
                "weights": {"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return "bench-lite0"


def make_images(root: Path, n: int, size: int, layout: str) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size), dtype=np.uint8)
    for i in range(n):
        img = np.roll(base, i, axis=1)
        if layout == "mura":
            p = root / "XR_WRIST" / f"patient{i:05d}" / "study1_negative" / "image1.png"
        else:
            p = root / f"img{i:05d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p, compress_level=1)
    return root


def _window(model: str | None):
    from radview.gui.app import make_app
    from radview.gui.main_window import MainWindow

    app = make_app()
    w = MainWindow()
    w.resize(1440, 900)
    w.show()
    app.processEvents()
    w.start_background(model)
    return app, w


def _wait(app, cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.002)
    return False


def bench_stall(n_images: int, model: str, tmp: Path, step_ms: int = 60) -> dict:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    folder = make_images(tmp / "stall", n_images, 256, "flat")
    app, w = _window(model)
    _wait(app, lambda: w.ai.model_info is not None or w.ai.load_failed, 300)
    if w.ai.model_info is None:
        raise SystemExit(f"model {model} did not load: {w.ai_panel.model_state.text()}")
    cams = []
    w.executor.camReady.connect(lambda *a: cams.append(1))
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def beat():
        now = clock.nsecsElapsed()
        lateness.append(max(0.0, (now - last[0]) / 1e6 - 10.0))
        last[0] = now

    timer = QTimer()
    timer.setTimerType(__import__("PySide6.QtCore", fromlist=["Qt"]).Qt.TimerType.PreciseTimer)
    timer.timeout.connect(beat)
    stepper = QTimer()
    stepper.timeout.connect(lambda: w.step_study(1))
    opened = []
    w.scanFinished.connect(opened.append)
    w.open_path(str(folder))  # the scan itself is not measured: inference starts when it ends
    _wait(app, lambda: bool(opened), 300)
    t0 = time.perf_counter()
    last[0] = clock.nsecsElapsed()
    timer.start(10)
    if step_ms > 0:
        stepper.start(step_ms)
    loop = QEventLoop()
    check = QTimer()
    check.timeout.connect(lambda: loop.quit() if len(w.ai.study_preds) >= n_images
                          or time.perf_counter() - t0 > 900 else None)
    check.start(50)
    loop.exec()
    for t in (timer, stepper, check):
        t.stop()
    elapsed = time.perf_counter() - t0
    w.shutdown()
    w.close()
    app.processEvents()
    lat = sorted(lateness)
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
    return {"images": n_images, "predicted": len(w.ai.study_preds), "cams": len(cams),
            "seconds": round(elapsed, 1), "beats": len(lat), "max_ms": round(lat[-1], 1),
            "p99_ms": round(p99, 1), "mean_ms": round(statistics.mean(lat), 2)}


def bench_memory(n_studies: int, model: str | None, tmp: Path) -> dict:
    folder = make_images(tmp / "mem" / "MURA-v1.1" / "valid", n_studies, 64, "mura")
    app, w = _window(model)
    rss0 = _rss_mb()
    done = []
    w.scanFinished.connect(lambda r: done.append(r))
    t0 = time.perf_counter()
    w.open_path(str(folder.parent.parent))
    _wait(app, lambda: bool(done), 600)
    scan_s = time.perf_counter() - t0
    n = len(done[0].studies)
    if model:
        _wait(app, lambda: w.ai.model_info is not None, 300)
    rss_open = _rss_mb()
    t1 = time.perf_counter()
    for i in range(n - 1):
        w.step_study(1)
        app.processEvents()
        if i % 200 == 0:  # let the io threads deliver (frames, thumbnails), as a user would
            _wait(app, lambda: w.frames.queue.pending() == 0, 5)
    browse_s = time.perf_counter() - t1
    _wait(app, lambda: False, 1.0)
    rss = _rss_mb()
    w.shutdown()
    w.close()
    app.processEvents()
    return {"studies": n, "scan_s": round(scan_s, 1), "browse_s": round(browse_s, 1),
            "rss_start_mb": round(rss0), "rss_opened_mb": round(rss_open), "rss_after_browsing_mb": round(rss),
            "frame_cache_mb": round(w.frames.bytes / 2**20, 1), "thumb_cache_mb": round(w.thumbnails.bytes / 2**20, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--studies", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default=None)
    ap.add_argument("--step-ms", type=int, default=60, help="stall: move to the next study every N ms (0: never)")
    ap.add_argument("--only", choices=("startup", "stall", "memory"), action="append")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="bench_gui_") as d:
        tmp = Path(d)
        os.environ["RADVIEW_HOME"] = str(tmp / "home")
        env = dict(os.environ)
        only = set(args.only or ("startup", "stall", "memory"))
        results = {}
        if "startup" in only:
            s = results["startup"] = bench_startup(args.repeat, env, tmp)
            print(f"start-up to painted window: bare PySide6 {s['bare_s']:.2f} s, radview {s['radview_s']:.2f} s "
                  f"-> {s['ratio']:.2f}x (target <= 1.5x); torch imported before paint: {s['torch_imported_at_paint']}",
                  flush=True)
        model = args.model
        if model is None and ({"stall", "memory"} & only):
            from radview import paths
            from radview.models.registry import list_models

            bundled = [m.name for m in list_models() if m.source == "bundled" and m.installed]
            model = bundled[0] if bundled else make_model(paths.user_home(), 224)
            print(f"model: {model}", flush=True)
        if "stall" in only:
            s = results["stall"] = bench_stall(args.images, model, tmp, args.step_ms)
            print(f"event loop while inferring {s['predicted']}/{s['images']} images + {s['cams']} Grad-CAMs "
                  f"in {s['seconds']} s: heartbeat lateness max {s['max_ms']} ms (target <= 50), "
                  f"p99 {s['p99_ms']} ms (target <= 20), mean {s['mean_ms']} ms over {s['beats']} beats",
                  flush=True)
        if "memory" in only:
            s = results["memory"] = bench_memory(args.studies, model, tmp)
            print(f"memory: {s['studies']} studies scanned in {s['scan_s']} s, browsed in {s['browse_s']} s; "
                  f"RSS {s['rss_start_mb']} MB at start, {s['rss_opened_mb']} MB opened, "
                  f"{s['rss_after_browsing_mb']} MB after browsing (target <= 1536 MB)", flush=True)
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # skip interpreter teardown of Qt objects left by the benchmarks
