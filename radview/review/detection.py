"""Detection review: the RSNA challenge metric, FROC, box recall, reliability and why-losses (numpy).

Boxes are xyxy arrays in one pixel frame per image (the image's own pixels in the app and CLI).

- `challenge_score(outputs, truths, threshold)`: the RSNA Pneumonia Detection Challenge metric,
  the mean over images of the mean over IoU thresholds 0.40, 0.45, ..., 0.75 of TP / (TP + FP + FN),
  predictions (score >= threshold) matched greedily in descending score order to the unmatched truth
  box of highest IoU above the IoU threshold. As on Kaggle, an image with no truth box and no
  prediction has no defined score and is **excluded** from the mean; an image with truth and no
  prediction, or predictions and no truth, scores 0.
- `per_image_scores(...)` the per-image values (NaN for excluded images), for bootstrap CIs.
- `froc(outputs, truths, fp_rates=(0.5, 1, 2), iou=0.4)`: box sensitivity at the score where the
  mean number of false boxes per image reaches each rate.
- `box_recall(outputs, truths, threshold, iou=0.4)`.
- `reliability_bins(prob, y, n_bins=5)`: image probability vs observed frequency.
- `image_losses(outputs, truths, threshold)`: per image a loss and why (missed box, false box,
  poorly placed box), worst first.
- `detection_review(keys, outputs, truths, threshold, ...)` -> dict with everything above,
  the image AUROC (best box score) and bootstrap 95 % CIs; `format_detection_review(d)` -> text.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

IOU_THRESHOLDS = tuple(round(0.40 + 0.05 * i, 2) for i in range(8))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (n,4) x (m,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _kept(out: tuple[np.ndarray, np.ndarray], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    b, s = out
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    keep = s >= threshold
    order = np.argsort(-s[keep], kind="mergesort")
    return b[keep][order], s[keep][order]


def _matches(iou: np.ndarray, t: float) -> int:
    """Greedy TP count: predictions in score order, each to the best unmatched truth with IoU > t."""
    used: set[int] = set()
    tp = 0
    for i in range(iou.shape[0]):
        best, bj = t, -1
        for j in range(iou.shape[1]):
            if j not in used and iou[i, j] > best:
                best, bj = iou[i, j], j
        if bj >= 0:
            used.add(bj)
            tp += 1
    return tp


def image_score(boxes: np.ndarray, truth: np.ndarray) -> float:
    """One image's challenge score (boxes sorted by descending score); NaN when both empty."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0 and len(truth) == 0:
        return float("nan")
    if len(boxes) == 0 or len(truth) == 0:
        return 0.0
    iou = box_iou(boxes, truth)
    vals = []
    for t in IOU_THRESHOLDS:
        tp = _matches(iou, t)
        vals.append(tp / (tp + (len(boxes) - tp) + (len(truth) - tp)))
    return float(np.mean(vals))


def per_image_scores(outputs: Sequence[tuple[np.ndarray, np.ndarray]], truths: Sequence[np.ndarray],
                     threshold: float) -> np.ndarray:
    return np.asarray([image_score(_kept(o, threshold)[0], t) for o, t in zip(outputs, truths)], dtype=np.float64)


def challenge_score(outputs, truths, threshold: float) -> float:
    s = per_image_scores(outputs, truths, threshold)
    s = s[np.isfinite(s)]
    return float(s.mean()) if len(s) else float("nan")


def best_scores(outputs) -> np.ndarray:
    return np.asarray([float(np.max(s)) if len(s) else 0.0 for _b, s in outputs], dtype=np.float64)


def box_recall(outputs, truths, threshold: float, iou: float = 0.4) -> tuple[int, int]:
    """(truth boxes hit by a kept prediction with IoU >= iou, truth boxes)."""
    hit = n = 0
    for o, t in zip(outputs, truths):
        t = np.asarray(t, dtype=np.float64).reshape(-1, 4)
        n += len(t)
        b, _s = _kept(o, threshold)
        if len(t) and len(b):
            hit += int((box_iou(b, t).max(0) >= iou).sum())
    return hit, n


def froc(outputs, truths, fp_rates=(0.5, 1.0, 2.0), iou: float = 0.4) -> list[dict[str, float]]:
    """Box sensitivity at the loosest score threshold whose false boxes per image <= each rate."""
    n_img = max(len(truths), 1)
    n_truth = sum(len(np.asarray(t).reshape(-1, 4)) for t in truths)
    cands = sorted({float(s) for _b, ss in outputs for s in np.asarray(ss).reshape(-1)}, reverse=True)
    curve = []  # (threshold, fp per image, sensitivity)
    for thr in cands:
        fp = tp = 0
        for o, t in zip(outputs, truths):
            b, _s = _kept(o, thr)
            t = np.asarray(t, dtype=np.float64).reshape(-1, 4)
            if not len(b):
                continue
            if not len(t):
                fp += len(b)
                continue
            m = box_iou(b, t)
            hits = _matches(m, iou - 1e-9)
            tp += hits
            fp += len(b) - hits
        curve.append((thr, fp / n_img, tp / max(n_truth, 1)))
    out = []
    for r in fp_rates:
        ok = [c for c in curve if c[1] <= r]
        best = max(ok, key=lambda c: c[2]) if ok else (float("nan"), 0.0, 0.0)
        out.append({"fp_per_image": float(r), "sensitivity": round(best[2], 4),
                    "threshold": None if not math.isfinite(best[0]) else round(best[0], 4)})
    return out


def reliability_bins(prob: np.ndarray, y: np.ndarray, n_bins: int = 5) -> list[dict[str, Any]]:
    prob = np.asarray(prob, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(prob, edges[1:-1]), 0, n_bins - 1)
    out = []
    for k in range(n_bins):
        m = idx == k
        out.append({"bin": f"{edges[k]:.1f}-{edges[k + 1]:.1f}", "n": int(m.sum()),
                    "mean_prob": round(float(prob[m].mean()), 4) if m.any() else None,
                    "observed": round(float(y[m].mean()), 4) if m.any() else None})
    return out


def expected_calibration_error(bins: list[dict[str, Any]]) -> float:
    n = sum(b["n"] for b in bins)
    return float(sum(b["n"] * abs(b["mean_prob"] - b["observed"]) for b in bins if b["n"]) / max(n, 1))


def image_losses(outputs, truths, threshold: float, iou: float = 0.4) -> list[dict[str, Any]]:
    """Per image: loss = 1 - challenge score (NaN-images get 0) and the reasons, worst first."""
    rows = []
    for i, (o, t) in enumerate(zip(outputs, truths)):
        t = np.asarray(t, dtype=np.float64).reshape(-1, 4)
        b, s = _kept(o, threshold)
        sc = image_score(b, t)
        why: list[str] = []
        if len(t) or len(b):
            m = box_iou(b, t) if len(b) and len(t) else np.zeros((len(b), len(t)))
            best_t = m.max(0) if len(b) else np.zeros(len(t))
            best_b = m.max(1) if len(t) else np.zeros(len(b))
            missed = int((best_t < 0.1).sum())
            placed = int(((best_t >= 0.1) & (best_t < iou)).sum())
            false = int((best_b < 0.1).sum())
            if missed:
                why.append(f"missed box x{missed}")
            if placed:
                why.append(f"poorly placed box x{placed} (IoU {float(best_t[(best_t >= 0.1) & (best_t < iou)].max()):.2f})")
            if false:
                why.append(f"false box x{false} (score {float(s[best_b < 0.1].max()):.2f})")
        rows.append({"index": i, "loss": 0.0 if not math.isfinite(sc) else round(1.0 - sc, 4),
                     "score": None if not math.isfinite(sc) else round(sc, 4), "why": "; ".join(why),
                     "truth": t.round(1).tolist(), "predicted": b.round(1).tolist(), "scores": s.round(4).tolist()})
    rows.sort(key=lambda r: -r["loss"])
    return rows


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from radview.review.metrics import auroc

    return float(auroc(np.asarray(y, dtype=np.intp), np.asarray(s, dtype=np.float64)))


def detection_review(keys: Sequence[str], outputs, truths, threshold: float, top: int = 10,
                     n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Everything `radview review` reports for a detection model, as a JSON-able dict."""
    truths = [np.asarray(t, dtype=np.float64).reshape(-1, 4) for t in truths]
    y = np.asarray([len(t) > 0 for t in truths], dtype=np.intp)
    best = best_scores(outputs)
    call = best >= threshold
    per = per_image_scores(outputs, truths, threshold)
    rng = np.random.default_rng(seed)
    n = len(truths)
    boots_cs, boots_auc = [], []
    for _ in range(n_boot if n else 0):
        idx = rng.integers(0, n, n)
        v = per[idx]
        v = v[np.isfinite(v)]
        if len(v):
            boots_cs.append(v.mean())
        if 0 < y[idx].sum() < n:
            boots_auc.append(_auroc(y[idx], best[idx]))

    def ci(vals):
        return [round(float(np.percentile(vals, 2.5)), 4), round(float(np.percentile(vals, 97.5)), 4)] if len(vals) > 1 else [None, None]

    finite = per[np.isfinite(per)]
    hit, nbox = box_recall(outputs, truths, threshold)
    auc = _auroc(y, best) if 0 < y.sum() < n else float("nan")
    bins = reliability_bins(best, y)
    losses = image_losses(outputs, truths, threshold)[:top]
    for r in losses:
        r["key"] = keys[r.pop("index")]
    return {
        "images": n, "positive_images": int(y.sum()), "truth_boxes": nbox, "threshold": threshold,
        "challenge_score": round(float(finite.mean()), 4) if len(finite) else None,
        "challenge_score_ci95": ci(boots_cs), "images_scored": int(len(finite)),
        "auroc": None if not math.isfinite(auc) else round(auc, 4), "auroc_ci95": ci(boots_auc),
        "sensitivity": round(float(call[y == 1].mean()), 4) if y.sum() else None,
        "specificity": round(float((~call[y == 0]).mean()), 4) if (y == 0).sum() else None,
        "box_recall_iou40": round(hit / nbox, 4) if nbox else None, "box_recall_hits": hit,
        "froc": froc(outputs, truths), "reliability": bins,
        "ece": round(expected_calibration_error(bins), 4), "top_losses": losses,
    }


def format_detection_review(d: dict[str, Any]) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    cs = d["challenge_score_ci95"]
    ac = d["auroc_ci95"]
    lines = [f"images: {d['images']} ({d['positive_images']} with boxes, {d['truth_boxes']} boxes); "
             f"threshold {d['threshold']}",
             f"challenge metric: {f(d['challenge_score'])} (95% CI {f(cs[0])}-{f(cs[1])}; "
             f"{d['images_scored']} images scored, images without truth and prediction excluded)",
             f"image AUROC (best box score): {f(d['auroc'])} (95% CI {f(ac[0])}-{f(ac[1])})",
             f"sensitivity {f(d['sensitivity'])}, specificity {f(d['specificity'])} at the threshold",
             f"box recall at IoU 0.4: {f(d['box_recall_iou40'])} ({d['box_recall_hits']}/{d['truth_boxes']})",
             "FROC: " + ", ".join(f"{p['fp_per_image']:g} false boxes/image -> sensitivity {p['sensitivity']:.3f}"
                                   for p in d["froc"]),
             "reliability (5 bins): " + ", ".join(
                 f"{b['bin']}: n={b['n']}" + (f" p={b['mean_prob']:.2f} obs={b['observed']:.2f}" if b["n"] else "")
                 for b in d["reliability"]) + f"; ECE {d['ece']:.3f}",
             "top losses:"]
    for r in d["top_losses"]:
        if r["loss"] <= 0:
            continue
        lines.append(f"  {r['loss']:.3f}  {r['key']}  {r['why'] or '-'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- `radview review` hook


def review_items(predictions, truths) -> tuple[list[str], list, list[np.ndarray], list]:
    """(keys, outputs, truth boxes, predictions) per image from StudyPredictions and Truths
    (radview.review.collect / data). A study's label boxes are its image's truth; a study of
    several views uses each view's own label when the truth has one (image_labels), else it is
    left out of the box metrics (its boxes cannot be assigned to a view)."""
    keys, outs, tb, preds = [], [], [], []
    for sp in predictions:
        t = truths.get(sp.study_key)
        if t is None:
            continue
        label = getattr(t, "label", t)
        views = [v for v in sp.views if not v.error and v.probs]
        per_view = getattr(t, "image_labels", None) or {}
        for v in views:
            lab = per_view.get(v.ref.key) if per_view else (label if len(sp.views) == 1 else None)
            if lab is None:
                continue
            keys.append(v.ref.key)
            outs.append((np.asarray([b.as_xyxy() for b in v.boxes], dtype=np.float64).reshape(-1, 4),
                         np.asarray([b.score or 0.0 for b in v.boxes], dtype=np.float64)))
            tb.append(np.asarray([b.as_xyxy() for b in lab.boxes], dtype=np.float64).reshape(-1, 4))
            preds.append(v)
    return keys, outs, tb, preds


def review_cli(args, manifest, collected, truths, threshold: float | None = None) -> int:
    """The detection part of `radview review` (text, --json, --report DIR)."""
    import json
    import sys

    thr = float(manifest.threshold if threshold is None else threshold)
    keys, outs, tb, preds = review_items(collected.predictions, truths)
    if not keys:
        from radview.cli import CliError

        raise CliError(f"no image has both a prediction of {manifest.name} and a label")
    d = detection_review(keys, outs, tb, thr, top=args.top, n_boot=args.resamples)
    d["model"] = manifest.name
    d["n_cached"], d["n_predicted"] = collected.n_cached, collected.n_predicted
    if args.report:
        d["report"] = write_detection_report(d, preds, keys, args.report)
        print(f"report: {d['report']}", file=sys.stderr)
    if args.json:
        json.dump(d, sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(f"model {manifest.name} (detection)")
        print(format_detection_review(d))
    return 0


def write_detection_report(d: dict[str, Any], preds, keys, folder) -> str:
    """PNG per top loss (truth boxes green, predicted red with scores) and an index.html."""
    import html
    import os

    from PIL import Image

    from radview.io import load_frame
    from radview.io.display import display_image
    from radview.models.overlay import draw_boxes
    from radview.types import Box

    os.makedirs(folder, exist_ok=True)
    by_key = dict(zip(keys, preds))
    rows = []
    for i, r in enumerate(d["top_losses"]):
        p = by_key.get(r["key"])
        if p is None or r["loss"] <= 0:
            continue
        try:
            frame = load_frame(p.ref.path, p.ref.frame)
        except Exception as exc:  # noqa: BLE001 - a file gone since the prediction: listed, not drawn
            rows.append((r, None, str(exc)))
            continue
        rgb = display_image(frame)
        rgb = np.repeat(rgb[..., None], 3, 2) if rgb.ndim == 2 else rgb
        w = max(2, rgb.shape[0] // 300)
        truth = [Box(x0, y0, x1 - x0, y1 - y0, label="truth") for x0, y0, x1, y1 in r["truth"]]
        pred = [Box(x0, y0, x1 - x0, y1 - y0, label="pred", score=s) for (x0, y0, x1, y1), s in zip(r["predicted"], r["scores"])]
        rgb = draw_boxes(rgb, truth, color=(40, 220, 60), width=w)
        rgb = draw_boxes(rgb, pred, color=(230, 40, 40), width=w)
        name = f"loss_{i:02d}.png"
        Image.fromarray(np.ascontiguousarray(rgb)).save(os.path.join(folder, name))
        rows.append((r, name, ""))
    cs = d["challenge_score"]
    body = [f"<h1>Detection review: {html.escape(str(d.get('model', '')))}</h1>",
            f"<pre>{html.escape(format_detection_review(d))}</pre>", "<h2>Top losses</h2>",
            "<p>green: truth boxes; red: predicted boxes at or above the threshold</p>"]
    for r, name, err in rows:
        body.append(f"<div><p>{r['loss']:.3f} {html.escape(r['key'])}: {html.escape(r['why'] or '-')}</p>"
                    + (f"<img src='{name}' width='384'>" if name else f"<p>not drawn: {html.escape(err)}</p>") + "</div>")
    index = os.path.join(folder, "index.html")
    with open(index, "w", encoding="utf-8") as fh:
        fh.write("<html><body>" + "\n".join(body) + "</body></html>\n")
    del cs
    return index
