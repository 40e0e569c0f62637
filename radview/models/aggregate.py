"""The study-level rule, numpy only (no torch), so that review can aggregate cached
predictions without loading a model: the MURA rule, i.e. the mean of the view probabilities
(views that could not be read are left out); for two classes the positive class (classes[1]) if
the mean > threshold, argmax for more; detection keeps its boxes per view; any view out of
domain flags the study, with the reasons."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radview.types import Prediction, StudyPrediction


def predicted_class(pred: Prediction, threshold: float = 0.5) -> str | None:
    if pred.error or not pred.probs:
        return None
    if len(pred.probs) == 2:
        return pred.classes[1] if pred.probs[1] > threshold else pred.classes[0]
    return pred.classes[int(np.argmax(pred.probs))]


def aggregate_study(study_key: str, preds: Sequence[Prediction], threshold: float = 0.5) -> StudyPrediction:
    """The study's answer from its views' predictions (see module doc)."""
    preds = tuple(preds)
    if not preds:
        raise ValueError(f"study {study_key}: no predictions to aggregate")
    first = preds[0]
    ok = [p for p in preds if not p.error and p.probs]
    base = dict(study_key=study_key, model=first.model, model_version=first.model_version,
                classes=first.classes, views=preds)
    if not ok:
        return StudyPrediction(probs=(), predicted=None, in_domain=False,
                               domain_reason="no view could be read", **base)
    mean = np.mean(np.asarray([p.probs for p in ok], dtype=np.float64), axis=0)
    if len(mean) == 2:
        predicted = first.classes[1] if mean[1] > threshold else first.classes[0]
    else:
        predicted = first.classes[int(np.argmax(mean))]
    out = [p for p in ok if not p.in_domain]
    reason = ""
    if out:
        reason = f"{len(out)} of {len(ok)} views out of domain: " + "; ".join(
            sorted({p.domain_reason for p in out}))
    else:
        notes = sorted({p.domain_reason for p in ok if p.domain_reason})
        reason = "; ".join(notes)
    return StudyPrediction(probs=tuple(float(v) for v in mean), predicted=predicted, in_domain=not out,
                           domain_reason=reason, **base)
