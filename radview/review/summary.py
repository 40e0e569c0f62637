"""Everything a review shows, computed in one pass: `summarize` (or the generator
`iter_summarize`, which yields Progress between steps so a worker can cancel) and
`summary_to_dict` for JSON (`radview review --json`)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from radview.review.data import ReviewSet
from radview.review.interpretation import (ClassMetrics, ConfusedPair, Interpretation, Metrics,
                                           TopLoss, ViewLoss, _metrics)
from radview.review.metrics import ThresholdSweep
from radview.types import Progress

__all__ = ["ReviewSummary", "iter_summarize", "summarize", "summary_to_dict"]


@dataclass(frozen=True)
class ReviewSummary:
    model: str
    model_version: str
    classes: tuple[str, ...]
    threshold: float | None
    threshold_source: str
    n_studies: int
    n_images: int
    metrics: Metrics
    image_metrics: Metrics
    confusion_matrix: np.ndarray
    most_confused: tuple[ConfusedPair, ...]
    top_losses: tuple[TopLoss, ...]
    per_group: dict[str, Metrics] = field(default_factory=dict)
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    roc: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    sweep: ThresholdSweep | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    image_top_losses: tuple[ViewLoss, ...] = ()


def iter_summarize(data: ReviewSet | Interpretation, top_k: int = 16, min_count: int = 1,
                   ci: bool = True, n_resamples: int = 1000, seed: int | None = 0
                   ) -> Iterator[Progress]:
    """Yields Progress per step; the last one carries the ReviewSummary as its payload."""
    interp = data if isinstance(data, Interpretation) else Interpretation(data)
    d = interp.data
    total = 5
    yield Progress(0, total, "metrics")
    overall = interp.metrics(ci=ci, n_resamples=n_resamples, seed=seed)
    yield Progress(1, total, "per study type")
    groups = interp.per_group(ci=ci, n_resamples=n_resamples, seed=seed)
    yield Progress(2, total, "per class, image level")
    per_class = interp.per_class()
    img = _image_metrics(d)
    yield Progress(3, total, "curves")
    roc = interp.roc_curves() if len(d) else {}
    sweep = interp.threshold_sweep() if d.is_binary else None
    yield Progress(4, total, "top losses")
    summary = ReviewSummary(
        model=d.model, model_version=d.model_version, classes=d.classes,
        threshold=d.threshold, threshold_source=d.threshold_source,
        n_studies=len(d), n_images=len(d.image_refs), metrics=overall, image_metrics=img,
        confusion_matrix=interp.confusion_matrix(),
        most_confused=tuple(interp.most_confused(min_count)),
        top_losses=interp.top_losses(top_k), per_group=groups, per_class=per_class,
        roc=roc, sweep=sweep, skipped=d.skipped,
        image_top_losses=tuple(interp.image_top_losses(top_k)))
    yield Progress(total, total, "done", summary)


def summarize(data: ReviewSet | Interpretation, **kwargs) -> ReviewSummary:
    last = None
    for last in iter_summarize(data, **kwargs):
        pass
    assert last is not None
    return last.payload


def _image_metrics(d: ReviewSet) -> Metrics:
    """Image-level metrics (each view against its label), without intervals."""
    from dataclasses import replace

    img = replace(d, keys=d.image_refs, y_true=d.image_y_true, probs=d.image_probs,
                  study_types=np.full(len(d.image_refs), "", dtype=object))
    return _metrics(img, d.image_y_pred, False, 0, None, 0.95)


def summary_to_dict(s: ReviewSummary) -> dict:
    """A JSON-ready dict: kappa, auroc, accuracy, sensitivity, specificity (+ *_ci),
    confusion_matrix, most_confused, top_losses, per_group, per_class, image_level, roc, ..."""
    m = s.metrics.as_dict()
    out: dict = {
        "model": s.model, "model_version": s.model_version, "classes": list(s.classes),
        "threshold": s.threshold, "threshold_source": s.threshold_source,
        "n_studies": s.n_studies, "n_images": s.n_images,
    }
    out.update({k: v for k, v in m.items() if k not in ("n", "threshold")})
    out["confusion_matrix"] = s.confusion_matrix.tolist()
    out["most_confused"] = [p.as_dict() for p in s.most_confused]
    out["top_losses"] = [t.as_dict() for t in s.top_losses]
    out["image_top_losses"] = [{"ref": v.ref, "actual": v.actual, "predicted": v.predicted,
                                "probability": v.probability, "loss": v.loss}
                               for v in s.image_top_losses]
    out["per_group"] = {g: gm.as_dict() for g, gm in s.per_group.items()}
    out["per_class"] = {c: cm.as_dict() for c, cm in s.per_class.items()}
    out["image_level"] = {k: v for k, v in s.image_metrics.as_dict().items() if k != "threshold"}
    out["roc"] = {c: {"fpr": _finite_list(f), "tpr": _finite_list(t)}
                  for c, (f, t) in s.roc.items()}
    if s.sweep is not None:
        out["best_threshold"] = {c: _none(s.sweep.best(c)) for c in ("youden", "kappa")}
    out["skipped"] = [{"study": k, "reason": r} for k, r in s.skipped]
    return out


def _none(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _finite_list(a: np.ndarray, max_points: int = 512) -> list:
    """A curve for JSON, thinned to at most max_points (end points kept)."""
    a = np.asarray(a, dtype=np.float64)
    if a.size > max_points:
        a = a[np.unique(np.linspace(0, a.size - 1, max_points).round().astype(int))]
    return [None if not np.isfinite(v) else round(float(v), 6) for v in a]
