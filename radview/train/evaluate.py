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


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (n,4) x (m,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


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
