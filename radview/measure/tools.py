"""Measurements on an image: length, angle, Cobb angle, rectangle / ellipse ROI statistics.

Coordinates are image pixels (x = column, y = row, the continuous coordinates of radview.types:
pixel (r, c) covers [c, c+1) x [r, r+1)). Lengths and angles are taken in physical space where
the calibration is known (so anisotropic pixels are handled), else in pixels. ROI values are in
modality units (after the modality LUT / rescale), area in mm² (or px²).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radview.measure.calibration import Calibration, Point

KINDS = ("length", "angle", "cobb", "rect", "ellipse")
CALIBRATION = "calibration"  # a user calibration kept with the measurements (not one of them)


@dataclass(frozen=True)
class Measurement:
    """One measurement and its basis. value: the length (unit), the angle (deg) or the ROI mean.
    stats (ROI only): mean, sd (population), min, max, area, pixels. text: what the viewer shows."""

    kind: str
    points: tuple[Point, ...]
    value: float
    unit: str  # "mm" | "px" | "deg" | modality value unit ("HU" or "")
    basis: str
    label: str  # the calibration's label: "mm", "mm (detector)", "mm (ERMF 1.2)", "mm (calibrated)", "px"
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        if self.kind == CALIBRATION:
            (x0, y0), (x1, y1) = self.points
            return f"{math.hypot(x1 - x0, y1 - y0):.1f} px = {self.value:g} mm"
        if self.kind == "length":
            return f"{self.value:.1f} {self.label}"
        if self.kind in ("angle", "cobb"):
            return f"{'Cobb ' if self.kind == 'cobb' else ''}{self.value:.1f}°"
        s = self.stats
        unit = f" {self.unit}" if self.unit else ""
        area_unit = "px²" if self.label == "px" else f"mm²{self.label[2:]}"
        return (f"mean {s['mean']:.1f}{unit}  SD {s['sd']:.1f}  min {s['min']:g}  max {s['max']:g}  "
                f"area {s['area']:.1f} {area_unit}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`radview measure --json`): {"length": 12.5, "unit": "mm", "basis": ...}."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == CALIBRATION:
            out.update(length=self.value, unit="mm", row_mm=self.stats["row_mm"], col_mm=self.stats["col_mm"])
        elif self.kind == "length":
            out.update(length=round(self.value, 4), unit=self.unit)
        elif self.kind in ("angle", "cobb"):
            out.update(angle=round(self.value, 4), unit="deg")
        else:
            out.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.stats.items()})
            out.update(value_unit=self.unit, area_unit="px²" if self.label == "px" else "mm²")
            out["unit"] = "px" if self.label == "px" else "mm"
        out.update(basis=self.basis, label=self.label, points=[list(p) for p in self.points])
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Measurement:
        kind = d["kind"]
        pts = tuple((float(p[0]), float(p[1])) for p in d["points"])
        if kind == CALIBRATION:
            return Measurement(kind, pts, float(d["length"]), "mm", d["basis"], d["label"],
                               {"row_mm": float(d["row_mm"]), "col_mm": float(d["col_mm"])})
        if kind == "length":
            return Measurement(kind, pts, float(d["length"]), d["unit"], d["basis"], d["label"])
        if kind in ("angle", "cobb"):
            return Measurement(kind, pts, float(d["angle"]), "deg", d["basis"], d["label"])
        stats = {k: d[k] for k in ("mean", "sd", "min", "max", "area", "pixels")}
        return Measurement(kind, pts, float(d["mean"]), d.get("value_unit", ""), d["basis"], d["label"], stats)


def _pt(p) -> Point:
    x, y = float(p[0]), float(p[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"point {p!r} is not finite")
    return x, y


def length(cal: Calibration, p0: Point, p1: Point) -> Measurement:
    """The length of the line p0-p1."""
    p0, p1 = _pt(p0), _pt(p1)
    return Measurement("length", (p0, p1), cal.distance(p0, p1), cal.unit, cal.basis, cal.label)


def _vec(cal: Calibration, a: Point, b: Point) -> tuple[float, float]:
    return cal.scale(b[0] - a[0], b[1] - a[1])


def _angle_between(u: tuple[float, float], v: tuple[float, float]) -> float:
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        raise ValueError("an angle needs two arms of non-zero length")
    c = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    return math.degrees(math.acos(c))


def angle(cal: Calibration, p0: Point, vertex: Point, p1: Point) -> Measurement:
    """The angle at `vertex` between the arms to p0 and p1, 0..180 degrees."""
    p0, vertex, p1 = _pt(p0), _pt(vertex), _pt(p1)
    deg = _angle_between(_vec(cal, vertex, p0), _vec(cal, vertex, p1))
    return Measurement("angle", (p0, vertex, p1), deg, "deg", cal.basis, cal.label)


def _rightwards(u: tuple[float, float]) -> tuple[float, float]:
    """The line's direction pointing right (down where it is vertical): endplate lines compare
    in the same sense however they were drawn."""
    if u[0] < 0 or (u[0] == 0 and u[1] < 0):
        return -u[0], -u[1]
    return u


def cobb_angle(cal: Calibration, a0: Point, a1: Point, b0: Point, b1: Point) -> Measurement:
    """The Cobb angle between line a (upper endplate) and line b (lower endplate): the angle
    between their directions, both taken left to right, 0..180 degrees (a severe curve can pass
    90: two endplates tilted 50 degrees each way give 100)."""
    a0, a1, b0, b1 = _pt(a0), _pt(a1), _pt(b0), _pt(b1)
    u, v = _rightwards(_vec(cal, a0, a1)), _rightwards(_vec(cal, b0, b1))
    deg = _angle_between(u, v)
    return Measurement("cobb", (a0, a1, b0, b1), deg, "deg", cal.basis, cal.label)


def roi_mask(shape: tuple[int, int], p0: Point, p1: Point, kind: str = "rect") -> np.ndarray:
    """Pixels whose centre lies inside the rectangle (or the ellipse inscribed in it) with
    corners p0, p1; clipped to the image."""
    if kind not in ("rect", "ellipse"):
        raise ValueError(f"ROI kind {kind!r}: 'rect' or 'ellipse'")
    h, w = shape
    x0, x1 = sorted((p0[0], p1[0]))
    y0, y1 = sorted((p0[1], p1[1]))
    cols = np.arange(w) + 0.5
    rows = np.arange(h) + 0.5
    if kind == "rect":
        return ((rows >= y0) & (rows <= y1))[:, None] & ((cols >= x0) & (cols <= x1))[None, :]
    cx, cy, a, b = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if a <= 0 or b <= 0:
        return np.zeros(shape, dtype=bool)
    return (((cols[None, :] - cx) / a) ** 2 + ((rows[:, None] - cy) / b) ** 2) <= 1.0


def value_unit(meta: dict[str, Any]) -> str:
    """The unit of modality values: HU for CT (after rescale), else the RescaleType when the
    file names one, else '' (unitless stored / modality values)."""
    rtype = str(meta.get("RescaleType") or "").strip()
    if rtype and rtype.upper() != "US":
        return rtype
    return "HU" if str(meta.get("Modality", "")).upper() == "CT" else ""


def roi(cal: Calibration, frame, p0: Point, p1: Point, kind: str = "rect") -> Measurement:
    """Statistics of the rectangle (kind 'rect') or inscribed ellipse ('ellipse') with corners
    p0, p1 on a grayscale frame: mean, SD (population), min, max in modality units; area of the
    drawn shape in mm² (px² where the spacing is unknown); pixels counted."""
    from radview.io.display import modality

    p0, p1 = _pt(p0), _pt(p1)
    if getattr(frame, "is_color", False):
        raise ValueError("ROI statistics need a grayscale image (this one is colour)")
    stored = frame.stored
    mask = roi_mask(stored.shape, p0, p1, kind)
    n = int(mask.sum())
    if n == 0:
        raise ValueError(f"the {kind} from {p0} to {p1} holds no pixel centre of the "
                         f"{stored.shape[1]}x{stored.shape[0]} image")
    vals = modality(frame, stored[mask])
    w, h = abs(p1[0] - p0[0]), abs(p1[1] - p0[1])
    area_px = w * h if kind == "rect" else math.pi * (w / 2) * (h / 2)
    stats = {"mean": float(vals.mean()), "sd": float(vals.std()), "min": float(vals.min()),
             "max": float(vals.max()), "area": float(area_px * cal.pixel_area), "pixels": n}
    return Measurement(kind, (p0, p1), stats["mean"], value_unit(getattr(frame, "meta", {}) or {}),
                       cal.basis, cal.label, stats)


def calibration_record(cal: Calibration, p0: Point, p1: Point, length_mm: float) -> Measurement:
    """A user calibration (radview.measure.user_calibration of the line p0-p1 = length_mm) as a
    record the store keeps per image (kind 'calibration'): the line, the mm typed and the
    spacing it gives, so that it comes back as the same Calibration in the next session."""
    if not cal.known:
        raise ValueError("a calibration record needs a known spacing")
    p0, p1 = _pt(p0), _pt(p1)
    return Measurement(CALIBRATION, (p0, p1), float(length_mm), "mm", cal.basis, cal.label,
                       {"row_mm": float(cal.row_mm), "col_mm": float(cal.col_mm)})  # type: ignore[arg-type]


def calibration_from(record: Measurement) -> Calibration:
    """The Calibration a stored calibration record stands for."""
    from radview.measure.calibration import BASIS_CALIBRATION

    if record.kind != CALIBRATION:
        raise ValueError(f"a {record.kind!r} measurement is not a calibration")
    (x0, y0), (x1, y1) = record.points
    return Calibration(record.stats["row_mm"], record.stats["col_mm"], BASIS_CALIBRATION, "mm (calibrated)",
                       f"user calibration: a line of {math.hypot(x1 - x0, y1 - y0):.1f} px is {record.value:g} mm")
