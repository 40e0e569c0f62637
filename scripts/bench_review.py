#!/usr/bin/env python
"""Benchmark: review of 10,000 cached study predictions (generated) with every metric and
bootstrap 95% CIs (1,000 resamples), overall and per study type. Target: <= 1 s.

Baselines measured in the same run:
  - scikit-learn's cohen_kappa_score + roc_auc_score + confusion_matrix once (point estimates
    only, no CI, no per-group figures);
  - a naive bootstrap loop calling scikit-learn per resample (timed on 100 resamples and
    scaled to 1,000), the way a CI is usually computed.

Panel responsiveness (skip with --no-gui): the review panel (offscreen) reviews the same 10,000
studies on its worker while a 5 ms QTimer heartbeat measures how late the GUI event loop runs;
target: max stall <= 50 ms. Baseline in the same run: the same review computed on the GUI
thread (what the heartbeat would see without the worker).

Usage: .venv/bin/python scripts/bench_review.py [--studies 10000] [--resamples 1000] [--repeat 3]
       [--no-gui]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from radview.review import build_review, summarize  # noqa: E402
from radview.review.synthetic import synthetic_studies  # noqa: E402


def best_of(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=10_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-gui", action="store_true", help="skip the panel responsiveness part")
    ap.add_argument("--no-label-issues", action="store_true",
                    help="skip the label-issues part (issue 17)")
    args = ap.parse_args(argv)

    preds, truths = synthetic_studies(args.studies, seed=0)
    n_images = sum(len(p.views) for p in preds)
    print(f"{args.studies} studies, {n_images} views, {args.resamples} bootstrap resamples, "
          f"7 study types")

    def review():
        data = build_review(preds, truths, threshold=0.5)
        return summarize(data, top_k=16, n_resamples=args.resamples, seed=0)

    t_review, summary = best_of(review, args.repeat)
    data = build_review(preds, truths, threshold=0.5)
    t_build, _ = best_of(lambda: build_review(preds, truths, threshold=0.5), args.repeat)
    t_summary, _ = best_of(lambda: summarize(data, top_k=16, n_resamples=args.resamples),
                           args.repeat)
    m = summary.metrics

    from sklearn.metrics import cohen_kappa_score, confusion_matrix, roc_auc_score

    y = data.y_true
    p1 = data.probs[:, 1]
    call = (p1 > 0.5).astype(int)

    def sk_once():
        return (cohen_kappa_score(y, call), roc_auc_score(y, p1), confusion_matrix(y, call))

    t_sk, (k_sk, a_sk, _) = best_of(sk_once, args.repeat)
    assert abs(k_sk - m.kappa) < 1e-9 and abs(a_sk - m.auroc) < 1e-9, "metrics disagree with sklearn"

    rng = np.random.default_rng(0)
    n_loop = 100
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_loop):
            idx = rng.integers(0, y.size, y.size)
            cohen_kappa_score(y[idx], call[idx])
            roc_auc_score(y[idx], p1[idx])
    t_loop = (time.perf_counter() - t) * args.resamples / n_loop

    print(f"kappa {m.kappa:.4f} [{m.ci['kappa'].low:.4f}, {m.ci['kappa'].high:.4f}]  "
          f"AUROC {m.auroc:.4f} [{m.ci['auroc'].low:.4f}, {m.ci['auroc'].high:.4f}]  "
          f"groups {len(summary.per_group)}")
    print(f"radview review (build + all metrics + CIs overall and per group): {t_review * 1000:8.1f} ms"
          f"  (build {t_build * 1000:.1f} ms, metrics {t_summary * 1000:.1f} ms)"
          f"  target <= 1000 ms: {'OK' if t_review <= 1.0 else 'MISSED'}")
    print(f"baseline sklearn kappa+AUROC+confusion once (no CI):          {t_sk * 1000:8.1f} ms"
          f"  ratio radview/baseline = {t_review / t_sk:.1f}x")
    print(f"baseline naive sklearn bootstrap loop, overall only (scaled): {t_loop * 1000:8.1f} ms"
          f"  radview is {t_loop / t_review:.1f}x faster while doing 8x the CIs")
    ok = t_review <= 1.0
    if not args.no_label_issues:
        ok = bench_label_issues(args.studies, args.repeat) and ok
    if not args.no_gui:
        ok = bench_panel(data, args.resamples) and ok
    return 0 if ok else 1


def bench_label_issues(n: int, repeat: int) -> bool:
    """Label issues (issue 17) for n studies of 1-4 views with 1,280-d features in the feature
    cache (SQLite, as `radview review --label-issues` reads them): read + 5 grouped folds +
    confident learning + ranking. Target <= 5 s. Baseline in the same run: scikit-learn's
    cross_val_predict of a LogisticRegression on the study-mean features (5 grouped folds,
    no confident learning, no views)."""
    import tempfile

    from radview.models.model_features import ModelFeatureCache
    from radview.review.label_issues import find_label_issues, study_means

    rng = np.random.default_rng(0)
    views = rng.integers(1, 5, n)
    owner = np.repeat(np.arange(n), views)
    y = rng.integers(0, 2, n)
    centre = rng.normal(size=(2, 1280)).astype(np.float32) * 0.08
    x = centre[y[owner]] + rng.normal(size=(len(owner), 1280)).astype(np.float32)
    flip = rng.choice(n, n // 20, replace=False)
    given_y = y.copy()
    given_y[flip] = 1 - given_y[flip]
    given = list(np.asarray(["normal", "abnormal"], dtype=object)[given_y])
    keys = [f"/site/patient{i // 2:05d}/study{i % 2}" for i in range(n)]
    image_keys = [f"{keys[s]}/image{j}.png" for s in range(n) for j in range(views[s])]
    with tempfile.TemporaryDirectory() as tmp:
        cache = ModelFeatureCache(os.path.join(tmp, "features.sqlite"))
        cache.put("bench|1|sha", ((k, "1:1", v) for k, v in zip(image_keys, x)))
        idents = [(k, "1:1") for k in image_keys]

        def run():
            got = cache.get("bench|1|sha", idents)
            rows = np.stack([got[k] for k in image_keys])
            return find_label_issues(rows, owner, given, keys,
                                     groups=[k.rsplit("/", 1)[0] for k in keys])

        t_all, rep = best_of(run, repeat)
        t_read, _ = best_of(lambda: cache.get("bench|1|sha", idents), repeat)
        cache.close()
    found = len(set(flip.tolist()) & {keys.index(r.key) for r in rep.issues[:2 * len(flip)]})

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict

    xs = study_means(x, owner, n)

    def sk():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cross_val_predict(LogisticRegression(max_iter=200), xs, given_y,
                                     groups=np.arange(n) // 2, cv=GroupKFold(5),
                                     method="predict_proba")

    t_sk, _ = best_of(sk, repeat)
    print(f"label issues: {n} studies, {len(owner)} images x 1280 features from the cache: "
          f"{t_all * 1000:.0f} ms (cache read {t_read * 1000:.0f} ms), target <= 5000 ms: "
          f"{'OK' if t_all <= 5.0 else 'MISSED'}; {len(rep.issues)} flagged, {found} of "
          f"{len(flip)} flipped labels among them")
    print(f"baseline sklearn cross_val_predict LogisticRegression (study means, no CL): "
          f"{t_sk * 1000:.0f} ms  ratio radview/baseline = {t_all / t_sk:.2f}x")
    return t_all <= 5.0


def bench_panel(data, resamples: int) -> bool:
    """Heartbeat lateness while the panel computes the review on its worker."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from radview.gui.widgets.review_panel import ReviewPanel

    app = QApplication.instance() or QApplication([])
    panel = ReviewPanel(n_resamples=resamples, load_images=False)
    panel.resize(1200, 800)
    panel.show()
    app.processEvents()

    def measure(start) -> list[float]:
        late: list[float] = []
        clock = QElapsedTimer()
        timer = QTimer()
        timer.setInterval(5)
        state = {"last": None, "done": False}

        def beat():
            now = clock.elapsed()
            if state["last"] is not None:
                late.append(max(0.0, now - state["last"] - 5))
            state["last"] = now

        def finished(_s=None):
            state["done"] = True

        timer.timeout.connect(beat)
        panel.summaryChanged.connect(finished)
        clock.start()
        timer.start()
        QTimer.singleShot(20, start)  # starts inside the event loop, between heartbeats
        while not state["done"]:
            app.processEvents()
            time.sleep(0.0005)
        # a few more beats so that a stall while showing the result is counted too
        end = clock.elapsed() + 100
        while clock.elapsed() < end:
            app.processEvents()
            time.sleep(0.0005)
        timer.stop()
        panel.summaryChanged.disconnect(finished)
        return late

    t = time.perf_counter()
    late = measure(lambda: panel.set_review(data))
    t_panel = time.perf_counter() - t

    def on_gui_thread():  # the baseline: compute where the heartbeat runs
        s = summarize(data, top_k=12, n_resamples=resamples)
        panel.summaryChanged.emit(s)

    late_base = measure(on_gui_thread)
    panel.shutdown()
    panel.close()
    mx, p99 = max(late), float(np.percentile(late, 99))
    mxb = max(late_base)
    print(f"panel: review of {len(data)} studies shown after {t_panel * 1000:.0f} ms; event-loop "
          f"stall max {mx:.0f} ms, p99 {p99:.0f} ms (target max <= 50 ms: "
          f"{'OK' if mx <= 50 else 'MISSED'})")
    print(f"baseline same review on the GUI thread: stall max {mxb:.0f} ms"
          f"  ratio worker/baseline = {mx / max(mxb, 1e-9):.2f}x")
    return mx <= 50


if __name__ == "__main__":
    raise SystemExit(main())
