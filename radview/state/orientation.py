"""Orientation letters at the image edges (pure: no Qt), following rotation and flips.

    o = orientation_of(meta, rotation=90, flip_h=True)   # meta: Frame.meta / a header dict
    o.left, o.right, o.top, o.bottom   # e.g. "R", "L", "H", "F" ("" when unknown)
    o.source                           # "PatientOrientation" | "ViewPosition AP" ... | ""
    o.laterality                       # ImageLaterality / Laterality ("L", "R", "B" or "")

PatientOrientation (0020,0020) gives the patient directions of the image's row (towards
increasing column = screen right) and column (towards increasing row = screen down) with the
letters A/P, R/L, H/F (multi-letter for oblique directions, e.g. "LF"). Without it, a frontal
chest view (ViewPosition PA or AP) is shown by convention as if facing the patient, so the
patient's left is on the right ("L" right, "F" bottom): `source` then says it was inferred from
ViewPosition, and the canvas draws those letters dimmer. Other views without PatientOrientation
get no letters (a guess at a lateral or oblique view would be a safety risk).

The display transform is the canvas's: the image is flipped first (in image space), then rotated
clockwise by `rotation` degrees (a multiple of 90).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
FRONTAL = ("PA", "AP")


@dataclass(frozen=True)
class Orientation:
    left: str = ""
    right: str = ""
    top: str = ""
    bottom: str = ""
    source: str = ""
    laterality: str = ""

    @property
    def known(self) -> bool:
        return bool(self.left or self.right or self.top or self.bottom)

    @property
    def inferred(self) -> bool:
        return self.source.startswith("ViewPosition")


def opposite(letters: str) -> str:
    """The opposite direction of a PatientOrientation value ('LF' -> 'RH'); '' if not letters."""
    letters = letters.strip().upper()
    if not letters or any(ch not in OPPOSITE for ch in letters):
        return ""
    return "".join(OPPOSITE[ch] for ch in letters)


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        parts = value.replace("/", "\\").split("\\")
    else:
        try:
            parts = [str(v) for v in value]
        except TypeError:
            return []
    return [p.strip().upper() for p in parts if p is not None]


def image_directions(meta: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(row direction, column direction, source) of the stored image; ('', '', '') if unknown."""
    meta = meta or {}
    po = _values(meta.get("PatientOrientation"))
    if len(po) == 2 and opposite(po[0]) and opposite(po[1]):
        return po[0], po[1], "PatientOrientation"
    view = str(meta.get("ViewPosition") or "").strip().upper()
    if view in FRONTAL:
        return "L", "F", f"ViewPosition {view}"
    return "", "", ""


def _transform(rotation: int, flip_h: bool, flip_v: bool):
    """The 2x2 integer matrix (image direction -> screen direction, y down) of flip then rotate."""
    r = int(rotation) % 360
    if r % 90:
        raise ValueError(f"rotation {rotation}: a multiple of 90 degrees")
    c, s = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[r]
    fx, fy = (-1 if flip_h else 1), (-1 if flip_v else 1)
    # R @ S with R = [[c, -s], [s, c]] (clockwise on a y-down screen), S = diag(fx, fy)
    return ((c * fx, -s * fy), (s * fx, c * fy))


def orientation_of(meta: Mapping[str, Any] | None, rotation: int = 0, flip_h: bool = False,
                   flip_v: bool = False) -> Orientation:
    row, col, source = image_directions(meta)
    meta = meta or {}
    lat = str(meta.get("ImageLaterality") or meta.get("Laterality") or "").strip().upper()
    if not source:
        return Orientation(laterality=lat)
    # the label of each image direction
    labels = {(1, 0): row, (-1, 0): opposite(row), (0, 1): col, (0, -1): opposite(col)}
    m = _transform(rotation, flip_h, flip_v)
    screen: dict[tuple[int, int], str] = {}
    for (dx, dy), text in labels.items():
        sx, sy = m[0][0] * dx + m[0][1] * dy, m[1][0] * dx + m[1][1] * dy
        screen[(sx, sy)] = text
    return Orientation(left=screen[(-1, 0)], right=screen[(1, 0)], top=screen[(0, -1)],
                       bottom=screen[(0, 1)], source=source, laterality=lat)
