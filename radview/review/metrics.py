"""Classification metrics on plain arrays: confusion matrix, accuracy, Cohen's kappa, AUROC,
sensitivity/specificity, ROC curve and a vectorised threshold sweep.

numpy only; every function returns data. Undefined values are ``nan`` (never an exception):
kappa when chance agreement is total (one class in both truth and call, or no items), AUROC when
the truth holds one class only, sensitivity with no positives, specificity with no negatives.

Decision rule of a binary model everywhere in radview.review: positive when ``p > threshold``,
the rule of radview.models.engine (MURA: abnormal if the mean probability > 0.5); see
:func:`binary_call`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "binary_call",
    "confusion_matrix",
    "accuracy",
    "cohen_kappa",
    "kappa_from_confusion",
    "auroc",
    "auroc_ovr",
    "sensitivity_specificity",
    "roc_curve",
    "ThresholdSweep",
    "threshold_sweep",
]


def binary_call(p_positive: np.ndarray, threshold: float) -> np.ndarray:
    """The binary decision: 1 where the positive-class probability exceeds the threshold."""
    return (np.asarray(p_positive, dtype=np.float64) > threshold).astype(np.intp)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts; rows are the truth, columns the call (scikit-learn's convention)."""
    y_true = np.asarray(y_true, dtype=np.intp)
    y_pred = np.asarray(y_pred, dtype=np.intp)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0
                        or max(y_true.max(), y_pred.max()) >= n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes})")
    codes = y_true * n_classes + y_pred
    return np.bincount(codes, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(cm: np.ndarray) -> np.ndarray | float:
    """Fraction on the diagonal; works on (C, C) or stacked (..., C, C) matrices."""
    cm = np.asarray(cm)
    n = cm.sum(axis=(-2, -1))
    tr = np.trace(cm, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, tr / np.where(n > 0, n, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def kappa_from_confusion(cm: np.ndarray) -> np.ndarray | float:
    """Cohen's kappa of (C, C) or stacked (..., C, C) count matrices, in exact integer
    arithmetic up to the final division: (n*trace - sum(rows*cols)) / (n*n - sum(rows*cols))."""
    cm = np.asarray(cm)
    cm = cm.astype(np.int64) if np.issubdtype(cm.dtype, np.integer) else cm.astype(np.float64)
    n = cm.sum(axis=(-2, -1))
    tr = np.trace(cm, axis1=-2, axis2=-1)
    rc = (cm.sum(axis=-1) * cm.sum(axis=-2)).sum(axis=-1)
    num = n * tr - rc
    den = n * n - rc
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def cohen_kappa(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted Cohen's kappa of two label vectors (class indices)."""
    y_true = np.asarray(y_true, dtype=np.intp)
    y_pred = np.asarray(y_pred, dtype=np.intp)
    if n_classes is None:
        n_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if n_classes == 0:
        return float("nan")
    return float(kappa_from_confusion(confusion_matrix(y_true, y_pred, n_classes)))


def auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of binary truth (0/1 or bool) against scores, ties counted
    half (Mann-Whitney U / (n1 n0)), equal to scikit-learn's roc_auc_score. nan when the
    truth holds one class only."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    pos = y[order].astype(np.float64)
    # group ties: start index of each run of equal scores
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    p = np.add.reduceat(pos, starts)
    neg = np.add.reduceat(1.0 - pos, starts)
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(p * (neg_below + 0.5 * neg)) / (n1 * n0))


def auroc_ovr(y_true: np.ndarray, probs: np.ndarray) -> tuple[float, np.ndarray]:
    """One-vs-rest AUROC per class and their macro mean (over classes where it is defined;
    nan when none is). For two classes the macro mean is the positive class's AUROC."""
    y_true = np.asarray(y_true, dtype=np.intp)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1]
    if n_classes == 2:
        a = auroc(y_true == 1, probs[:, 1])
        return a, np.array([a, a])
    per = np.array([auroc(y_true == c, probs[:, c]) for c in range(n_classes)])
    ok = ~np.isnan(per)
    return (float(per[ok].mean()) if ok.any() else float("nan")), per


def sensitivity_specificity(cm: np.ndarray, positive: int = 1) -> tuple[float, float]:
    """Sensitivity (recall of `positive`) and specificity (recall of every other class taken
    together) from a (C, C) confusion matrix; nan where a side has no items."""
    cm = np.asarray(cm)
    tp = cm[positive, positive]
    fn = cm[positive].sum() - tp
    fp = cm[:, positive].sum() - tp
    tn = cm.sum() - tp - fn - fp
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return float(sens), float(spec)


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score plus one, from (0, 0) (threshold =
    the highest score: nothing exceeds it) to (1, 1) (threshold -inf). Rates are nan when a
    side has no items."""
    sw = threshold_sweep(y_true, scores)
    return 1.0 - sw.specificity, sw.sensitivity, sw.thresholds


@dataclass(frozen=True)
class ThresholdSweep:
    """Counts and rates at every threshold that changes a call, under the rule positive if
    p > threshold: thresholds are the distinct scores descending (at the highest, nothing is
    positive), then -inf (everything positive). All arrays have the same length."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    kappa: np.ndarray
    accuracy: np.ndarray

    def __len__(self) -> int:
        return int(self.thresholds.size)

    @property
    def youden(self) -> np.ndarray:
        return self.sensitivity + self.specificity - 1.0

    def index_at(self, threshold: float) -> int:
        """Index of the point whose calls equal those made at `threshold` (p > threshold)."""
        # thresholds descend; the point wanted is the first one with thresholds[i] <= threshold
        asc = self.thresholds[::-1]
        j = int(np.searchsorted(asc, threshold, side="right")) - 1  # last asc <= threshold
        return min(max(0, self.thresholds.size - 1 - j), self.thresholds.size - 1)

    def at(self, threshold: float) -> dict[str, float]:
        """Sensitivity, specificity, kappa, accuracy and counts at any threshold (O(log n))."""
        i = self.index_at(threshold)
        return {
            "threshold": float(threshold),
            "sensitivity": float(self.sensitivity[i]),
            "specificity": float(self.specificity[i]),
            "kappa": float(self.kappa[i]),
            "accuracy": float(self.accuracy[i]),
            "tp": int(self.tp[i]), "fp": int(self.fp[i]),
            "fn": int(self.fn[i]), "tn": int(self.tn[i]),
        }

    def best(self, criterion: str = "youden") -> float:
        """The threshold maximising `criterion` ('youden', 'kappa' or 'accuracy'): the
        midpoint of the interval of thresholds giving those calls, so that they are stable."""
        values = {"youden": self.youden, "kappa": self.kappa, "accuracy": self.accuracy}[criterion]
        if self.thresholds.size <= 1 or np.all(np.isnan(values)):
            return float("nan")
        i = int(np.nanargmax(values))
        lo = self.thresholds[i]          # p > lo gives these calls ...
        if i == 0:
            return float(lo)             # ... nothing positive: the highest score itself
        hi = self.thresholds[i - 1]      # ... for every threshold in [lo, hi)
        if not np.isfinite(lo):
            return float(np.nextafter(hi, -np.inf))
        return float((lo + hi) / 2.0)

    def as_dict(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for name in ("thresholds", "sensitivity", "specificity", "kappa", "accuracy",
                     "tp", "fp", "fn", "tn"):
            arr = getattr(self, name)
            out[name] = [None if (isinstance(v, float) and not np.isfinite(v)) else v
                         for v in arr.tolist()]
        return out


def threshold_sweep(y_true: np.ndarray, scores: np.ndarray) -> ThresholdSweep:
    """Sensitivity, specificity, kappa and accuracy at every distinct threshold in O(n log n)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"y_true {y.shape} and scores {s.shape} differ in shape")
    order = np.argsort(-s, kind="mergesort")
    s_desc = s[order]
    y_desc = y[order]
    # last index of each run of equal scores: all items >= that score are positive there
    if s_desc.size:
        ends = np.flatnonzero(np.r_[s_desc[1:] != s_desc[:-1], True])
    else:
        ends = np.zeros(0, dtype=np.intp)
    ctp = np.cumsum(y_desc, dtype=np.int64)
    cfp = np.cumsum(~y_desc, dtype=np.int64)
    tp = np.r_[0, ctp[ends]].astype(np.int64)
    fp = np.r_[0, cfp[ends]].astype(np.int64)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    fn = n_pos - tp
    tn = n_neg - fp
    thresholds = np.r_[s_desc[ends], -np.inf]
    n = y.size
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
        spec = tn / n_neg if n_neg else np.full(tp.shape, np.nan)
        acc = (tp + tn) / n if n else np.full(tp.shape, np.nan)
        # kappa from the 2x2 counts, exact integers up to the division
        rc = (tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)
        num = n * (tp + tn) - rc
        den = n * n - rc
        kappa = np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)
    return ThresholdSweep(thresholds, tp, fp, fn, tn, np.asarray(sens, dtype=np.float64),
                          np.asarray(spec, dtype=np.float64), kappa.astype(np.float64),
                          np.asarray(acc, dtype=np.float64))
