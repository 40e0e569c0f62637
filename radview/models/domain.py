"""Out-of-domain gate: is this input something the model was made for?

Two checks, both cheap, whose verdict travels with every answer (Prediction.in_domain and
domain_reason):

1. DICOM metadata (`metadata_verdict`): Modality must be a radiograph modality the manifest lists
   (CR, DX, ...), BodyPartExamined must be one of the manifest's body parts. Absent values (PNG,
   JPEG, empty tags) give no verdict.
2. Feature similarity (`FeatureGate`): cosine similarity of the model's penultimate (pooled)
   feature vector to a bank of prototype vectors (`class_means`: one row per training class, or
   per (class, source), or every training image: the body-part model ships the nearest-training-
   image bank, a 1-NN cosine score, because it separates held-out radiographs from CT/MR/US/NM and
   patterns by a margin twice that of per-class means; Mahalanobis and centred-cosine scores on
   these ImageNet features did worse, see its card); the image is in domain when the best
   similarity reaches a threshold calibrated on held-out in-domain and out-of-domain images. Softmax
   confidence does not work as a gate: a chest/abdomen classifier is confidently "chest" or
   "abdomen" on a tibia, a CT slice or noise, because the softmax only compares the known classes;
   the feature direction tells how much the image resembles the training images at all.

A model's manifest says which gate applies (`domain.gate_model`): 'self' (its own class means,
stored in its weights file under "gate"), the name of another model (e.g. the bundled region model
gating a chest model: that model must be in domain and predict one of `domain.gate_classes`),
or none (metadata only).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from radview.models.manifest import DomainSpec

# Modalities that are projection radiographs (DR is not a DICOM code but appears in the wild).
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG")


def metadata_verdict(meta: dict[str, Any] | None, domain: DomainSpec) -> str:
    """'' when nothing in the header contradicts the domain, else the reason."""
    if not meta:
        return ""
    reasons = []
    modality = str(meta.get("Modality") or "").strip().upper()
    if modality and domain.modalities and modality not in domain.modalities:
        reasons.append(f"Modality {modality} is not one of {'/'.join(domain.modalities)}")
    part = str(meta.get("BodyPartExamined") or "").strip().upper()
    if part and domain.body_parts and part not in domain.body_parts:
        reasons.append(f"BodyPartExamined {part} is not one of {'/'.join(domain.body_parts)}")
    view = str(meta.get("ViewPosition") or "").strip().upper()
    views = getattr(domain, "views", ())
    if view and views and view not in views:
        reasons.append(f"ViewPosition {view} is not one of {'/'.join(views)}")
    return "; ".join(reasons)


@dataclass(frozen=True)
class FeatureGate:
    """class_means: (K, D) float32, L2-normalised prototype rows (class means or a bank of
    training images); classes: a name per row; threshold on the best cosine similarity."""

    class_means: np.ndarray
    threshold: float
    classes: tuple[str, ...] = ()

    @staticmethod
    def fit(features: np.ndarray, labels: np.ndarray, threshold: float = 0.0,
            classes: tuple[str, ...] = ()) -> "FeatureGate":
        """Class means of L2-normalised features (N, D) with integer labels (N,)."""
        f = _l2(np.asarray(features, dtype=np.float32))
        k = int(labels.max()) + 1
        means = np.stack([f[labels == i].mean(0) for i in range(k)])
        return FeatureGate(_l2(means), float(threshold), tuple(classes))

    def similarity(self, features: np.ndarray) -> np.ndarray:
        """Best cosine similarity to any class mean, shape (N,)."""
        f = _l2(np.asarray(features, dtype=np.float32).reshape(len(features), -1))
        return (f @ self.class_means.T).max(axis=1)

    def verdicts(self, features: np.ndarray) -> list[tuple[bool, str, float]]:
        out = []
        for s in self.similarity(features):
            s = float(s)
            if s >= self.threshold:
                out.append((True, "", s))
            else:
                out.append((False, f"unlike the training images (feature similarity {s:.3f} < {self.threshold:.3f})", s))
        return out

    def to_state(self) -> dict[str, Any]:
        """For the weights file (a tensor-free, weights_only-safe mapping once converted)."""
        return {"class_means": self.class_means, "threshold": self.threshold, "classes": list(self.classes)}

    @staticmethod
    def from_state(state: dict[str, Any], threshold: float | None = None) -> "FeatureGate":
        means = state["class_means"]
        means = means.float().numpy() if hasattr(means, "numpy") else np.asarray(means, dtype=np.float32)
        thr = float(state.get("threshold", 0.0) if threshold is None else threshold)
        return FeatureGate(_l2(means.astype(np.float32)), thr, tuple(state.get("classes", ())))


def calibrate_threshold(in_domain_scores: np.ndarray, out_domain_scores: np.ndarray | None = None,
                        margin: float = 0.5) -> float:
    """A threshold from held-out scores: below the lowest in-domain score. With out-of-domain
    scores too, the point `margin` of the way from the highest OOD score up to the lowest
    in-domain score (0.5 = midway); without, the lowest in-domain score minus 0.02."""
    lo_in = float(np.min(in_domain_scores))
    if out_domain_scores is None or len(out_domain_scores) == 0:
        return lo_in - 0.02
    hi_out = float(np.max(out_domain_scores))
    if hi_out >= lo_in:  # overlap: keep every held-out in-domain image in
        return lo_in - 1e-3
    return hi_out + margin * (lo_in - hi_out)


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)
