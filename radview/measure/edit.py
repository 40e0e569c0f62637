"""Editing a drawn measurement (pure, no Qt): its handles and what dragging one does.

    handles("rect", pts)                 -> the points a user may grab (a rectangle: 4 corners)
    move_handle("rect", pts, 2, (x, y))  -> the measurement's new points

Lines (length, calibration), angles (end, vertex, end) and Cobb (two lines) move the grabbed
point only. A rectangle or ellipse ROI is stored as two opposite corners; its handles are the
four corners, and dragging one moves it with the opposite corner fixed.
"""
from __future__ import annotations

from radview.measure.calibration import Point

_BOX = ("rect", "ellipse")


def handles(kind: str, points) -> list[Point]:
    pts = [(float(x), float(y)) for x, y in points]
    if kind in _BOX and len(pts) == 2:
        (x0, y0), (x1, y1) = pts
        return [(x0, y0), (x1, y1), (x0, y1), (x1, y0)]
    return pts


def move_handle(kind: str, points, index: int, to: Point) -> tuple[Point, ...]:
    """The points after handle `index` (of handles(kind, points)) was dragged to `to`."""
    pts = [(float(x), float(y)) for x, y in points]
    hs = handles(kind, pts)
    if not 0 <= index < len(hs):
        raise IndexError(f"a {kind} has {len(hs)} handles, not {index + 1}")
    to = (float(to[0]), float(to[1]))
    if kind in _BOX and len(pts) == 2:
        opposite = hs[{0: 1, 1: 0, 2: 3, 3: 2}[index]]
        return (opposite, to)
    pts[index] = to
    return tuple(pts)


def nearest(points, at: Point, within: float) -> int | None:
    """The index of the point nearest to `at` (the GUI passes handles in screen pixels), or
    None when none is within `within`."""
    best, best_d = None, within
    for i, (x, y) in enumerate(points):
        d = ((x - at[0]) ** 2 + (y - at[1]) ** 2) ** 0.5
        if d <= best_d:
            best, best_d = i, d
    return best
