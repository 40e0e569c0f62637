"""bench_gui.py's quit case (6): the app, a fresh process, quits while inferring and while
retraining; the time until the window's process is gone and no child process of it is left."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

QUIT_DRIVER = r"""
import os, sys, time
from pathlib import Path
from radview.gui.app import make_app
from radview.gui.main_window import MainWindow
case, folder, model = sys.argv[1], sys.argv[2], sys.argv[3]
app = make_app()
w = MainWindow(); w.resize(1200, 800); w.show(); app.processEvents()
w.start_background(model)
def wait(cond, t):
    end = time.monotonic() + t
    while time.monotonic() < end and not cond():
        app.processEvents(); time.sleep(0.005)
wait(lambda: w.ai.model_info is not None, 300)
if case == "infer":
    w.open_path(folder)
    wait(lambda: len(w.ai.preds) >= 8, 300)
else:
    c = w.retrain_controller
    steps = []
    c.progress.connect(lambda *a: steps.append(a))
    c.start("tiny", folder, epochs=200, freeze_epochs=0)
    wait(lambda: len(steps) >= 3, 300)
print("QUIT", flush=True)
w.close()           # the user closes the window; then what radview.gui.app.run does after exec()
app.quit()
w.shutdown()
w.deleteLater()
app.processEvents()
from radview.gui.app import _exit_now
_exit_now(0)
"""


def _descendants(pid: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def measure_quit(folder: Path, model: str, tmp: Path, env: dict, root: Path) -> dict:
    """Quit while inferring over `folder` and while retraining a tiny model: seconds until the
    window's process is gone and until every child of it is gone, and what is left running."""
    from radview import paths
    from radview.models.manifest import manifest_from_dict, write_manifest
    from radview.train import synthetic

    data = tmp / "quit_train"
    synthetic.stripes(data, n_h=40, n_v=40, n_checker=0, size=32)
    write_manifest(manifest_from_dict(synthetic.tiny_manifest(training={"recipe": {"batch_size": 4}})),
                   paths.user_models_dir() / "tiny")
    out = {}
    for case, arg in (("infer", folder), ("retrain", data)):
        proc = subprocess.Popen([sys.executable, "-c", QUIT_DRIVER, case, str(arg), model], cwd=root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = ""
        while line.strip() != "QUIT":
            line = proc.stdout.readline()
            if not line:
                break
        kids = _descendants(proc.pid)
        t0 = time.perf_counter()
        proc.wait(60)
        gone = time.perf_counter() - t0
        while any(_alive(k) for k in kids) and time.perf_counter() - t0 < 30:
            time.sleep(0.01)
        all_gone = time.perf_counter() - t0
        out[case] = {"children_before": len(kids), "window_process_gone_s": round(gone, 2),
                     "all_children_gone_s": round(all_gone, 2),
                     "left_running": sorted(k for k in kids if _alive(k))}
    return out
