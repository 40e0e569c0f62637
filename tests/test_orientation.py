"""Orientation letters at the image edges, following flips and rotation (radview.state.orientation)."""
from __future__ import annotations

import pytest

from radview.state.orientation import opposite, orientation_of


def _edges(o):
    return (o.left, o.right, o.top, o.bottom)


def test_patient_orientation_letters_and_horizontal_flip():
    meta = {"PatientOrientation": ["L", "F"]}
    assert _edges(orientation_of(meta)) == ("R", "L", "H", "F")
    assert _edges(orientation_of(meta, flip_h=True)) == ("L", "R", "H", "F")
    assert _edges(orientation_of(meta, flip_v=True)) == ("R", "L", "F", "H")
    o = orientation_of(meta)
    assert o.source == "PatientOrientation" and not o.inferred


def test_rotation_moves_the_letters_clockwise():
    meta = {"PatientOrientation": "A\\F"}  # a pydicom string form, lateral view
    # clockwise 90: the image's left edge (P) goes to the top, its top (H) to the right
    assert _edges(orientation_of(meta, rotation=90)) == ("F", "H", "P", "A")
    assert _edges(orientation_of(meta, rotation=180)) == ("A", "P", "F", "H")
    assert _edges(orientation_of(meta, rotation=-90)) == _edges(orientation_of(meta, rotation=270))
    # flip then rotate, as the canvas does
    assert _edges(orientation_of(meta, rotation=90, flip_h=True)) == ("F", "H", "A", "P")
    with pytest.raises(ValueError):
        orientation_of(meta, rotation=45)


def test_oblique_and_fallbacks():
    assert opposite("LF") == "RH" and opposite("X") == ""
    o = orientation_of({"PatientOrientation": ["LF", "P"]})
    assert (o.left, o.right) == ("RH", "LF")
    pa = orientation_of({"ViewPosition": "PA", "ImageLaterality": "l"})
    assert _edges(pa) == ("R", "L", "H", "F") and pa.inferred and pa.laterality == "L"
    lat = orientation_of({"ViewPosition": "LL"})
    assert not lat.known  # no guess for a lateral view without PatientOrientation
    assert not orientation_of({"PatientOrientation": ["Q", "F"]}).known
    assert not orientation_of(None).known
