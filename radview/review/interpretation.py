"""fastai's ClassificationInterpretation at study level: top_losses, confusion_matrix,
most_confused, and the metrics a radiologist reads, overall and per study type or class.

Returns data only (frozen dataclasses, numpy arrays); the GUI and the report draw them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from radview.review import metrics as M
from radview.review.bootstrap import Interval, bootstrap_metrics
from radview.review.data import ReviewSet

__all__ = ["Interpretation", "Metrics", "TopLoss", "ViewLoss", "ConfusedPair", "ClassMetrics"]

_NAN_INTERVAL = Interval(float("nan"), float("nan"), 0.95, 0, 0)


@dataclass(frozen=True)
class Metrics:
    """Metrics of a set of studies. For binary models sensitivity/specificity are at the
    threshold for the positive class (classes[1]); for multiclass they are the macro means of
    the one-vs-rest values and AUROC is the macro one-vs-rest AUROC. ci: 95% bootstrap
    intervals by metric name (empty when not computed)."""

    n: int
    accuracy: float
    kappa: float
    auroc: float
    sensitivity: float
    specificity: float
    threshold: float | None
    n_positive: int = 0
    ci: dict[str, Interval] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        out = {"n": self.n, "n_positive": self.n_positive, "threshold": self.threshold}
        for name in ("accuracy", "kappa", "auroc", "sensitivity", "specificity"):
            out[name] = _num(getattr(self, name))
            if name in self.ci:
                out[f"{name}_ci"] = self.ci[name].as_list()
        return out


@dataclass(frozen=True)
class ClassMetrics:
    """One class against the rest: its recall (sensitivity), specificity, precision, AUROC."""

    name: str
    n: int
    sensitivity: float
    specificity: float
    precision: float
    auroc: float

    def as_dict(self) -> dict:
        return {"class": self.name, "n": self.n, "sensitivity": _num(self.sensitivity),
                "specificity": _num(self.specificity), "precision": _num(self.precision),
                "auroc": _num(self.auroc)}


@dataclass(frozen=True)
class ViewLoss:
    ref: str
    actual: str
    predicted: str
    probability: float
    loss: float


@dataclass(frozen=True)
class TopLoss:
    """A study with its loss: `probability` is what the model gave the *actual* class
    (fastai's plot_top_losses shows prediction/actual/loss/probability), `p_predicted` what it
    gave its call; views carry their own losses for the thumbnail grid."""

    rank: int
    study_key: str
    study_type: str
    actual: str
    predicted: str
    probability: float
    p_predicted: float
    loss: float
    corrected: bool = False
    reader: str = ""
    in_domain: bool = True
    views: tuple[ViewLoss, ...] = ()

    def as_dict(self) -> dict:
        return {"rank": self.rank, "study": self.study_key, "study_type": self.study_type,
                "actual": self.actual, "predicted": self.predicted,
                "probability": self.probability, "p_predicted": self.p_predicted,
                "loss": self.loss, "corrected": self.corrected, "reader": self.reader,
                "in_domain": self.in_domain,
                "views": [{"ref": v.ref, "predicted": v.predicted, "probability": v.probability,
                           "loss": v.loss} for v in self.views]}


@dataclass(frozen=True)
class ConfusedPair:
    actual: str
    predicted: str
    count: int

    def as_dict(self) -> dict:
        return {"actual": self.actual, "predicted": self.predicted, "count": self.count}


def _num(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


class Interpretation:
    """Review of one model over a ReviewSet. Cheap to build; metrics with CIs cost ~0.1 s per
    10,000 studies and 1,000 resamples, so callers on a GUI thread run them on a worker."""

    def __init__(self, data: ReviewSet):
        self.data = data
        self._losses = data.losses
        self._y_pred = data.y_pred

    # ------------------------------------------------------------------ basics
    @property
    def classes(self) -> tuple[str, ...]:
        return self.data.classes

    @property
    def losses(self) -> np.ndarray:
        """Study losses aligned with data.keys."""
        return self._losses

    @property
    def y_pred(self) -> np.ndarray:
        return self._y_pred

    def __len__(self) -> int:
        return len(self.data)

    def with_threshold(self, threshold: float, source: str = "given") -> Interpretation:
        return Interpretation(self.data.with_threshold(threshold, source))

    def filter(self, actual: str | None = None, predicted: str | None = None,
               study_type: str | None = None, reader: str | None = None,
               corrected: bool | None = None, keys=None) -> Interpretation:
        """The studies matching every given criterion (None = any)."""
        d = self.data
        mask = np.ones(len(d), dtype=bool)
        if actual is not None:
            mask &= d.y_true == self.classes.index(actual)
        if predicted is not None:
            mask &= self._y_pred == self.classes.index(predicted)
        if study_type is not None:
            mask &= d.study_types == study_type
        if reader is not None:
            mask &= d.readers == reader
        if corrected is not None:
            mask &= d.corrected == corrected
        if keys is not None:
            wanted = set(keys)
            mask &= np.fromiter((k in wanted for k in d.keys), bool, len(d))
        return Interpretation(d.subset(mask))

    # ------------------------------------------------------------------ fastai's trio
    def top_losses(self, k: int | None = None, largest: bool = True) -> tuple[TopLoss, ...]:
        """The k studies with the largest (or smallest) loss, ties broken by study key."""
        d = self.data
        n = len(d)
        if n == 0:
            return ()
        k = n if k is None else max(0, min(int(k), n))
        keyrank = np.argsort(np.array(d.keys, dtype=object), kind="stable")
        tiebreak = np.empty(n, dtype=np.intp)
        tiebreak[keyrank] = np.arange(n)
        primary = -self._losses if largest else self._losses
        if k < n // 4:  # partial selection first, then an exact ordering of the few
            cand = np.argpartition(primary, k - 1)[:k] if k else np.zeros(0, int)
            cut = primary[cand].max() if k else None
            cand = np.flatnonzero(primary <= cut) if k else cand
        else:
            cand = np.arange(n)
        order = cand[np.lexsort((tiebreak[cand], primary[cand]))][:k]
        return tuple(self._top_loss(rank, int(i)) for rank, i in enumerate(order, 1))

    def _top_loss(self, rank: int, i: int) -> TopLoss:
        d = self.data
        c = d.classes
        yi, pi = int(d.y_true[i]), int(self._y_pred[i])
        views = tuple(self._view_loss(int(j)) for j in self._images_of(i))
        return TopLoss(rank, d.keys[i], str(d.study_types[i]), c[yi], c[pi],
                       float(d.probs[i, yi]), float(d.probs[i, pi]), float(self._losses[i]),
                       bool(d.corrected[i]), str(d.readers[i]), bool(d.in_domain[i]), views)

    @cached_property
    def _image_losses(self) -> np.ndarray:
        return self.data.image_losses

    @cached_property
    def _image_pred(self) -> np.ndarray:
        return self.data.image_y_pred

    @cached_property
    def _image_index(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.data.image_study, kind="stable")
        bounds = np.searchsorted(self.data.image_study[order], np.arange(len(self.data) + 1))
        return order, bounds

    def _images_of(self, i: int) -> np.ndarray:
        order, bounds = self._image_index
        return order[bounds[i]:bounds[i + 1]]

    def _view_loss(self, j: int) -> ViewLoss:
        d, c = self.data, self.classes
        yt = int(d.image_y_true[j])
        return ViewLoss(d.image_refs[j], c[yt], c[int(self._image_pred[j])],
                        float(d.image_probs[j, yt]), float(self._image_losses[j]))

    def confusion_matrix(self) -> np.ndarray:
        """(C, C) counts, rows actual, columns predicted."""
        return M.confusion_matrix(self.data.y_true, self._y_pred, self.data.n_classes)

    def cases(self, actual: str, predicted: str) -> tuple[str, ...]:
        """Study keys in one confusion-matrix cell, highest loss first."""
        a, p = self.classes.index(actual), self.classes.index(predicted)
        idx = np.flatnonzero((self.data.y_true == a) & (self._y_pred == p))
        idx = idx[np.argsort(-self._losses[idx], kind="stable")]
        return tuple(self.data.keys[i] for i in idx)

    def most_confused(self, min_count: int = 1) -> list[ConfusedPair]:
        """Off-diagonal cells with at least min_count studies, most frequent first (fastai)."""
        cm = self.confusion_matrix()
        out = [ConfusedPair(self.classes[a], self.classes[p], int(cm[a, p]))
               for a in range(cm.shape[0]) for p in range(cm.shape[1])
               if a != p and cm[a, p] >= max(1, min_count)]
        return sorted(out, key=lambda x: (-x.count, x.actual, x.predicted))

    # ------------------------------------------------------------------ metrics
    def metrics(self, ci: bool = True, n_resamples: int = 1000, seed: int | None = 0,
                level: float = 0.95) -> Metrics:
        return _metrics(self.data, self._y_pred, ci, n_resamples, seed, level)

    def per_group(self, ci: bool = True, n_resamples: int = 1000, seed: int | None = 0,
                  level: float = 0.95) -> dict[str, Metrics]:
        """Metrics per study type (e.g. MURA's seven), in name order; studies without a
        type are grouped under ''. Empty when no study has a type."""
        d = self.data
        types = sorted({str(t) for t in d.study_types})
        if types in ([], [""]):
            return {}
        out = {}
        for t in types:
            mask = d.study_types == t
            sub = d.subset(mask)
            out[t] = _metrics(sub, self._y_pred[mask], ci, n_resamples, seed, level)
        return out

    def per_class(self) -> dict[str, ClassMetrics]:
        """One-vs-rest figures per class at the current calls."""
        d = self.data
        cm = self.confusion_matrix()
        _, aucs = M.auroc_ovr(d.y_true, d.probs) if len(d) else (np.nan, [np.nan] * d.n_classes)
        out = {}
        for c, name in enumerate(self.classes):
            sens, spec = M.sensitivity_specificity(cm, c)
            called = cm[:, c].sum()
            prec = cm[c, c] / called if called else float("nan")
            out[name] = ClassMetrics(name, int(cm[c].sum()), sens, spec, float(prec),
                                     float(aucs[c]))
        return out

    def threshold_sweep(self) -> M.ThresholdSweep:
        """Binary models: sensitivity/specificity/kappa at every distinct study probability."""
        if not self.data.is_binary:
            raise ValueError("a threshold sweep needs a binary model")
        return M.threshold_sweep(self.data.y_true == 1, self.data.probs[:, 1])

    def roc_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(fpr, tpr) per class one-vs-rest; for a binary model one curve, of classes[1]."""
        d = self.data
        idx = [1] if d.n_classes == 2 else range(d.n_classes)
        out = {}
        for c in idx:
            fpr, tpr, _ = M.roc_curve(d.y_true == c, d.probs[:, c])
            out[self.classes[c]] = (fpr, tpr)
        return out

    def image_top_losses(self, k: int | None = None) -> list[ViewLoss]:
        """Per-image losses (each view against its own label or its study's), largest first."""
        il = self._image_losses
        order = np.argsort(-il, kind="stable")[: (len(il) if k is None else k)]
        return [self._view_loss(int(j)) for j in order]


def _metrics(d: ReviewSet, y_pred: np.ndarray, ci: bool, n_resamples: int, seed, level) -> Metrics:
    n = len(d)
    c = d.n_classes
    if n == 0 or c == 0:
        return Metrics(0, np.nan, np.nan, np.nan, np.nan, np.nan, d.threshold, 0,
                       {m: _NAN_INTERVAL for m in ("kappa", "auroc", "accuracy",
                                                   "sensitivity", "specificity")} if ci else {})
    cm = M.confusion_matrix(d.y_true, y_pred, c)
    acc = M.accuracy(cm)
    kappa = M.kappa_from_confusion(cm)
    if d.is_binary or c == 2:
        auroc = M.auroc(d.y_true == 1, d.probs[:, 1])
        sens, spec = M.sensitivity_specificity(cm, 1)
        n_pos = int(cm[1].sum())
    else:
        auroc, _ = M.auroc_ovr(d.y_true, d.probs)
        ss = np.array([M.sensitivity_specificity(cm, k) for k in range(c)])
        with np.errstate(invalid="ignore"):
            sens = float(np.nanmean(ss[:, 0])) if np.any(~np.isnan(ss[:, 0])) else np.nan
            spec = float(np.nanmean(ss[:, 1])) if np.any(~np.isnan(ss[:, 1])) else np.nan
        n_pos = 0
    intervals: dict[str, Interval] = {}
    if ci:
        scores = d.probs[:, 1] if c == 2 else d.probs
        intervals = bootstrap_metrics(d.y_true, y_pred, scores, c, positive=1 if c == 2 else 0,
                                      n_resamples=n_resamples, level=level, seed=seed)
        if c != 2:  # per-class sens/spec CIs are not the macro ones: do not claim them
            intervals = {k: v for k, v in intervals.items() if k in ("kappa", "auroc", "accuracy")}
    return Metrics(n, float(acc), float(kappa), float(auroc), float(sens), float(spec),
                   d.threshold, n_pos, intervals)
