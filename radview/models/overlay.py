"""Overlays as the viewer shows them, as pixels (numpy + Pillow only; no Qt, no torch at import).

- `colormap_lut(name="jet") -> (256, 3) uint8`: 'jet', 'inferno', 'viridis', 'hot', 'gray'.
- `blend_cam(gray_uint8, cam, alpha=0.4, colormap="jet") -> HxWx3 uint8`: the CAM (float 0..1,
  resized to the image if needed) coloured and alpha-blended over the gray (or RGB) image.
- `draw_boxes(rgb, boxes, scale=(1, 1), color=..., width=2, labels=True) -> HxWx3 uint8`:
  box outlines with 'label score' captions; scale maps image pixels to rgb pixels.
- `render_overlay(frame, display_u8, model_name, overlays, device=None) -> HxWx3 uint8`: runs
  the model on the frame and draws the requested overlays ({'cam', 'boxes'}) over the display
  image (which may be smaller than the frame, e.g. display_image(max_size=...)); an
  out-of-domain verdict is written across the top. Used by `radview render`.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radview.types import Box, Frame

OVERLAYS = ("cam", "boxes")

# Anchor colours (evenly spaced) of perceptual maps, interpolated to 256 entries.
_ANCHORS = {
    "inferno": [(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                (245, 125, 21), (250, 193, 39), (252, 255, 164)],
    "viridis": [(68, 1, 84), (70, 50, 127), (54, 92, 141), (39, 127, 142), (31, 161, 135),
                (74, 194, 109), (159, 218, 58), (253, 231, 37)],
    "hot": [(0, 0, 0), (128, 0, 0), (255, 0, 0), (255, 128, 0), (255, 255, 0), (255, 255, 128),
            (255, 255, 255)],
    "gray": [(0, 0, 0), (255, 255, 255)],
}


def colormap_lut(name: str = "jet") -> np.ndarray:
    """A (256, 3) uint8 colour table."""
    x = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        rgb = np.stack([np.clip(1.5 - np.abs(4 * x - c), 0, 1) for c in (3, 2, 1)], axis=1)
        return (rgb * 255 + 0.5).astype(np.uint8)
    if name not in _ANCHORS:
        raise ValueError(f"unknown colormap {name!r} (one of jet, {', '.join(_ANCHORS)})")
    a = np.asarray(_ANCHORS[name], dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(a))
    rgb = np.stack([np.interp(x, pos, a[:, c]) for c in range(3)], axis=1)
    return (rgb + 0.5).astype(np.uint8)


def _resize_float(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if a.shape[:2] == hw:
        return a
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.asarray(im.resize((hw[1], hw[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return img.copy()
    if img.ndim == 3 and img.shape[2] == 4:
        return img[:, :, :3].copy()
    raise ValueError(f"expected HxW or HxWx3 image, got shape {img.shape}")


def blend_cam(gray_uint8: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: str = "jet",
              weighted: bool = False) -> np.ndarray:
    """weighted=True scales the opacity with the map (0.3 alpha where it is cold, alpha where it
    is hot), so cold areas stay readable in small thumbnails (the review grid)."""
    base = _as_rgb(gray_uint8)
    c = _resize_float(np.clip(np.asarray(cam, dtype=np.float32), 0, 1), base.shape[:2])
    c = np.nan_to_num(c)
    colour = colormap_lut(colormap)[np.clip(c * 255 + 0.5, 0, 255).astype(np.uint8)]
    a = (alpha * (0.3 + 0.7 * c))[..., None] if weighted else alpha
    out = base.astype(np.float32) * (1.0 - a) + colour.astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_boxes(rgb: np.ndarray, boxes: Iterable[Box], scale: tuple[float, float] = (1.0, 1.0),
               color: tuple[int, int, int] = (255, 40, 40), width: int = 2, labels: bool = True) -> np.ndarray:
    im = Image.fromarray(_as_rgb(rgb))
    draw = ImageDraw.Draw(im)
    font = _font(max(10, im.height // 40))
    sx, sy = scale
    for b in boxes:
        x0, y0, x1, y1 = b.x * sx, b.y * sy, (b.x + b.width) * sx, (b.y + b.height) * sy
        draw.rectangle([x0, y0, x1, y1], outline=color, width=width)
        if labels:
            text = b.label if b.score is None else f"{b.label} {b.score:.2f}"
            ty = max(0.0, y0 - font.size - 4) if hasattr(font, "size") else max(0.0, y0 - 14)
            draw.text((x0 + 2, ty), text, fill=color, font=font)
    return np.asarray(im)


def _banner(rgb: np.ndarray, text: str) -> np.ndarray:
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    font = _font(max(10, im.height // 45))
    h = (getattr(font, "size", 12)) + 8
    draw.rectangle([0, 0, im.width, h], fill=(90, 0, 0))
    draw.text((4, 3), text, fill=(255, 230, 120), font=font)
    return np.asarray(im)


def render_overlay(frame: Frame, display_u8: np.ndarray, model_name: str, overlays: set[str] | Iterable[str],
                   device=None, alpha: float = 0.4, colormap: str = "jet", method: str | None = None) -> np.ndarray:
    """See the module doc. Raises ValueError for an unknown overlay name and
    radview.models.registry.ModelError when the model cannot be loaded."""
    overlays = set(overlays)
    unknown = overlays - set(OVERLAYS)
    if unknown:
        raise ValueError(f"unknown overlay {', '.join(sorted(unknown))} (use {', '.join(OVERLAYS)})")
    from radview.models.engine import predict_frames
    from radview.models.registry import load_model

    model = load_model(model_name, device)
    rgb = _as_rgb(display_u8)
    fh, fw = frame.shape
    scale = (rgb.shape[1] / fw, rgb.shape[0] / fh)
    (pred,) = predict_frames([frame], model)
    if pred.error:
        raise ValueError(pred.error)
    if "cam" in overlays:
        from radview.models.cam import grad_cam

        cam = grad_cam(model, frame, method=method)
        rgb = blend_cam(rgb, cam.data, alpha=alpha, colormap=colormap)
    shown = [b for b in pred.boxes if b.score is None or b.score >= model.manifest.threshold]
    if "boxes" in overlays and shown:
        rgb = draw_boxes(rgb, shown, scale=scale, width=max(2, rgb.shape[0] // 300))
    if not pred.in_domain:
        rgb = _banner(rgb, f"{model_name}: out of domain - {pred.domain_reason}")
    return rgb
