"""Pure display and model-input transforms of a Frame (numpy only; no Qt, no torch).

Two outputs from one decoded frame, from separate functions:
- `display_image`: uint8, what the viewer shows (modality LUT -> VOI -> polarity), computed
  through a lookup table indexed by the stored values, so a window/level change costs one
  table build (<= 65,536 entries) plus one `take` (split across two threads on big images).
- `model_image`: float32 in [0, 1] with the default VOI and polarity applied; the start of
  model preprocessing (radview.models.preprocess), never the display pixels.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from radview.types import Frame, LookupTable, Window

_POOL: ThreadPoolExecutor | None = None
_PARALLEL_MIN_PIXELS = 1_000_000


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2), thread_name_prefix="radview-lut")
    return _POOL


# --------------------------------------------------------------------------- pieces


def stored_domain(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For integer stored values of at most 16 bits: (index array, stored value of each table
    entry). The index array is `stored` itself, or a same-size unsigned view for signed data, so
    that `table[index]` needs no offset arithmetic. None for other dtypes (float, 32-bit)."""
    dt = stored.dtype
    if dt == np.uint8:
        return stored, np.arange(256, dtype=np.float64)
    if dt == np.int8:
        return stored.view(np.uint8), np.arange(256, dtype=np.uint8).view(np.int8).astype(np.float64)
    if dt == np.uint16:
        return stored, np.arange(65536, dtype=np.float64)
    if dt == np.int16:
        return stored.view(np.uint16), np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.float64)
    return None


def apply_lut_table(x: np.ndarray, lut: LookupTable) -> np.ndarray:
    """Apply a DICOM LUT (modality or VOI) to values x: below first mapped -> first entry,
    beyond the table -> last entry."""
    idx = np.clip(np.rint(x - lut.first_mapped), 0, len(lut.table) - 1).astype(np.int64)
    return lut.table[idx]


def modality(frame: Frame, stored: np.ndarray) -> np.ndarray:
    """Stored values -> modality units (Hounsfield, optical density, ...), float64."""
    x = np.asarray(stored, dtype=np.float64)
    if frame.modality_lut is not None:
        return apply_lut_table(x, frame.modality_lut)
    if frame.slope != 1.0 or frame.intercept != 0.0:
        return x * frame.slope + frame.intercept
    return x


def window_unit(x: np.ndarray, window: Window) -> np.ndarray:
    """VOI window (PS3.3 C.11.2.1.2) of modality values x to [0, 1]."""
    c, w = float(window.center), float(window.width)
    fn = window.function.upper()
    if fn == "SIGMOID":
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / max(w, 1e-12), -700, 700)))
    if fn == "LINEAR_EXACT":
        w = max(w, 1e-12)
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    # LINEAR: y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped. The standard wants w >= 1 (integer
    # stored values); windows are real numbers, so a narrower one (float-like data: PET, dose,
    # values rescaled to span less than 1 unit) keeps its width, as LINEAR_EXACT (the limit).
    if w <= 1.0:
        return np.clip((x - c) / max(w, 1e-300) + 0.5, 0.0, 1.0)
    return np.clip((x - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0)


def voi_unit(frame: Frame, x: np.ndarray, window: Window | None = None) -> np.ndarray:
    """Modality values -> [0, 1] through the chosen VOI: an explicit window if given, else
    the VOI LUT sequence, else the first window of the file, else the auto window."""
    if window is None and frame.voi_lut is not None:
        lut = frame.voi_lut
        y = apply_lut_table(x, lut)
        top = float(2 ** lut.bits - 1) if lut.bits else float(lut.table.max() or 1)
        return np.clip(y / top, 0.0, 1.0)
    return window_unit(x, window or frame.default_window)


def unit_lut(frame: Frame, window: Window | None = None, invert: bool | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(index array, float64 table in [0,1]) for integer frames; None otherwise."""
    dom = stored_domain(frame.stored)
    if dom is None:
        return None
    index, values = dom
    y = voi_unit(frame, modality(frame, values), window)
    if frame.invert if invert is None else invert:
        y = 1.0 - y
    return index, y


def _take(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """table[index], split over threads for big images (numpy releases the GIL in take)."""
    if index.size < _PARALLEL_MIN_PIXELS or index.ndim != 2:
        return np.take(table, index)
    out = np.empty(index.shape, dtype=table.dtype)
    n = 2
    step = math.ceil(index.shape[0] / n)
    futures = [
        _pool().submit(np.take, table, index[i : i + step], None, out[i : i + step])
        for i in range(0, index.shape[0], step)
    ]
    for f in futures:
        f.result()
    return out


def _reduce(img: np.ndarray, max_size: int | None) -> np.ndarray:
    """Box-filter a uint8 image down so that its longest side is <= max_size."""
    if not max_size:
        return img
    h, w = img.shape[:2]
    if max(h, w) <= max_size:
        return img
    from PIL import Image

    pil = Image.fromarray(img)
    factor = max(h, w) // max_size
    if factor > 1:
        pil = pil.reduce(factor)
    if max(pil.size) > max_size:
        scale = max_size / max(pil.size)
        pil = pil.resize((max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale))), Image.BILINEAR)
    return np.asarray(pil)


def block_mean(stored: np.ndarray, k: int) -> np.ndarray:
    """Box-filter an integer (or float) image by an integer factor k, keeping its dtype
    (values rounded), so that the display LUT can still index it. Edges that do not fill a
    whole block are dropped (at most k-1 pixels)."""
    if k <= 1:
        return stored
    h, w = (stored.shape[0] // k) * k, (stored.shape[1] // k) * k
    if stored.dtype.kind == "f":
        acc_dtype = np.float64
    elif stored.dtype.itemsize <= 2 and k <= 256:  # k*k*65535 fits in 32 bits
        acc_dtype = np.uint32 if stored.dtype.kind == "u" else np.int32
    else:
        acc_dtype = np.int64
    acc = stored[0:h:k, 0:w:k].astype(acc_dtype)
    for dy in range(k):
        for dx in range(k):
            if dy or dx:
                acc += stored[dy:h:k, dx:w:k]
    if stored.dtype.kind == "f":
        return (acc / (k * k)).astype(stored.dtype)
    return ((acc + (k * k) // 2) // (k * k)).astype(stored.dtype)


# --------------------------------------------------------------------------- outputs


def display_image(
    frame: Frame,
    window: Window | None = None,
    invert: bool | None = None,
    max_size: int | None = None,
) -> np.ndarray:
    """What the viewer shows: uint8 HxW (HxWx3 for colour).

    window: None = the frame's default VOI (VOI LUT, else first DICOM window, else auto).
    invert: None = the frame's own polarity (MONOCHROME1 / INVERSE shown inverted); True or
            False force it (the viewer's invert button toggles relative to the frame's).
    max_size: box-filter down so that the longest side fits (thumbnails, screen-sized views).
    """
    if frame.is_color:
        img = frame.stored
        if window is not None or invert:
            lut = np.clip(window_unit(np.arange(256, dtype=np.float64), window or frame.auto_window) * 255.0 + 0.5, 0, 255)
            if invert:
                lut = 255.0 - lut
            img = np.take(lut.astype(np.uint8), img)
        return _reduce(np.ascontiguousarray(img), max_size)
    if max_size and max(frame.shape) > max_size:
        # reduce the stored values first (exact box means of k x k pixels, k the smallest factor
        # that fits), so the LUT runs on fewer pixels and no resampling pass is needed after it
        from dataclasses import replace

        k = math.ceil(max(frame.shape) / max_size)
        frame = replace(frame, stored=block_mean(frame.stored, k))
    lut = unit_lut(frame, window, invert)
    if lut is not None:
        index, y = lut
        table = (y * 255.0 + 0.5).astype(np.uint8)
        return _reduce(_take(table, index), max_size)
    x = voi_unit(frame, modality(frame, frame.stored), window)
    if frame.invert if invert is None else invert:
        x = 1.0 - x
    return _reduce((x * 255.0 + 0.5).astype(np.uint8), max_size)


def model_image(frame: Frame) -> np.ndarray:
    """Float32 HxW in [0, 1]: default VOI, polarity applied (bone bright), colour -> luminance.
    The input of model preprocessing (resize/normalise happen in radview.models.preprocess)."""
    if frame.is_color:
        rgb = frame.stored.astype(np.float32)
        gray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return np.clip(gray / 255.0, 0.0, 1.0).astype(np.float32)
    lut = unit_lut(frame)
    if lut is not None:
        index, y = lut
        return _take(y.astype(np.float32), index)
    x = voi_unit(frame, modality(frame, frame.stored))
    if frame.invert:
        x = 1.0 - x
    return x.astype(np.float32)


def modality_value(frame: Frame, row: int, col: int) -> tuple[float | tuple, float | tuple]:
    """(stored value, modality value) of one pixel, for the viewer's readout."""
    v = frame.stored[row, col]
    if frame.is_color:
        t = tuple(int(c) for c in v)
        return t, t
    return float(v), float(modality(frame, np.asarray([v]))[0])


def auto_window(frame: Frame, low: float = 0.5, high: float = 99.5) -> Window:
    """A robust window from percentiles of the modality values (a subsample of pixels)."""
    if frame.is_color:
        return Window(127.5, 255.0, "LINEAR_EXACT", "full range")
    s = frame.stored
    step = max(1, int(math.sqrt(s.size / 250_000)))
    sample = s[::step, ::step]
    dom = stored_domain(sample)
    if dom is not None:
        # percentiles of the modality values (a modality LUT need not be monotonic), weighted by
        # how often each stored value occurs
        index, values = dom
        counts = np.bincount(index.ravel(), minlength=len(values))
        present = counts > 0
        mod = modality(frame, values[present])
        weights = counts[present]
        order = np.argsort(mod, kind="stable")
        cum = np.cumsum(weights[order])
        total = cum[-1]
        sorted_mod = mod[order]
        lo = sorted_mod[min(np.searchsorted(cum, total * low / 100.0), len(order) - 1)]
        hi = sorted_mod[min(np.searchsorted(cum, total * high / 100.0), len(order) - 1)]
        lo_all, hi_all = sorted_mod[0], sorted_mod[-1]
    else:
        m = modality(frame, sample)
        m = m[np.isfinite(m)]
        if m.size == 0:
            return Window(0.5, 1.0, "LINEAR_EXACT", "auto")
        lo, hi = np.percentile(m, [low, high])
        lo_all, hi_all = m.min(), m.max()
    return Window(*_center_width(float(lo), float(hi), float(lo_all), float(hi_all)), "LINEAR_EXACT", "auto")


def _center_width(lo: float, hi: float, lo_all: float, hi_all: float) -> tuple[float, float]:
    """(center, width) of [lo, hi] in modality units, however narrow (real numbers); the full
    range where the percentiles coincide; width 1 only for a constant image."""
    lo, hi = min(lo, hi), max(lo, hi)
    if hi <= lo:
        lo, hi = min(lo_all, hi_all), max(lo_all, hi_all)
    if hi <= lo:
        return lo, 1.0
    return (lo + hi) / 2.0, hi - lo


def auto_window_of(frame: Frame) -> Window:
    """The frame's auto window, computed now if loading skipped it (files with their own VOI)."""
    if frame.auto_window.name == "auto (not computed)":
        return auto_window(frame)
    return frame.auto_window


def full_range_window(frame: Frame) -> Window:
    """The window spanning min..max of the modality values."""
    dom = stored_domain(frame.stored) if frame.modality_lut is not None else None
    if dom is not None:  # a modality LUT need not be monotonic: every stored value present
        index, values = dom
        m = modality(frame, values[np.bincount(index.ravel(), minlength=len(values)) > 0])
    else:
        m = modality(frame, np.array([frame.stored.min(), frame.stored.max()], dtype=np.float64))
    lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
    return Window(*_center_width(lo, hi, lo, hi), "LINEAR_EXACT", "full range")


# Common presets for radiographs in modality units are meaningless across vendors; these
# are relative presets the viewer offers besides the file's own windows.
def presets(frame: Frame) -> list[Window]:
    """The windows the viewer offers: the file's own, then auto and full range."""
    out = list(frame.windows)
    out.append(auto_window_of(frame))
    out.append(full_range_window(frame))
    return out
