"""Vectorised percentile bootstrap of kappa, AUROC, accuracy, sensitivity and specificity.

A resample is held as a row of multiplicities (how often each item was drawn), so one block of
resamples is a (B, n) count matrix built with a single ``bincount``. Every metric of every
resample then comes from array arithmetic on that block: confusion counts by one matrix product,
AUROC by weighted Mann-Whitney sums over the items sorted once by score (ties counted half).
Blocks are small (a few million cells) so that no single numpy call holds the GIL for long,
which keeps a GUI thread responsive while this runs on a worker.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap_metrics", "resample_counts"]

METRICS = ("kappa", "auroc", "accuracy", "sensitivity", "specificity")


@dataclass(frozen=True)
class Interval:
    """A percentile confidence interval; nan bounds when fewer than 2 resamples were defined."""

    low: float
    high: float
    level: float = 0.95
    n_resamples: int = 0
    n_defined: int = 0

    def as_list(self) -> list[float | None]:
        return [_none_if_nan(self.low), _none_if_nan(self.high)]


def _none_if_nan(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def resample_counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """(b, n) float64 multiplicities of b bootstrap resamples of n items."""
    idx = rng.integers(0, n, size=(b, n), dtype=np.int64)
    idx += (np.arange(b, dtype=np.int64) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


class _WeightedAuroc:
    """AUROC of one binary truth vector against one score vector, for many weightings."""

    def __init__(self, positive: np.ndarray, scores: np.ndarray):
        order = np.argsort(scores, kind="mergesort")
        s = scores[order]
        self.order = order
        self.pos = positive[order].astype(np.float64)
        self.starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if s.size else np.zeros(0, int)
        self.has_ties = self.starts.size != s.size

    def __call__(self, w: np.ndarray) -> np.ndarray:
        ws = w[:, self.order]
        p = ws * self.pos
        q = ws - p
        if self.has_ties:
            p = np.add.reduceat(p, self.starts, axis=1)
            q = np.add.reduceat(q, self.starts, axis=1)
        below = np.cumsum(q, axis=1)
        below -= q
        below += 0.5 * q
        num = np.einsum("ij,ij->i", p, below)
        den = p.sum(axis=1) * q.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray,
    n_classes: int,
    positive: int = 1,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int | None = 0,
    block_cells: int = 300_000,
) -> dict[str, Interval]:
    """Percentile CIs of kappa, AUROC, accuracy, sensitivity and specificity.

    y_true, y_pred: (n,) class indices; scores: (n,) positive-class probability for binary
    models or (n, C) probabilities for multiclass (AUROC = macro one-vs-rest); positive: the
    class whose sensitivity is reported (specificity = recall of the rest). Resamples where a
    metric is undefined (e.g. no positives drawn) are left out of that metric's interval.
    """
    y_true = np.asarray(y_true, dtype=np.intp)
    y_pred = np.asarray(y_pred, dtype=np.intp)
    scores = np.asarray(scores, dtype=np.float64)
    n = y_true.size
    empty = {m: Interval(np.nan, np.nan, level, n_resamples, 0) for m in METRICS}
    if n == 0 or n_resamples <= 0:
        return empty
    rng = np.random.default_rng(seed)
    out = {m: np.empty(n_resamples) for m in METRICS}
    if scores.ndim == 1 and n_classes == 2 and _call_follows_score(scores, y_pred):
        _binary_blocks(rng, y_true == positive, y_pred == positive, scores, out, block_cells)
    else:
        _generic_blocks(rng, y_true, y_pred, scores, n_classes, positive, out, block_cells)
    alpha = (1.0 - level) / 2.0
    result = {}
    for m, values in out.items():
        ok = values[~np.isnan(values)]
        if ok.size >= 2:
            lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
            result[m] = Interval(float(lo), float(hi), level, n_resamples, int(ok.size))
        else:
            result[m] = Interval(np.nan, np.nan, level, n_resamples, int(ok.size))
    return result


def _call_follows_score(scores: np.ndarray, y_pred: np.ndarray) -> bool:
    """True when items with equal scores always get the same call (any threshold rule)."""
    order = np.lexsort((y_pred, scores))
    s, c = scores[order], y_pred[order]
    same = s[1:] == s[:-1]
    return not np.any(same & (c[1:] != c[:-1]))


def _binary_blocks(rng, pos: np.ndarray, call: np.ndarray, scores: np.ndarray,
                   out: dict[str, np.ndarray], block_cells: int) -> None:
    """Binary fast path: a resample is counted straight into (score group, truth) cells, so
    AUROC needs no gather or tie merging and the 2x2 counts are dot products with the calls."""
    n = scores.size
    uniq, group = np.unique(scores, return_inverse=True)
    u = uniq.size
    cell = group.astype(np.int64) + pos * np.int64(u)
    group_call = np.zeros(u, dtype=np.int64)
    group_call[group] = call
    block = max(1, min(len(out["kappa"]), block_cells // n))
    total = len(out["kappa"])
    tot = float(n)
    for start in range(0, total, block):
        b = min(block, total - start)
        idx = rng.integers(0, n, size=(b, n), dtype=np.int64)
        key = cell[idx]
        key += (np.arange(b, dtype=np.int64) * (2 * u))[:, None]
        # integer counts throughout (exact; an int64 cumsum is ~7x faster than a float one)
        cnt = np.bincount(key.ravel(), minlength=b * 2 * u).reshape(b, 2, u)
        q = cnt[:, 0, :]
        p = cnt[:, 1, :]
        below2 = np.cumsum(q, axis=1)  # 2 * (negatives below + half the tied ones)
        below2 *= 2
        below2 -= q
        n_pos = p.sum(axis=1).astype(np.float64)
        n_neg = tot - n_pos
        tp = (p @ group_call).astype(np.float64)
        fp = (q @ group_call).astype(np.float64)
        fn = n_pos - tp
        tn = n_neg - fp
        sl = slice(start, start + b)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc_den = n_pos * n_neg
            num = np.einsum("ij,ij->i", p, below2) / 2.0
            out["auroc"][sl] = np.where(auc_den > 0, num / np.where(auc_den > 0, auc_den, 1), np.nan)
            rc = (tp + fp) * n_pos + (fn + tn) * n_neg
            den = tot * tot - rc
            out["kappa"][sl] = np.where(den != 0, (tot * (tp + tn) - rc) / np.where(den != 0, den, 1),
                                        np.nan)
            out["accuracy"][sl] = (tp + tn) / tot
            out["sensitivity"][sl] = np.where(n_pos > 0, tp / np.where(n_pos > 0, n_pos, 1), np.nan)
            out["specificity"][sl] = np.where(n_neg > 0, tn / np.where(n_neg > 0, n_neg, 1), np.nan)


def _generic_blocks(rng, y_true, y_pred, scores, n_classes, positive, out, block_cells) -> None:
    n = y_true.size
    n_resamples = len(out["kappa"])
    c2 = n_classes * n_classes
    onehot = np.zeros((n, c2), dtype=np.float64)
    onehot[np.arange(n), y_true * n_classes + y_pred] = 1.0
    if scores.ndim == 1:
        aucs = [_WeightedAuroc(y_true == positive, scores)]
    else:
        aucs = [_WeightedAuroc(y_true == c, scores[:, c]) for c in range(n_classes)]
    diag = np.arange(n_classes) * (n_classes + 1)
    block = max(1, min(n_resamples, block_cells // max(n, 1)))
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        w = resample_counts(rng, n, b)
        cm = (w @ onehot).reshape(b, n_classes, n_classes)
        tot = float(n)
        tr = cm.reshape(b, c2)[:, diag].sum(axis=1)
        rows = cm.sum(axis=2)
        cols = cm.sum(axis=1)
        rc = (rows * cols).sum(axis=1)
        den = tot * tot - rc
        sl = slice(start, start + b)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["kappa"][sl] = np.where(den != 0, (tot * tr - rc) / np.where(den != 0, den, 1), np.nan)
            out["accuracy"][sl] = tr / tot
            tp = cm[:, positive, positive]
            n_pos = rows[:, positive]
            fp = cols[:, positive] - tp
            n_neg = tot - n_pos
            out["sensitivity"][sl] = np.where(n_pos > 0, tp / np.where(n_pos > 0, n_pos, 1), np.nan)
            out["specificity"][sl] = np.where(n_neg > 0, (n_neg - fp) / np.where(n_neg > 0, n_neg, 1),
                                              np.nan)
        if len(aucs) == 1:
            out["auroc"][sl] = aucs[0](w)
        else:
            per = np.stack([a(w) for a in aucs], axis=1)
            with _quiet_nanmean():
                out["auroc"][sl] = np.nanmean(per, axis=1)


class _quiet_nanmean:
    """nanmean of an all-nan row warns; an all-nan row is simply an undefined resample."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)
