"""The review as files: PNG plots drawn with Pillow (no matplotlib) and an index.html linking them.

- `render_confusion_matrix`, `render_roc`, `render_sweep`, `render_top_losses`: one PNG each;
- `blend_cam(gray, cam)`: a CAM map (float 0..1) over a gray uint8 image, for thumbnails;
- `write_report(summary, out_dir, images)`: all of the above plus index.html and summary.json.

Images for the top-loss grid are passed in (ref key -> (gray uint8 HxW, CAM float HxW or None)),
so this module never loads files or models itself.
"""
from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radview.review.metrics import ThresholdSweep
from radview.review.summary import ReviewSummary, summary_to_dict

__all__ = ["jet_lut", "blend_cam", "render_confusion_matrix", "render_roc", "render_sweep",
           "render_top_losses", "write_report"]

BG = (255, 255, 255)
FG = (30, 30, 30)
GRID = (225, 225, 225)
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def jet_lut() -> np.ndarray:
    """(256, 3) uint8 'jet' colour table: the viewer's (radview.models.overlay)."""
    from radview.models.overlay import colormap_lut

    return colormap_lut("jet")


def blend_cam(gray: np.ndarray, cam: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 of a gray image with a CAM (float 0..1, any size) laid over it, opacity scaled
    with the map so cold areas stay readable; the viewer's blend (radview.models.overlay)."""
    from radview.models.overlay import blend_cam as overlay_blend

    g = np.asarray(gray, dtype=np.uint8)
    if cam is None:
        rgb = np.repeat(g[..., None], 3, axis=2) if g.ndim == 2 else g[..., :3]
        return np.ascontiguousarray(rgb)
    return overlay_blend(g, cam, alpha=alpha, colormap="jet", weighted=True)


def _text(draw: ImageDraw.ImageDraw, xy, text: str, font, fill=FG, anchor="la") -> None:
    draw.text(xy, text, font=font, fill=fill, anchor=anchor)


def render_confusion_matrix(cm: np.ndarray, classes: tuple[str, ...], path: str | os.PathLike,
                            title: str = "Confusion matrix", cell: int = 96) -> Path:
    """Rows actual, columns predicted; shade by row fraction; count and row % in each cell."""
    cm = np.asarray(cm)
    n = len(classes)
    f, fs, ft = _font(14), _font(12), _font(16)
    label_w = max([int(f.getlength(c)) for c in classes] + [40]) + 40
    top = 86
    w, h = label_w + n * cell + 30, top + n * cell + 60
    img = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(img)
    _text(d, (w // 2, 10), title, ft, anchor="ma")
    _text(d, (label_w + n * cell // 2, top - 50), "Predicted", fs, anchor="ma")
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(rows > 0, cm / np.where(rows > 0, rows, 1), 0.0)
    for j, name in enumerate(classes):
        _text(d, (label_w + j * cell + cell // 2, top - 6), name, f, anchor="md")
    for i, name in enumerate(classes):
        y0 = top + i * cell
        _text(d, (label_w - 8, y0 + cell // 2), name, f, anchor="rm")
        for j in range(n):
            x0 = label_w + j * cell
            v = float(frac[i, j])
            base = np.array((49, 130, 189)) if i == j else np.array((222, 45, 38))
            col = tuple(int(c) for c in (255 - (255 - base) * v))
            d.rectangle([x0, y0, x0 + cell - 2, y0 + cell - 2], fill=col)
            txt = (255, 255, 255) if v > 0.55 else FG
            _text(d, (x0 + cell // 2, y0 + cell // 2 - 9), str(int(cm[i, j])), ft, txt, "mm")
            _text(d, (x0 + cell // 2, y0 + cell // 2 + 12), f"{100 * v:.0f}%", fs, txt, "mm")
    _text(d, (12, top + n * cell // 2), "Actual", fs, anchor="lm")
    _text(d, (w // 2, h - 22), f"n = {int(cm.sum())}  accuracy = "
          f"{(np.trace(cm) / cm.sum() if cm.sum() else float('nan')):.3f}", fs, anchor="ma")
    return _save(img, path)


class _Axes:
    """Data (0..1 by default) to pixel mapping for a square or rectangular plot area."""

    def __init__(self, img: Image.Image, box: tuple[int, int, int, int],
                 xlim=(0.0, 1.0), ylim=(0.0, 1.0)):
        self.d = ImageDraw.Draw(img)
        self.x0, self.y0, self.x1, self.y1 = box
        self.xlim, self.ylim = xlim, ylim

    def px(self, x, y):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        fx = (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        fy = (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0])
        return self.x0 + fx * (self.x1 - self.x0), self.y1 - fy * (self.y1 - self.y0)

    def frame(self, xlabel: str, ylabel: str, ticks=(0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> None:
        f = _font(11)
        for t in ticks:
            x, _ = self.px(t, 0)
            _, y = self.px(0, t)
            self.d.line([(x, self.y0), (x, self.y1)], fill=GRID)
            self.d.line([(self.x0, y), (self.x1, y)], fill=GRID)
            _text(self.d, (x, self.y1 + 6), f"{t:g}", f, anchor="ma")
            _text(self.d, (self.x0 - 6, y), f"{t:g}", f, anchor="rm")
        self.d.rectangle([self.x0, self.y0, self.x1, self.y1], outline=FG)
        _text(self.d, ((self.x0 + self.x1) / 2, self.y1 + 24), xlabel, _font(12), anchor="ma")
        _text(self.d, (8, self.y0 - 18), ylabel, _font(12), anchor="la")

    def line(self, x, y, fill, width: int = 2) -> None:
        ok = np.isfinite(np.asarray(x, float)) & np.isfinite(np.asarray(y, float))
        px, py = self.px(np.asarray(x)[ok], np.asarray(y)[ok])
        pts = list(zip(px.tolist(), py.tolist()))
        if len(pts) >= 2:
            self.d.line(pts, fill=fill, width=width, joint="curve")

    def dashed(self, a, b, fill=(150, 150, 150), dash: float = 6.0) -> None:
        (xa, ya), (xb, yb) = self.px(*a), self.px(*b)
        length = float(np.hypot(xb - xa, yb - ya))
        for s in np.arange(0, length, 2 * dash):
            t0, t1 = s / length, min(1.0, (s + dash) / length)
            self.d.line([(xa + (xb - xa) * t0, ya + (yb - ya) * t0),
                         (xa + (xb - xa) * t1, ya + (yb - ya) * t1)], fill=fill, width=1)


def render_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike,
               aucs: Mapping[str, float] | None = None,
               point: tuple[float, float] | None = None, title: str = "ROC curve",
               size: int = 460) -> Path:
    """ROC curves (fpr, tpr) per class, AUROC in the legend, the operating point as a dot."""
    m = 60
    img = Image.new("RGB", (size + 2 * m, size + 2 * m + 20), BG)
    ax = _Axes(img, (m, m, m + size, m + size))
    _text(ax.d, (img.width // 2, 12), title, _font(16), anchor="ma")
    ax.frame("1 - specificity (false positive rate)", "sensitivity")
    ax.dashed((0, 0), (1, 1))
    f = _font(12)
    for k, (name, (fpr, tpr)) in enumerate(curves.items()):
        col = PALETTE[k % len(PALETTE)]
        ax.line(fpr, tpr, col)
        auc = (aucs or {}).get(name)
        lab = f"{name}: AUROC {auc:.3f}" if auc is not None and np.isfinite(auc) else name
        y = m + size - 20 - 18 * (len(curves) - 1 - k)
        ax.d.line([(m + size - 190, y), (m + size - 170, y)], fill=col, width=3)
        _text(ax.d, (m + size - 165, y), lab, f, anchor="lm")
    if point is not None and all(np.isfinite(point)):
        x, y = ax.px(*point)
        ax.d.ellipse([x - 5, y - 5, x + 5, y + 5], outline=FG, fill=(255, 215, 0), width=2)
    return _save(img, path)


def render_reliability(curves: Mapping[str, object], path: str | os.PathLike,
                       title: str = "Reliability diagram", size: int = 460) -> Path:
    """A reliability diagram: per bin, observed accuracy against mean confidence (top-class
    probability) for each radview.review.calibration.Reliability in `curves` (e.g. before /
    after temperature scaling), the diagonal of perfect calibration, ECE in the legend. Empty
    bins are left out; dot size follows the bin's count."""
    m = 60
    img = Image.new("RGB", (size + 2 * m, size + 2 * m + 20), BG)
    ax = _Axes(img, (m, m, m + size, m + size))
    _text(ax.d, (img.width // 2, 12), title, _font(16), anchor="ma")
    ax.frame("mean confidence (top-class probability)", "observed accuracy")
    ax.dashed((0, 0), (1, 1))
    f = _font(12)
    for k, (name, r) in enumerate(curves.items()):
        col = PALETTE[k % len(PALETTE)]
        keep = np.asarray(r.count) > 0
        conf, acc, cnt = (np.asarray(r.confidence)[keep], np.asarray(r.accuracy)[keep],
                          np.asarray(r.count)[keep])
        ax.line(conf, acc, col)
        for c, a, n in zip(conf, acc, cnt):
            x, y = ax.px(c, a)
            rad = 3 + 6 * float(np.sqrt(n / max(cnt.max(), 1)))
            ax.d.ellipse([x - rad, y - rad, x + rad, y + rad], outline=col, width=2)
        y = m + size - 20 - 18 * (len(curves) - 1 - k)
        ax.d.line([(m + size - 190, y), (m + size - 170, y)], fill=col, width=3)
        _text(ax.d, (m + size - 165, y), f"{name}: ECE {r.ece:.3f} (n={r.n})", f, anchor="lm")
    return _save(img, path)


def render_sweep(sweep: ThresholdSweep, path: str | os.PathLike, threshold: float | None = None,
                 source: str = "", size: int = 460) -> Path:
    """Sensitivity, specificity and kappa against the threshold, the current one marked."""
    m = 60
    img = Image.new("RGB", (size + 2 * m, size + 2 * m + 20), BG)
    ax = _Axes(img, (m, m, m + size, m + size), ylim=(-0.2, 1.0))
    _text(ax.d, (img.width // 2, 12), "Threshold sweep", _font(16), anchor="ma")
    ax.frame("threshold (positive if p > threshold)", "value",
             ticks=(0, 0.2, 0.4, 0.6, 0.8, 1.0))
    t = np.clip(sweep.thresholds, 0.0, 1.0)
    f = _font(12)
    for k, (name, values) in enumerate((("sensitivity", sweep.sensitivity),
                                        ("specificity", sweep.specificity),
                                        ("kappa", sweep.kappa))):
        col = PALETTE[k]
        ax.line(t, values, col)
        y = m + 14 + 18 * k
        ax.d.line([(m + 10, y), (m + 30, y)], fill=col, width=3)
        _text(ax.d, (m + 35, y), name, f, anchor="lm")
    if threshold is not None and np.isfinite(threshold):
        x, _ = ax.px(threshold, 0)
        ax.d.line([(x, m), (x, m + size)], fill=FG, width=1)
        _text(ax.d, (x + 4, m + size - 14), f"{threshold:.3f} ({source or 'threshold'})", f)
    return _save(img, path)


def render_top_losses(items, images: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
                      path: str | os.PathLike, columns: int = 3, thumb: int = 180) -> Path:
    """A grid like fastai's plot_top_losses: per study its views (with CAM where given) and
    'predicted / actual / loss / probability of actual'. items: TopLoss records."""
    f, fs = _font(12), _font(11)
    max_views = max([len(t.views) for t in items] + [1])
    per_row_views = min(max_views, 4)
    tile_w = max(per_row_views * (thumb + 4) + 8, 260)
    tile_h = thumb + 62
    cols = max(1, min(columns, len(items) or 1))
    rows = max(1, -(-len(items) // cols))
    img = Image.new("RGB", (cols * tile_w, rows * tile_h + 30), BG)
    d = ImageDraw.Draw(img)
    _text(d, (img.width // 2, 8), "Top losses: predicted / actual / loss / probability of actual",
          _font(14), anchor="ma")
    for n, t in enumerate(items):
        x0, y0 = (n % cols) * tile_w, 30 + (n // cols) * tile_h
        wrong = t.predicted != t.actual
        d.rectangle([x0 + 2, y0 + 2, x0 + tile_w - 3, y0 + tile_h - 3],
                    outline=(200, 40, 40) if wrong else (60, 150, 60), width=2)
        views = t.views[:per_row_views] or ()
        for k, v in enumerate(views):
            px = x0 + 6 + k * (thumb + 4)
            got = images.get(v.ref)
            if got is None:
                d.rectangle([px, y0 + 6, px + thumb, y0 + 6 + thumb], fill=(60, 60, 60))
                _text(d, (px + thumb // 2, y0 + 6 + thumb // 2), "no image", fs, (230, 230, 230), "mm")
                continue
            tile = Image.fromarray(blend_cam(*got))
            scale = thumb / max(tile.width, tile.height)  # fit the box, small images enlarged
            tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))),
                               Image.LANCZOS if scale < 1 else Image.BILINEAR)
            img.paste(tile, (px + (thumb - tile.width) // 2, y0 + 6 + (thumb - tile.height) // 2))
        if not views:
            _text(d, (x0 + tile_w // 2, y0 + 6 + thumb // 2), "no views", fs, anchor="mm")
        line1 = f"#{t.rank}  {t.predicted} / {t.actual} / {t.loss:.2f} / {t.probability:.2f}"
        _text(d, (x0 + 8, y0 + thumb + 12), line1, f, (170, 20, 20) if wrong else FG)
        _text(d, (x0 + 8, y0 + thumb + 30), _shorten(t.study_key, f, tile_w - 16), fs)
        extra = " ".join(x for x in (t.study_type, "corrected" if t.corrected else "",
                                     "" if t.in_domain else "OUT OF DOMAIN") if x)
        if extra:
            _text(d, (x0 + 8, y0 + thumb + 45), extra, fs, (90, 90, 90))
    return _save(img, path)


def _shorten(text: str, font, width: int) -> str:
    if font.getlength(text) <= width:
        return text
    while len(text) > 4 and font.getlength("..." + text) > width:
        text = text[1:]
    return "..." + text


def _save(img: Image.Image, path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    img.save(p, format="PNG", optimize=False)
    return p


def write_report(summary: ReviewSummary, out_dir: str | os.PathLike,
                 images: Mapping[str, tuple[np.ndarray, np.ndarray | None]] | None = None,
                 title: str = "") -> Path:
    """Write confusion_matrix.png, roc.png, (sweep.png), top_losses.png, summary.json and
    index.html (linking them, with the metrics tables) into out_dir. Returns index.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = summary
    files = [("Confusion matrix", render_confusion_matrix(s.confusion_matrix, s.classes,
                                                         out / "confusion_matrix.png"))]
    if s.roc:
        aucs = {c: cm.auroc for c, cm in s.per_class.items()}
        point = None
        if s.sweep is not None and s.threshold is not None:
            at = s.sweep.at(s.threshold)
            point = (1 - at["specificity"], at["sensitivity"])
        files.append(("ROC", render_roc(s.roc, out / "roc.png", aucs, point)))
    if s.sweep is not None:
        files.append(("Threshold sweep", render_sweep(s.sweep, out / "sweep.png", s.threshold,
                                                      s.threshold_source)))
    files.append(("Top losses", render_top_losses(s.top_losses, images or {},
                                                  out / "top_losses.png")))
    data = summary_to_dict(s)
    (out / "summary.json").write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    index = out / "index.html"
    index.write_text(_html(s, data, files, title), encoding="utf-8")
    return index


def _fmt(v, ci=None) -> str:
    if v is None:
        return "n/a"
    txt = f"{v:.3f}" if isinstance(v, float) else str(v)
    if ci and ci[0] is not None:
        txt += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return txt


def _html(s: ReviewSummary, d: dict, files, title: str) -> str:
    e = html.escape
    names = ("accuracy", "kappa", "auroc", "sensitivity", "specificity")
    head = "".join(f"<th>{n}</th>" for n in ("group", "n", *names))
    rows = [("all", d)] + list(d["per_group"].items())
    body = "".join(
        "<tr>" + f"<td>{e(g)}</td><td>{m['n'] if 'n' in m else d['n_studies']}</td>"
        + "".join(f"<td>{_fmt(m.get(k), m.get(k + '_ci'))}</td>" for k in names) + "</tr>"
        for g, m in rows)
    cls = "".join(f"<tr><td>{e(c)}</td><td>{m['n']}</td><td>{_fmt(m['sensitivity'])}</td>"
                  f"<td>{_fmt(m['specificity'])}</td><td>{_fmt(m['precision'])}</td>"
                  f"<td>{_fmt(m['auroc'])}</td></tr>" for c, m in d["per_class"].items())
    conf = "".join(f"<li>{e(p['actual'])} called {e(p['predicted'])}: {p['count']}</li>"
                   for p in d["most_confused"]) or "<li>none</li>"
    top = "".join(
        f"<tr><td>{t['rank']}</td><td>{e(t['study'])}</td><td>{e(t['study_type'])}</td>"
        f"<td>{e(t['actual'])}</td><td>{e(t['predicted'])}</td><td>{t['probability']:.3f}</td>"
        f"<td>{t['loss']:.3f}</td><td>{'yes' if t['corrected'] else ''}</td></tr>"
        for t in d["top_losses"])
    imgs = "".join(f"<h2>{e(name)}</h2><p><a href='{p.name}'><img src='{p.name}' alt='{e(name)}'"
                   f" style='max-width:100%'></a></p>" for name, p in files)
    thr = (f"threshold {s.threshold:.3f} ({e(s.threshold_source)})" if s.threshold is not None
           else "calls by argmax")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>radview review: {e(s.model)}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}</style></head><body>
<h1>Review of {e(s.model)} {e(s.model_version)}{(' - ' + e(title)) if title else ''}</h1>
<p>{s.n_studies} studies, {s.n_images} images, {len(s.skipped)} studies skipped; classes
{e(', '.join(s.classes))}; {thr}. Intervals are bootstrap 95% CIs.</p>
<ul>{''.join(f"<li><a href='{p.name}'>{e(name)}</a></li>" for name, p in files)}
<li><a href='summary.json'>summary.json</a></li></ul>
<h2>Metrics</h2><table><tr>{head}</tr>{body}</table>
<h2>Per class (one vs rest)</h2><table><tr><th>class</th><th>n</th><th>sensitivity</th>
<th>specificity</th><th>precision</th><th>AUROC</th></tr>{cls}</table>
<h2>Most confused</h2><ul>{conf}</ul>
<h2>Top losses</h2><table><tr><th>#</th><th>study</th><th>type</th><th>actual</th>
<th>predicted</th><th>p(actual)</th><th>loss</th><th>corrected</th></tr>{top}</table>
{imgs}
</body></html>
"""
