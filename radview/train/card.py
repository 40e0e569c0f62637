"""The model card of a retrained version (Markdown, no torch): what it was made from, how, and
how it compares with the version that was current, on the locked test split."""
from __future__ import annotations

import json
from typing import Any

_SHOWN = ("kappa", "accuracy", "macro_kappa", "auroc", "box_recall50", "box_precision50")


def _f(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render_card(run: dict[str, Any], parent_card: str = "") -> str:
    """run: the run record (what run.json holds)."""
    name, version, parent = run["model"], run["version"], run.get("parent_version") or "none"
    lines = [f"# {name} {version}", "",
             f"Retrained by radview from version {parent} (run `{run['run_id']}`, {run['created']}).", ""]
    lines += ["## Decision", ""]
    if run.get("promoted"):
        lines.append(f"**Promoted to current.** {run.get('reason', '')}")
    else:
        lines.append(f"**Kept as a candidate (not current).** {run.get('reason', '')}")
    lines.append("")
    lines.append(f"Rule: {run['rule']}" if run.get("rule") else
                 f"Agreed metric: `{run['metric']}` on the locked test split; a version is promoted only "
                 "if it does not regress on it.")
    if run.get("label_space"):
        lines.append("")
        lines.append(f"Label space: `{run['label_space']}` (only labels and corrections of this space, or "
                     "of a space comparable with it, were used).")
    comp = run.get("comparison")
    if comp:
        lines += ["", f"Paired comparison on the {comp['n']} locked test items ({comp['metric']}, new - current): "
                      f"{_f(comp['diff'])}, 95% bootstrap interval [{_f(comp['ci_low'])}, {_f(comp['ci_high'])}] "
                      f"({comp['valid_resamples']} of {comp['n_resamples']} resamples defined). McNemar: "
                      f"{comp['mcnemar_new_only']} items right only with the new version, "
                      f"{comp['mcnemar_current_only']} only with the current one, exact p = {_f(comp['mcnemar_p'])}."]
    lines += ["", f"## Locked test split ({run['counts'].get('test_total', 0)} images, "
                  f"test split from: {run.get('split_source', '')})", "",
              f"| metric | current ({parent}) | new ({version}) |", "|---|---|---|"]
    new, old = run.get("metrics") or {}, run.get("parent_metrics") or {}
    for k in _SHOWN:
        if k in new or k in old:
            lines.append(f"| {k}{' (agreed)' if k == run['metric'] else ''} | {_f(old.get(k))} | {_f(new.get(k))} |")
    for k in ("n_studies", "n_images"):
        if k in new:
            lines.append(f"| {k} | {_f(old.get(k))} | {_f(new.get(k))} |")
    if "confusion" in new:
        lines += ["", f"Confusion matrix of the new version (rows truth, columns call; classes "
                      f"{', '.join(run.get('classes', []))}): `{json.dumps(new['confusion'])}`"]
    c = run["counts"]
    lines += ["", "## Data", "",
              f"- Folder: `{run['data']}`",
              f"- Data hash (sha256 over relative path, split, label and file sha256 of every image): "
              f"`{run['data_hash']}`",
              "- Images per split: " + "; ".join(f"{s}: {c.get(s, {})}" for s in ("train", "val", "test")),
              f"- Corrections from the queue used: {len(run.get('events', []))} event(s)"
              + (f" (ids {', '.join(map(str, run['events'][:50]))}{' ...' if len(run['events']) > 50 else ''})"
                 if run.get("events") else ""),
              f"- Images whose label came from a correction: {run.get('n_corrected', 0)}; "
              f"left out by an exclude-from-training flag: {run.get('n_excluded', 0)}",
              f"- Left out (unreadable or unlabelled): {len(run.get('dropped', []))}"]
    for d in run.get("dropped", [])[:10]:
        lines.append(f"  - {d}")
    if run.get("weights"):
        lines.append(f"- Study-type weights of the BCE loss (w_normal, w_abnormal): `{json.dumps(run['weights'])}`")
    lines += ["", "## Training", "",
              f"- Recipe: fastai-style fine-tuning from version {parent}: {run['config']['freeze_epochs']} "
              f"frozen epoch(s) (head + batch norm), then {run['config']['epochs']} unfrozen epoch(s) with "
              f"discriminative learning rates, one-cycle schedules, early stopping on validation loss "
              f"(patience {run['config']['patience']}).",
              f"- Device: {run.get('device', '')}, processes: {run.get('world_size', 1)}, "
              f"time: {run.get('seconds', 0):.1f} s",
              f"- Best epoch: {run.get('best_epoch')}, stopped early: {run.get('stopped_early')}",
              "", "| epoch | phase | train loss | valid loss |", "|---|---|---|---|"]
    for h in run.get("history", []):
        lines.append(f"| {h['epoch']} | {h['phase']} | {_f(h['train_loss'])} | {_f(h['val_loss'])} |")
    lines += ["", "Configuration:", "", "```json", json.dumps(run["config"], indent=1, sort_keys=True), "```"]
    if run.get("gate"):
        lines += ["", f"Out-of-domain feature gate: {run['gate']}"]
    if parent_card.strip():
        lines += ["", "## Card of the parent version", "", "Intended use and limits carry over from the parent:",
                  ""] + ["> " + ln if ln else ">" for ln in parent_card.strip().splitlines()]
    return "\n".join(lines) + "\n"
