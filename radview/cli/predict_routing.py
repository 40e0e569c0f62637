"""Routing for `radview predict` (issue 13): which studies of a scan the model runs on.

A study whose body part (DICOM header first, else the bundled `body-part` model's answer on its
views) is outside the model's domain (its manifest: `domain.gate_classes` / BodyPartExamined
codes) is not run; `radview predict` writes one `level=skipped` row for it with the reason, and
says how many on stderr. `--all-studies` runs the model on every study (its gate still flags
out-of-domain answers); `--no-gate` turns every domain check off, routing included.
Torch is imported only when the body-part model has to run.
"""
from __future__ import annotations

import sys
from collections import Counter

from radview.models.routing import BODY_PART_MODEL, StudyRoute, model_body_parts, plan_studies


def _body_part_predictor(device, batch_size: int):
    def predict(refs):
        from radview.models.engine import iter_predict
        from radview.models.registry import ModelError, load_model

        try:
            model = load_model(BODY_PART_MODEL, device)
        except ModelError as exc:
            print(f"radview predict: routing by header only: {exc}", file=sys.stderr)
            return []
        return list(iter_predict(refs, model, batch_size=batch_size))
    return predict


def route_studies(studies, manifest, device=None, batch_size: int = 8) -> tuple[list, list[StudyRoute]]:
    """(studies to run, StudyRoutes of the skipped ones)."""
    if not model_body_parts(manifest) or manifest.name == BODY_PART_MODEL:
        return list(studies), []
    plan = plan_studies(studies, manifest, _body_part_predictor(device, batch_size))
    run = [p.study for p in plan if p.route.run]
    return run, [p for p in plan if not p.route.run]


def skipped_row(sr: StudyRoute) -> dict:
    """The `level=skipped` row of a study routing left out (the predict columns)."""
    first = sr.study.views[0].ref.key if sr.study.views else ""
    return {"level": "skipped", "path": first, "study": sr.study.key, "predicted": None, "probability": None,
            "boxes": None, "in_domain": False, "domain_reason": f"not run: {sr.route.reason}", "error": ""}


def summary(skipped: list[StudyRoute], model: str) -> str:
    parts = Counter(sr.verdict.part for sr in skipped)
    return (f"radview predict: {len(skipped)} studies skipped, outside {model}'s domain ("
            + ", ".join(f"{p}: {n}" for p, n in sorted(parts.items())) + "); --all-studies runs them anyway")
