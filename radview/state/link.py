"""Linked views (issue 14: current and prior with W/L, zoom and pan linked on request), Qt-free.

A link joins views of the study on screen into groups: in a current|prior hanging each row
(current view, prior view) is one group. Inside a group the window is shared as it is (W/L in
modality values, as the careful viewers do for two films of one modality), and zoom / pan as a
Framing: the zoom relative to each canvas's fit and the centre as a fraction of the image, so
two films of different sizes show the same part at the same relative scale.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framing:
    """zoom: the canvas scale divided by its fit-to-window scale (None: fit); center: the image
    point at the canvas centre as (x / width, y / height) (None: the image centre)."""

    zoom: float | None = None
    center: tuple[float, float] | None = None


FIT = Framing()


def row_groups(n_views: int, columns: int) -> tuple[tuple[int, ...], ...]:
    """Views 0..n-1 laid out `columns` to a row -> one group per row (of two or more views)."""
    if columns < 2:
        return ()
    rows = [tuple(range(i, min(i + columns, n_views))) for i in range(0, n_views, columns)]
    return tuple(r for r in rows if len(r) > 1)


def partners(groups: tuple[tuple[int, ...], ...], view: int) -> list[int]:
    """The other views of the group holding `view` ([] when it is in none)."""
    for g in groups:
        if view in g:
            return [v for v in g if v != view]
    return []
