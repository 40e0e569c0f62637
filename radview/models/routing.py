"""Which models fit a study: body-part verdicts and routing (pure Python, no torch).

Every model's manifest names its domain (`domain`: DICOM `modalities`, `body_parts` as
BodyPartExamined codes, `views` as ViewPosition codes, and `gate_classes`: the `body-part` model's
classes it is made for, e.g. ["chest"]; empty = any radiograph). The body-part of a study comes from

1. the DICOM header (`metadata_body_part`): Modality CT/MR/US/NM/PT/... -> `other`;
   BodyPartExamined CHEST/THORAX/LUNG -> `chest`, ABDOMEN/PELVIS/... -> `abdomen`,
   HAND/ELBOW/KNEE/EXTREMITY/... -> `musculoskeletal`;
2. else the `body-part` model's answers for the study's views (`verdict_from_predictions`): the
   class with the highest mean probability over the views that are in its domain (feature
   similarity gate); views out of its domain make the study `unknown` when none is in.

`route(verdict, manifests, requested=())` -> one `Route(model, run, reason)` per model: a model
runs on a study when the study's body part is one of its gate_classes (or it has none, or the
part is unknown: its own gate then decides per image), or when the user asked for it by name
(`requested`: "run the chest model on this hand anyway"; the gate still flags the answer).

`plan_studies(studies, manifest, body_part_preds)` -> one `StudyRoute(study, verdict, route)` per
study (header first, the body-part model only for the studies whose header says nothing): what
`radview predict` runs and what it reports as skipped; the app's executor routes the same way
(`study_metas(study)` are the header values both read).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BODY_PART_MODEL = "body-part"
BODY_PARTS = ("chest", "abdomen", "musculoskeletal", "other")
UNKNOWN = "unknown"

NON_RADIOGRAPH_MODALITIES = ("CT", "MR", "US", "NM", "PT", "XA", "RF", "MG", "OP", "OCT", "ES", "SM", "IVUS")
_CODES = {
    "chest": ("CHEST", "THORAX", "LUNG", "RIB", "RIBS", "STERNUM", "CHEST_ABDOMEN"),
    "abdomen": ("ABDOMEN", "ABD", "PELVIS", "ABDOMENPELVIS", "KUB", "BOWEL", "STOMACH"),
    "musculoskeletal": ("HAND", "FINGER", "THUMB", "WRIST", "FOREARM", "ELBOW", "ARM", "HUMERUS", "SHOULDER",
                        "CLAVICLE", "SCAPULA", "UPPER_EXTREMITY", "LOWER_EXTREMITY", "EXTREMITY", "LEG", "HIP",
                        "FEMUR", "THIGH", "KNEE", "PATELLA", "TIBIA", "FIBULA", "ANKLE", "FOOT", "TOE", "HEEL",
                        "CALCANEUS", "LOWER LEG", "UPPER ARM"),
}
_PART_OF_CODE = {code: part for part, codes in _CODES.items() for code in codes}


@dataclass(frozen=True)
class BodyPartVerdict:
    """part: one of BODY_PARTS or 'unknown'; source: 'dicom' | 'model' | 'none'."""

    part: str
    probability: float | None = None
    source: str = "none"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "probability": self.probability, "source": self.source, "reason": self.reason}


@dataclass(frozen=True)
class Route:
    model: str
    run: bool
    reason: str


def metadata_body_part(meta: Mapping[str, Any] | None) -> BodyPartVerdict | None:
    """The body part the DICOM header states, or None when it says nothing usable."""
    if not meta:
        return None
    modality = str(meta.get("Modality") or "").strip().upper()
    if modality in NON_RADIOGRAPH_MODALITIES:
        return BodyPartVerdict("other", None, "dicom", f"Modality {modality} is not a projection radiograph")
    code = str(meta.get("BodyPartExamined") or "").strip().upper()
    part = _PART_OF_CODE.get(code)
    if part:
        return BodyPartVerdict(part, None, "dicom", f"BodyPartExamined {code}")
    return None


def verdict_from_predictions(preds: Sequence[Any]) -> BodyPartVerdict:
    """A study's body part from the body-part model's Predictions of its views."""
    ok = [p for p in preds if not getattr(p, "error", None) and getattr(p, "probs", ())]
    inside = [p for p in ok if p.in_domain]
    if not ok:
        return BodyPartVerdict(UNKNOWN, None, "none", "no view could be read")
    if not inside:
        reasons = sorted({p.domain_reason for p in ok if p.domain_reason})
        if all(p.predicted == "other" for p in ok):
            return BodyPartVerdict("other", max(p.probability for p in ok), "model", "; ".join(reasons))
        return BodyPartVerdict(UNKNOWN, None, "model", "; ".join(reasons) or "out of the body-part model's domain")
    classes = inside[0].classes
    mean = [sum(p.probs[i] for p in inside) / len(inside) for i in range(len(classes))]
    k = max(range(len(classes)), key=lambda i: mean[i])
    return BodyPartVerdict(classes[k], round(mean[k], 4), "model",
                           f"{BODY_PART_MODEL} model: {classes[k]} (p={mean[k]:.2f}, {len(inside)} view(s))")


def study_verdict(metas: Iterable[Mapping[str, Any] | None], preds: Sequence[Any] = ()) -> BodyPartVerdict:
    """Header first (the first view that states a part), then the model's answers."""
    for meta in metas:
        v = metadata_body_part(meta)
        if v is not None:
            return v
    if preds:
        return verdict_from_predictions(preds)
    return BodyPartVerdict(UNKNOWN, None, "none", "no header body part and no body-part prediction")


def model_body_parts(manifest: Any) -> tuple[str, ...]:
    """The body-part classes a model is made for (its domain.gate_classes when gated by body-part;
    else derived from its BodyPartExamined codes); () = any."""
    dom = manifest.domain
    if dom.gate_model == BODY_PART_MODEL and dom.gate_classes:
        return tuple(dom.gate_classes)
    parts = sorted({_PART_OF_CODE[c] for c in dom.body_parts if c in _PART_OF_CODE})
    return tuple(parts)


def domain_summary(manifest: Any) -> dict[str, Any]:
    """What `radview models show` and the GUI display as a model's domain."""
    dom = manifest.domain
    return {"body_parts": list(model_body_parts(manifest)), "dicom_body_parts": list(dom.body_parts),
            "modalities": list(dom.modalities), "views": list(getattr(dom, "views", ()) or ()),
            "gate_model": dom.gate_model, "description": dom.description}


def route(verdict: BodyPartVerdict | str | None, manifests: Iterable[Any],
          requested: Iterable[str] = ()) -> list[Route]:
    """One Route per manifest (see the module doc)."""
    if isinstance(verdict, str):
        verdict = BodyPartVerdict(verdict)
    part = verdict.part if verdict is not None else UNKNOWN
    asked = set(requested)
    out = []
    for m in manifests:
        parts = model_body_parts(m)
        if m.name == BODY_PART_MODEL:
            out.append(Route(m.name, True, "the body-part model runs on every study"))
        elif m.name in asked:
            out.append(Route(m.name, True, "requested" + ("" if not parts or part in parts or part == UNKNOWN
                                                          else f" (study is {part}, model is for {'/'.join(parts)})")))
        elif not parts:
            out.append(Route(m.name, True, "model has no body-part restriction"))
        elif part == UNKNOWN:
            out.append(Route(m.name, True, "body part unknown: the model's gate decides per image"))
        elif part in parts:
            out.append(Route(m.name, True, f"study is {part}"))
        else:
            out.append(Route(m.name, False, f"study is {part} ({verdict.reason}); {m.name} is for {'/'.join(parts)}"))
    return out


def models_for(verdict: BodyPartVerdict | str | None, manifests: Iterable[Any],
               requested: Iterable[str] = ()) -> list[str]:
    """Names of the models to run on a study."""
    return [r.model for r in route(verdict, manifests, requested) if r.run]


def study_metas(study: Any) -> tuple[dict, ...]:
    """The header values routing reads (Modality, BodyPartExamined) of a Study's views ({} for
    a view without them: PNG, JPEG)."""
    return tuple({"Modality": v.modality, "BodyPartExamined": v.body_part} if (v.modality or v.body_part) else {}
                 for v in study.views)


@dataclass(frozen=True)
class StudyRoute:
    """What routing decided for one study and one model (radview predict, the executor)."""

    study: Any
    verdict: BodyPartVerdict
    route: Route


def plan_studies(studies: Sequence[Any], manifest: Any, body_part_preds: Any = None,
                 requested: Iterable[str] = ()) -> list[StudyRoute]:
    """One StudyRoute per study for the model of `manifest`. body_part_preds(refs) -> the
    body-part model's Predictions of those refs (called once, only for the studies whose header
    states no body part, and only when the model is restricted to some body parts); None: the
    header alone decides (a study without one is `unknown`: the model's gate decides per image)."""
    restricted = bool(model_body_parts(manifest)) and manifest.name != BODY_PART_MODEL
    heads = {s.key: next((v for v in map(metadata_body_part, study_metas(s)) if v is not None), None)
             for s in studies}
    preds: dict[str, list] = {}
    need = [s for s in studies if heads[s.key] is None]
    if restricted and need and body_part_preds is not None:
        owner = {v.ref.key: s.key for s in need for v in s.views}
        for p in body_part_preds([v.ref for s in need for v in s.views]):
            k = owner.get(p.ref.key)
            if k is not None:
                preds.setdefault(k, []).append(p)
    out = []
    for s in studies:
        verdict = heads[s.key] or (verdict_from_predictions(preds[s.key]) if s.key in preds else
                                   BodyPartVerdict(UNKNOWN, None, "none", "no header body part"
                                                   + ("" if restricted else " (model not restricted)")))
        out.append(StudyRoute(s, verdict, route(verdict, [manifest], requested)[0]))
    return out
