"""Generated study predictions with known truth, for tests, benchmarks and demos.

Probabilities come from a simple noisy model (the true class gets a higher mean), so metrics are
somewhere between chance and perfect, like a real model's."""
from __future__ import annotations

import numpy as np

from radview.review.data import Truth
from radview.types import ImageRef, Label, Prediction, StudyPrediction

__all__ = ["MURA_STUDY_TYPES", "synthetic_studies"]

MURA_STUDY_TYPES = ("XR_ELBOW", "XR_FINGER", "XR_FOREARM", "XR_HAND", "XR_HUMERUS",
                    "XR_SHOULDER", "XR_WRIST")


def synthetic_studies(
    n: int,
    classes: tuple[str, ...] = ("normal", "abnormal"),
    study_types: tuple[str, ...] = MURA_STUDY_TYPES,
    views: tuple[int, int] = (1, 4),
    separation: float = 1.5,
    seed: int = 0,
    model: str = "synthetic",
    root: str = "/synthetic",
    threshold: float = 0.5,
    corrected_fraction: float = 0.0,
    readers: tuple[str, ...] = ("reader_a", "reader_b"),
) -> tuple[list[StudyPrediction], dict[str, Truth]]:
    """n studies with 1-4 views each (MURA-like), their predictions and their truth.

    Binary models give views sigmoid probabilities of a logit ~ N(+-separation/2, 1); study
    probability is the mean (MURA rule). Multiclass: softmax of logits with the true class
    shifted by `separation`."""
    rng = np.random.default_rng(seed)
    c = len(classes)
    y = rng.integers(0, c, n)
    n_views = rng.integers(views[0], views[1] + 1, n)
    types = np.asarray(study_types, dtype=object)[rng.integers(0, len(study_types), n)] \
        if study_types else np.full(n, "", dtype=object)
    total = int(n_views.sum())
    owner = np.repeat(np.arange(n), n_views)
    if c == 2:
        logits = rng.normal(0, 1, total) + np.where(y[owner] == 1, separation / 2, -separation / 2)
        p1 = 1.0 / (1.0 + np.exp(-logits))
        vprobs = np.stack([1.0 - p1, p1], axis=1)
    else:
        logits = rng.normal(0, 1, (total, c))
        logits[np.arange(total), y[owner]] += separation
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        vprobs = e / e.sum(axis=1, keepdims=True)
    corrected = rng.random(n) < corrected_fraction
    preds: list[StudyPrediction] = []
    truths: dict[str, Truth] = {}
    start = 0
    for i in range(n):
        k = int(n_views[i])
        key = f"{root}/patient{i:05d}/study1_{classes[y[i]]}"
        vp = vprobs[start:start + k]
        start += k
        view_preds = tuple(
            Prediction(ImageRef(f"{key}/image{j + 1}.png"), model, "1",
                       classes, tuple(float(x) for x in vp[j]))
            for j in range(k))
        sp = vp.mean(axis=0)
        called = (classes[1] if sp[1] > threshold else classes[0]) if c == 2 \
            else classes[int(np.argmax(sp))]
        preds.append(StudyPrediction(key, model, "1", classes, tuple(float(x) for x in sp),
                                     called, view_preds))
        reader = readers[i % len(readers)] if corrected[i] and readers else ""
        truths[key] = Truth(Label(classes[y[i]], source="correction" if corrected[i] else "synthetic"),
                            str(types[i]), bool(corrected[i]), reader)
    return preds, truths
