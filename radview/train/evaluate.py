"""Metrics on the locked test split (numpy; the numbers radview.review reports too).

Classifiers are scored per *study* (MURA's rule: mean of the view probabilities; positive when
p > the model's threshold for binary models, argmax otherwise): kappa (Cohen's), accuracy,
macro_kappa (mean one-vs-rest kappa over classes), AUROC (binary). Detectors are scored per
image on "is there a finding" (best box score > threshold) with kappa and accuracy, plus box
recall and precision at IoU >= 0.5 for boxes scoring above the threshold.
`better_or_equal(new, current, metric, tolerance)` is the promotion rule.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from radview.review.detection import box_iou
from radview.review.metrics import accuracy, auroc, cohen_kappa, confusion_matrix


def _num(v: float) -> float | None:
    v = float(v)
    return None if not math.isfinite(v) else round(v, 6)


def classification_metrics(samples: Sequence[Any], indices: Sequence[int], probs: np.ndarray,
                           n_classes: int, threshold: float = 0.5) -> dict[str, Any]:
    by_study: dict[str, list[int]] = defaultdict(list)
    for row, i in enumerate(indices):
        by_study[samples[i].study].append(row)
    truth, mean = [], []
    for study, rows in by_study.items():
        ts = [samples[indices[r]].target for r in rows]
        truth.append(max(set(ts), key=ts.count))
        mean.append(probs[rows].mean(axis=0))
    y = np.asarray(truth, dtype=np.intp)
    p = np.asarray(mean, dtype=np.float64).reshape(len(y), -1)
    if n_classes == 2 and p.shape[1] == 2:
        call = (p[:, 1] > threshold).astype(np.intp)
    else:
        call = np.argmax(p, axis=1).astype(np.intp) if len(p) else np.zeros(0, np.intp)
    cm = confusion_matrix(y, call, n_classes)
    kappas = []
    for c in range(n_classes):
        kappas.append(cohen_kappa((y == c).astype(np.intp), (call == c).astype(np.intp), 2))
    finite = [k for k in kappas if math.isfinite(k)]
    out = {
        "n_studies": int(len(y)), "n_images": int(len(indices)),
        "kappa": _num(cohen_kappa(y, call, n_classes)),
        "accuracy": _num(accuracy(cm)),
        "macro_kappa": _num(np.mean(finite)) if finite else None,
        "confusion": cm.tolist(),
    }
    if n_classes == 2 and p.shape[1] == 2:
        out["auroc"] = _num(auroc(y, p[:, 1]))
    return out


def detection_metrics(truth_boxes: Sequence[np.ndarray], outputs: Sequence[tuple[np.ndarray, np.ndarray]],
                      threshold: float = 0.5) -> dict[str, Any]:
    """truth_boxes: per image (M, 4) xyxy; outputs: per image (boxes (K, 4), scores (K,)), same frame."""
    y = np.asarray([len(t) > 0 for t in truth_boxes], dtype=np.intp)
    best = np.asarray([float(s.max()) if len(s) else 0.0 for _b, s in outputs])
    call = (best > threshold).astype(np.intp)
    tp = n_true = n_pred = 0
    for t, (b, s) in zip(truth_boxes, outputs):
        keep = b[s > threshold] if len(s) else np.zeros((0, 4))
        n_true += len(t)
        n_pred += len(keep)
        iou = box_iou(np.asarray(t, dtype=np.float64).reshape(-1, 4), keep)
        used: set[int] = set()
        for r in range(iou.shape[0]):
            cand = [c for c in np.argsort(-iou[r]) if iou[r, c] >= 0.5 and c not in used]
            if cand:
                used.add(int(cand[0]))
                tp += 1
    cm = confusion_matrix(y, call, 2)
    return {"n_images": int(len(y)), "kappa": _num(cohen_kappa(y, call, 2)), "accuracy": _num(accuracy(cm)),
            "macro_kappa": None, "box_recall50": _num(tp / n_true) if n_true else None,
            "box_precision50": _num(tp / n_pred) if n_pred else None, "confusion": cm.tolist(),
            "auroc": _num(auroc(y, best))}


def metric_value(metrics: dict[str, Any] | None, metric: str) -> float | None:
    if not metrics:
        return None
    v = metrics.get(metric)
    return None if v is None else float(v)


def better_or_equal(new: dict[str, Any], current: dict[str, Any] | None, metric: str,
                    tolerance: float = 0.0) -> tuple[bool, str]:
    """(promote?, why). No current metrics (nothing installed to regress from) promotes; an
    undefined new value (e.g. kappa on a one-class test split) falls back to accuracy."""
    nv, cv = metric_value(new, metric), metric_value(current, metric)
    used = metric
    if (nv is None or cv is None) and current:
        nv, cv, used = metric_value(new, "accuracy"), metric_value(current, "accuracy"), "accuracy"
    if not current or cv is None:
        return True, "no current version to compare with"
    if nv is None:
        return False, f"{metric} of the new version is undefined on the locked test split"
    if nv >= cv - tolerance:
        return True, f"{used} {nv:.4f} >= current {cv:.4f}" + (f" - {tolerance:g}" if tolerance else "")
    return False, f"{used} {nv:.4f} < current {cv:.4f}: regression, kept as a candidate"


# --------------------------------------------------------------------------- promotion

MIN_TEST_ITEMS = 30
N_RESAMPLES = 2000

PROMOTION_RULE = (
    "A new version becomes current only if (1) the locked test split holds at least {min_test} "
    "items (studies for classifiers, images for detectors) and (2) on those items a paired "
    "bootstrap ({n} resamples of the items, seed 0, both versions scored on the same resample) "
    "gives a 95% percentile interval of (new - current) in `{metric}` whose lower bound is at "
    "least -{margin:g}: the test data leave no room for a regression larger than the margin. "
    "McNemar's exact test on the items each version calls right is reported alongside. Without "
    "an installed current version only rule (1) applies.")


def study_scores(samples: Sequence[Any], indices: Sequence[int], probs: np.ndarray
                 ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(study keys, truth per study, mean probabilities per study): what classification_metrics
    scores, in a fixed order, for a paired comparison."""
    by_study: dict[str, list[int]] = defaultdict(list)
    for row, i in enumerate(indices):
        by_study[samples[i].study].append(row)
    keys, truth, mean = [], [], []
    for study in sorted(by_study):
        rows = by_study[study]
        ts = [samples[indices[r]].target for r in rows]
        keys.append(study)
        truth.append(max(set(ts), key=ts.count))
        mean.append(probs[rows].mean(axis=0))
    return keys, np.asarray(truth, dtype=np.intp), np.asarray(mean, dtype=np.float64)


def _metric_of(metric: str, y: np.ndarray, score: np.ndarray, call: np.ndarray, n_classes: int) -> float:
    if metric == "auroc":
        return float(auroc(y, score)) if n_classes == 2 else float("nan")
    if metric == "accuracy":
        return float(np.mean(y == call)) if len(y) else float("nan")
    if metric == "macro_kappa":
        ks = [cohen_kappa((y == c).astype(np.intp), (call == c).astype(np.intp), 2) for c in range(n_classes)]
        ks = [k for k in ks if math.isfinite(k)]
        return float(np.mean(ks)) if ks else float("nan")
    return float(cohen_kappa(y, call, n_classes))


def paired_comparison(y: np.ndarray, new_score: np.ndarray, new_call: np.ndarray, cur_score: np.ndarray,
                      cur_call: np.ndarray, metric: str, n_classes: int, n_resamples: int = N_RESAMPLES,
                      seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of (new - current) in `metric` over the same items, and McNemar's exact
    test on right/wrong calls. score: positive-class probability (binary) or calls; call: the
    class called per item."""
    y = np.asarray(y, dtype=np.intp)
    n = len(y)
    diff = _metric_of(metric, y, new_score, new_call, n_classes) - _metric_of(metric, y, cur_score, cur_call,
                                                                                 n_classes)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        d = (_metric_of(metric, y[idx], new_score[idx], new_call[idx], n_classes)
             - _metric_of(metric, y[idx], cur_score[idx], cur_call[idx], n_classes))
        if math.isfinite(d):
            diffs.append(d)
    lo, hi = (float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))) if diffs else (math.nan, math.nan)
    new_right, cur_right = new_call == y, cur_call == y
    b = int(np.sum(new_right & ~cur_right))   # only the new version right
    c = int(np.sum(~new_right & cur_right))   # only the current one right
    return {"metric": metric, "n": n, "diff": _num(diff), "ci_low": _num(lo), "ci_high": _num(hi),
            "n_resamples": n_resamples, "valid_resamples": len(diffs), "mcnemar_new_only": b,
            "mcnemar_current_only": c, "mcnemar_p": _num(_mcnemar_exact(b, c))}


def _mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact binomial McNemar p-value."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def promotion_decision(n_test: int, comparison: dict[str, Any] | None, metric: str, margin: float = 0.0,
                       min_test: int = MIN_TEST_ITEMS) -> tuple[bool, str]:
    """(promote?, why) by PROMOTION_RULE. comparison: paired_comparison's result, None when there
    is no current version to compare with."""
    if n_test < min_test:
        return False, (f"the locked test split has {n_test} items; promotion needs at least {min_test} "
                       "(add labelled data or raise test_fraction): kept as a candidate")
    if comparison is None:
        return True, f"no current version to compare with; {n_test} locked test items"
    lo, d, hi = comparison.get("ci_low"), comparison.get("diff"), comparison.get("ci_high")
    if lo is None or d is None:
        return False, f"{metric} is undefined on the locked test split (one class only?): kept as a candidate"
    text = f"{metric} new - current = {d:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}, n={comparison['n']})"
    if lo >= -margin:
        return True, f"{text}: lower bound >= -{margin:g}"
    return False, f"{text}: lower bound < -{margin:g}, a possible regression: kept as a candidate"
