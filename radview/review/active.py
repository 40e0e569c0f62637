"""Which unlabelled study to read next: uncertainty ordering (active learning), numpy only.

MONAI Label's strategies, at study level (a study's probabilities are the mean of its views'):

- 'entropy': Shannon entropy of the study probabilities (normalised to [0, 1] by log C);
- 'margin': 1 - (p_top - p_second), the smaller the margin the more uncertain;
- 'least': 1 - p_top (least confidence);
- 'tta' / 'mc-dropout': variance of the probabilities across test-time augmentations or
  MC-dropout passes, summed over classes and averaged over views, scaled to [0, 1] (the
  largest possible variance of a probability is 0.25);
- 'random': a seeded shuffle (the baseline any strategy must beat);
- 'first': the folder's own order (what "next" does without a model).

`order_studies(keys, probs, strategy)` ranks every study; `next_study(order, labelled,
current)` is what the app's "next study" follows: the first study of the order that has no
label yet, after `current` when given (wrapping round), or None when all are labelled.
"""
from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["STRATEGIES", "NextStudy", "uncertainty", "order_studies", "next_study",
           "orders_to_dict"]

STRATEGIES = ("entropy", "margin", "least", "tta", "mc-dropout", "random", "first")


@dataclass(frozen=True)
class NextStudy:
    key: str
    rank: int
    score: float  # the uncertainty in [0, 1] (random/first: 0)
    predicted: str = ""
    probability: float | None = None
    reason: str = ""


def uncertainty(probs: np.ndarray, strategy: str = "entropy",
                variance: np.ndarray | None = None) -> np.ndarray:
    """Per-row uncertainty in [0, 1] (higher = read sooner). probs (n, C); for 'tta',
    variance is (n,) (or probs may be (n, A, C): the augmented probabilities)."""
    probs = np.asarray(probs, np.float64)
    if strategy in ("tta", "mc-dropout"):
        if variance is None:
            if probs.ndim != 3:
                raise ValueError("'tta' needs the augmented probabilities (n, A, C) or a variance")
            variance = probs.var(axis=1).sum(axis=1)
        return np.clip(np.asarray(variance, np.float64) / 0.25, 0.0, 1.0)
    if probs.ndim == 3:
        probs = probs.mean(axis=1)
    n, c = probs.shape
    if c < 2:
        return np.zeros(n)
    if strategy == "entropy":
        p = np.clip(probs, 1e-12, 1.0)
        return np.clip(-(p * np.log(p)).sum(axis=1) / np.log(c), 0.0, 1.0)
    srt = np.sort(probs, axis=1)
    if strategy == "margin":
        return np.clip(1.0 - (srt[:, -1] - srt[:, -2]), 0.0, 1.0)
    if strategy == "least":
        return np.clip((1.0 - srt[:, -1]) * c / (c - 1), 0.0, 1.0)
    raise ValueError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")


def order_studies(keys: Sequence[str], probs: np.ndarray | None = None,
                  strategy: str = "entropy", *, classes: Sequence[str] = (),
                  variance: np.ndarray | None = None, seed: int = 0) -> list[NextStudy]:
    """Every study ranked, most worth reading first. probs (n, C) study probabilities
    (needed except for 'random' and 'first'); ties keep the folder order."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    keys = [str(k) for k in keys]
    n = len(keys)
    p = None if probs is None else np.asarray(probs, np.float64)
    if p is not None and len(p) != n:
        raise ValueError("probs and keys differ in length")
    pm = p.mean(axis=1) if p is not None and p.ndim == 3 else p

    def info(i):
        if pm is None or not len(classes):
            return "", None
        j = int(np.argmax(pm[i]))
        return str(classes[j]), float(pm[i, j])

    if strategy in ("random", "first"):
        idx = (np.random.default_rng(seed).permutation(n) if strategy == "random"
               else np.arange(n))
        why = "random order (baseline)" if strategy == "random" else "folder order"
        return [NextStudy(keys[i], r, 0.0, *info(i), reason=why) for r, i in enumerate(idx)]
    if pm is None and not (strategy in ("tta", "mc-dropout") and variance is not None):
        raise ValueError(f"strategy {strategy!r} needs probabilities")
    u = uncertainty(p if p is not None else np.zeros((n, 2)),
                    "tta" if strategy == "mc-dropout" else strategy, variance)
    idx = np.argsort(-u, kind="stable")
    out = []
    for r, i in enumerate(idx):
        pred, prob = info(i)
        why = {"entropy": f"entropy {u[i]:.2f} of 1",
               "margin": f"margin between the top two classes {1 - u[i]:.2f}",
               "least": f"top-class probability {prob if prob is not None else float('nan'):.2f}",
               "tta": f"probability variance under augmentation {u[i] * 0.25:.4f}",
               "mc-dropout": f"probability variance over dropout samples {u[i] * 0.25:.4f}"
               }[strategy]
        if pred:
            why += f"; the model says {pred} (p={prob:.2f})"
        out.append(NextStudy(keys[i], r, float(u[i]), pred, prob, why))
    return out


def next_study(order: Sequence[NextStudy | str], labelled: Container[str],
               current: str | None = None) -> str | None:
    """The next study to read: the first of `order` without a label, searching after
    `current` (wrapping round) when it is in the order; None when every study is labelled."""
    keys = [o.key if isinstance(o, NextStudy) else str(o) for o in order]
    start = keys.index(current) + 1 if current in keys else 0
    for k in keys[start:] + keys[:start]:
        if k != current and k not in labelled:
            return k
    return None


def orders_to_dict(order: Sequence[NextStudy], strategy: str, top: int | None = None) -> dict:
    items = order if top is None else order[:top]
    return {"strategy": strategy, "n_unlabelled": len(order),
            "next": [{"rank": o.rank + 1, "key": o.key, "score": round(o.score, 6),
                      "predicted": o.predicted, "probability": o.probability,
                      "reason": o.reason} for o in items]}
