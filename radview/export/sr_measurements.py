"""radview.measure measurements in the TID 1500 SR: one Planar ROI measurement group each, with
the drawn geometry as an Image Region (POLYLINE for lines, angles, Cobb and rectangles; ELLIPSE
for ellipses), the values as coded NUM items with UCUM units (Length mm / px, Angle deg, ROI
mean / SD / min / max in the modality unit, area mm2 / px2, pixel count), the calibration basis,
and the measurement's own JSON (radview.measure.Measurement.to_dict) so it reads back exactly.
"""
from __future__ import annotations

import json
from typing import Any

SCHEME = "99RADVIEW"

_NAMES = {
    "length": ("410668003", "SCT", "Length"),
    "angle": ("1483009", "SCT", "Angle"),
    "cobb": ("cobb-angle", SCHEME, "Cobb angle"),
    "mean": ("373098007", "SCT", "Mean"),
    "sd": ("386136009", "SCT", "Standard deviation"),
    "min": ("255605001", "SCT", "Minimum"),
    "max": ("56851009", "SCT", "Maximum"),
    "area": ("42798000", "SCT", "Area"),
    "pixels": ("pixel-count", SCHEME, "Number of pixels"),
}
_UNITS = {
    "mm": ("mm", "UCUM", "millimeter"), "px": ("{pixels}", "UCUM", "pixels"),
    "deg": ("deg", "UCUM", "degree"), "mm2": ("mm2", "UCUM", "square millimeter"),
    "px2": ("{pixels}", "UCUM", "pixels"), "HU": ("[hnsf'U]", "UCUM", "Hounsfield unit"),
    "": ("1", "UCUM", "no units"), "count": ("{pixels}", "UCUM", "pixels"),
}
JSON_NAME = ("measurement", SCHEME, "radview measurement")


def _cc(t):
    from highdicom.sr import CodedConcept

    return CodedConcept(*t)


def _unit(u: str):
    return _cc(_UNITS.get(u, (u or "1", "UCUM", u or "no units")))


def _geometry(m) -> tuple[str, Any]:
    import numpy as np

    pts = [tuple(map(float, p)) for p in m.points]
    if m.kind in ("rect", "ellipse"):
        (x0, y0), (x1, y1) = pts[0], pts[1]
        xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if m.kind == "rect":
            return "POLYLINE", np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb], [xa, ya]])
        cx, cy = (xa + xb) / 2, (ya + yb) / 2
        if xb - xa >= yb - ya:  # major axis first (PS3.3 C.18.6.1.2)
            return "ELLIPSE", np.array([[xa, cy], [xb, cy], [cx, ya], [cx, yb]])
        return "ELLIPSE", np.array([[cx, ya], [cx, yb], [xa, cy], [xb, cy]])
    return "POLYLINE", np.array(pts)


def _values(m) -> list:
    from highdicom.sr import Measurement as Num

    if m.kind == "length":
        return [Num(_cc(_NAMES["length"]), float(m.value), _unit("px" if m.unit == "px" else "mm"))]
    if m.kind in ("angle", "cobb"):
        return [Num(_cc(_NAMES[m.kind]), float(m.value), _unit("deg"))]
    px = m.label == "px"
    out = [Num(_cc(_NAMES[k]), float(m.stats[k]), _unit(m.unit)) for k in ("mean", "sd", "min", "max")]
    out.append(Num(_cc(_NAMES["area"]), float(m.stats["area"]), _unit("px2" if px else "mm2")))
    out.append(Num(_cc(_NAMES["pixels"]), float(m.stats["pixels"]), _unit("count")))
    return out


def measurement_group(m, source_image, index: int, texts: list):
    """A PlanarROIMeasurementsAndQualitativeEvaluations for one radview.measure Measurement."""
    import highdicom as hd
    from highdicom.sr import (ImageRegion, PlanarROIMeasurementsAndQualitativeEvaluations,
                              TextContentItem, TrackingIdentifier)
    from highdicom.sr.enum import RelationshipTypeValues
    from pydicom.uid import generate_uid

    gtype, data = _geometry(m)
    region = ImageRegion(graphic_type=getattr(hd.sr.GraphicTypeValues, gtype), graphic_data=data,
                         source_image=source_image)
    g = PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=generate_uid(), identifier=f"measurement {index}"),
        referenced_region=region, measurements=_values(m))
    rel = RelationshipTypeValues.CONTAINS
    items = list(texts) + [TextContentItem(_cc(JSON_NAME), json.dumps(m.to_dict()), relationship_type=rel)]
    g[0].ContentSequence.extend(items)
    return g


def measurement_from_json(text: str):
    from radview.measure import Measurement

    return Measurement.from_dict(json.loads(text))
