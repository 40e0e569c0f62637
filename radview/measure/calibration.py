"""Pixel spacing of a radiograph: which spacing a measurement may use, and what it means.

The rules (DICOM PS3.3 C.8.11.7 / 10.7.1, as cornerstone3D's getPixelSpacingInformation and Weasis
apply them; anchor: cornerstone PR #261, reverted because ImagerPixelSpacing was used silently):

1. A user calibration (a line drawn over an object of known size) wins over the file.
2. PixelSpacing (0028,0030) > 0: calibrated at the patient -> "mm" (basis "PixelSpacing"),
   except where it merely repeats ImagerPixelSpacing and no PixelSpacingCalibrationType says
   it was calibrated: then it is the detector's spacing and rule 3 applies.
3. ImagerPixelSpacing (0018,1164) > 0: the spacing at the detector. Divided by
   EstimatedRadiographicMagnificationFactor (0018,1114) where the file gives one (>= 1):
   "mm (ERMF 1.2)" (basis "ImagerPixelSpacing / ERMF 1.2"); else "mm (detector)" (basis
   "ImagerPixelSpacing (detector)"): lengths at the detector plane overstate the patient.
4. Otherwise (absent, zero, such as pydicom-data's RG1 with 0.000\\0.000, negative or malformed):
   unknown, measurements in "px" (basis "none").

Spacing is (row spacing, column spacing) in mm, the DICOM order: the first value is the distance
between rows (vertical, y), the second between columns (horizontal, x).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Point = tuple[float, float]  # (x, y) in image pixels: x = column, y = row

BASIS_PIXEL_SPACING = "PixelSpacing"
BASIS_DETECTOR = "ImagerPixelSpacing (detector)"
BASIS_CALIBRATION = "calibration"
BASIS_NONE = "none"


@dataclass(frozen=True)
class Calibration:
    """How image pixels map to millimetres. row_mm / col_mm are None when unknown (px)."""

    row_mm: float | None
    col_mm: float | None
    basis: str  # "PixelSpacing" | "ImagerPixelSpacing (detector)" | "ImagerPixelSpacing / ERMF 1.2" | "calibration" | "none"
    label: str  # the unit as shown: "mm" | "mm (detector)" | "mm (ERMF 1.2)" | "mm (calibrated)" | "px"
    note: str = ""  # why this basis (what was found, what was ignored)

    @property
    def known(self) -> bool:
        return self.row_mm is not None and self.col_mm is not None

    @property
    def unit(self) -> str:
        return "mm" if self.known else "px"

    @property
    def area_unit(self) -> str:
        return "mm²" if self.known else "px²"

    def scale(self, dx: float, dy: float) -> tuple[float, float]:
        """A pixel displacement (dx columns, dy rows) in this calibration's units."""
        if not self.known:
            return float(dx), float(dy)
        return float(dx) * self.col_mm, float(dy) * self.row_mm  # type: ignore[operator]

    def distance(self, p0: Point, p1: Point) -> float:
        dx, dy = self.scale(p1[0] - p0[0], p1[1] - p0[1])
        return math.hypot(dx, dy)

    @property
    def pixel_area(self) -> float:
        return self.row_mm * self.col_mm if self.known else 1.0  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        return {"row_mm": self.row_mm, "col_mm": self.col_mm, "basis": self.basis, "label": self.label,
                "unit": self.unit, "note": self.note}


UNKNOWN = Calibration(None, None, BASIS_NONE, "px", "no pixel spacing in the file")


def _numbers(value: Any) -> list[float] | None:
    """A DS value as floats: a number, a list/MultiValue, or a backslash-separated string."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in value.replace(",", "\\").split("\\") if p.strip()]
    elif isinstance(value, (int, float)):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            return None
    try:
        out = [float(p) for p in parts]
    except (TypeError, ValueError):
        return None
    return out


def _spacing(meta: Mapping[str, Any], keyword: str) -> tuple[tuple[float, float] | None, str]:
    """(row, col) spacing of a tag when usable, else None with the reason ('' when absent)."""
    if keyword not in meta or meta[keyword] in (None, "", []):
        return None, ""
    vals = _numbers(meta[keyword])
    if vals is None or len(vals) != 2 or not all(math.isfinite(v) for v in vals):
        return None, f"{keyword} {meta[keyword]!r} is malformed (two numbers expected): ignored"
    if vals[0] <= 0 or vals[1] <= 0:
        shown = "\\".join(f"{v:g}" for v in vals)
        return None, f"{keyword} {shown} means unknown: ignored"
    return (vals[0], vals[1]), ""


def _ermf(meta: Mapping[str, Any]) -> tuple[float | None, str]:
    key = "EstimatedRadiographicMagnificationFactor"
    if meta.get(key) in (None, "", []):
        return None, ""
    vals = _numbers(meta[key])
    if not vals or len(vals) != 1 or not math.isfinite(vals[0]):
        return None, f"{key} {meta[key]!r} is malformed: ignored"
    if vals[0] < 1.0:
        return None, f"{key} {vals[0]:g} < 1 (a projection only magnifies): ignored"
    return vals[0], ""


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for x, y in zip(a, b))


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def calibration_of(source: Any) -> Calibration:
    """The calibration a file's header allows: `source` is a Frame (its .meta is read) or a
    header mapping (DICOM keywords -> values, as radview.io puts them in Frame.meta)."""
    meta = getattr(source, "meta", source)
    if not isinstance(meta, Mapping):
        return UNKNOWN
    ps, ps_why = _spacing(meta, "PixelSpacing")
    ips, ips_why = _spacing(meta, "ImagerPixelSpacing")
    ctype = str(meta.get("PixelSpacingCalibrationType") or "").strip().upper()
    cdesc = str(meta.get("PixelSpacingCalibrationDescription") or "").strip()
    if ps is not None and not (ips is not None and _same(ps, ips) and not ctype):
        how = f"calibrated ({ctype}{': ' + cdesc if cdesc else ''})" if ctype else "at the patient"
        return Calibration(ps[0], ps[1], BASIS_PIXEL_SPACING, "mm", _join(f"PixelSpacing, {how}", ips_why))
    repeated = "PixelSpacing only repeats ImagerPixelSpacing (not calibrated)" if ps is not None else ""
    if ips is not None:
        ermf, ermf_why = _ermf(meta)
        if ermf is not None:
            return Calibration(ips[0] / ermf, ips[1] / ermf, f"ImagerPixelSpacing / ERMF {ermf:g}",
                               f"mm (ERMF {ermf:g})",
                               _join(f"ImagerPixelSpacing divided by EstimatedRadiographicMagnificationFactor {ermf:g}",
                                     repeated, ps_why))
        return Calibration(ips[0], ips[1], BASIS_DETECTOR, "mm (detector)",
                           _join("ImagerPixelSpacing: distances at the detector, larger than at the patient",
                                 repeated, ps_why, ermf_why))
    return Calibration(None, None, BASIS_NONE, "px", _join(ps_why, ips_why) or UNKNOWN.note)


def user_calibration(p0: Point, p1: Point, length_mm: float, base: Calibration | None = None) -> Calibration:
    """The calibration that makes the line p0-p1 measure `length_mm` (an object of known size:
    a ruler, a calibration ball). Keeps the pixel aspect ratio of `base` where it is known,
    else takes square pixels."""
    if not (isinstance(length_mm, (int, float)) and math.isfinite(length_mm) and length_mm > 0):
        raise ValueError(f"calibration length {length_mm!r}: a positive number of mm expected")
    if base is not None and base.known:
        measured = base.distance(p0, p1)
        if measured <= 0:
            raise ValueError("calibration line has zero length")
        f = length_mm / measured
        row, col = base.row_mm * f, base.col_mm * f  # type: ignore[operator]
    else:
        px = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
        if px <= 0:
            raise ValueError("calibration line has zero length")
        row = col = length_mm / px
    px_len = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    return Calibration(row, col, BASIS_CALIBRATION, "mm (calibrated)",
                       f"user calibration: a line of {px_len:.1f} px is {length_mm:g} mm")
