"""The review as plain text (what `radview review` prints): metrics table with CIs, per class,
confusion matrix, most confused pairs and the top-loss table."""
from __future__ import annotations

import math

from radview.review.interpretation import Metrics
from radview.review.summary import ReviewSummary

__all__ = ["format_summary"]


def _f(v: float | None, width: int = 6) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a".rjust(width)
    return f"{v:.3f}".rjust(width)


def _ci(m: Metrics, name: str) -> str:
    iv = m.ci.get(name)
    if iv is None:
        return ""
    if math.isnan(iv.low):
        return " [n/a]".ljust(17)
    return f" [{iv.low:.3f}, {iv.high:.3f}]"


def _row(name: str, m: Metrics, width: int) -> str:
    return (f"{name:<{width}} {m.n:>6} {_f(m.accuracy)}{_ci(m, 'accuracy'):<17} "
            f"{_f(m.kappa)}{_ci(m, 'kappa'):<17} {_f(m.auroc)}{_ci(m, 'auroc'):<17} "
            f"{_f(m.sensitivity)} {_f(m.specificity)}")


def format_summary(s: ReviewSummary, extra: list[str] | None = None) -> str:
    lines: list[str] = []
    thr = (f"threshold {s.threshold:.3f} ({s.threshold_source}; positive if p > threshold)"
           if s.threshold is not None else "call = most probable class")
    lines.append(f"model {s.model} {s.model_version}: classes {', '.join(s.classes)}; {thr}")
    lines.append(f"{s.n_studies} studies, {s.n_images} images reviewed; {len(s.skipped)} "
                 f"studies left out" + (f"; {'; '.join(extra)}" if extra else ""))
    lines.append("")
    groups = list(s.per_group)
    width = max([len(g) for g in groups] + [12])
    lines.append(f"{'group':<{width}} {'n':>6} {'accuracy [95% CI]':<23} {'kappa [95% CI]':<23} "
                 f"{'AUROC [95% CI]':<23} {'sens':>6} {'spec':>6}")
    lines.append(_row("all studies", s.metrics, width))
    for g in groups:
        lines.append(_row(g or "(no type)", s.per_group[g], width))
    lines.append(_row("all images", s.image_metrics, width))
    if s.threshold is not None:
        lines.append(f"(sensitivity/specificity for '{s.classes[1]}' at the threshold)")
    else:
        lines.append("(sensitivity/specificity: macro means of the per-class values)")
    lines.append("")
    lines.append("per class (one vs rest):")
    cw = max([len(c) for c in s.classes] + [5])
    lines.append(f"  {'class':<{cw}} {'n':>6} {'sens':>6} {'spec':>6} {'prec':>6} {'AUROC':>6}")
    for name, c in s.per_class.items():
        lines.append(f"  {name:<{cw}} {c.n:>6} {_f(c.sensitivity)} {_f(c.specificity)} "
                     f"{_f(c.precision)} {_f(c.auroc)}")
    lines.append("")
    lines.append("confusion matrix (rows actual, columns predicted):")
    cm = s.confusion_matrix
    colw = max([len(c) for c in s.classes] + [6])
    lines.append("  " + " " * cw + " " + " ".join(f"{c:>{colw}}" for c in s.classes))
    for i, name in enumerate(s.classes):
        lines.append(f"  {name:<{cw}} " + " ".join(f"{int(v):>{colw}}" for v in cm[i]))
    lines.append("")
    if s.most_confused:
        lines.append("most confused (actual -> predicted: count):")
        for p in s.most_confused:
            lines.append(f"  {p.actual} -> {p.predicted}: {p.count}")
    else:
        lines.append("most confused: none")
    lines.append("")
    if s.top_losses:
        tw = max([len(t.study_type) for t in s.top_losses] + [4])
        lines.append(f"top {len(s.top_losses)} losses:")
        pw = max(cw, 9)
        lines.append(f"  {'#':>3} {'loss':>7} {'p(act)':>7} {'actual':<{cw}} {'predicted':<{pw}} "
                     f"{'type':<{tw}} study")
        for t in s.top_losses:
            flags = (" [corrected" + (f" by {t.reader}" if t.reader else "") + "]"
                     if t.corrected else "") + ("" if t.in_domain else " [out of domain]")
            lines.append(f"  {t.rank:>3} {t.loss:>7.3f} {t.probability:>7.3f} {t.actual:<{cw}} "
                         f"{t.predicted:<{pw}} {t.study_type or '-':<{tw}} {t.study_key}{flags}")
    if s.sweep is not None:
        lines.append("")
        best = ", ".join(f"{c} {s.sweep.best(c):.3f}" for c in ("youden", "kappa"))
        lines.append(f"best thresholds on these studies: {best} "
                     "(save one with --save-threshold)")
    return "\n".join(lines)
