"""Calibrated measurement (pure Python + numpy, no Qt): which pixel spacing a radiograph allows
and what it means (calibration.py), and the tools, length / angle / Cobb / ROI (tools.py)."""
from radview.measure.calibration import (
    BASIS_CALIBRATION,
    BASIS_DETECTOR,
    BASIS_NONE,
    BASIS_PIXEL_SPACING,
    UNKNOWN,
    Calibration,
    calibration_of,
    user_calibration,
)
from radview.measure.edit import handles, move_handle
from radview.measure.tools import (
    CALIBRATION,
    Measurement,
    angle,
    calibration_from,
    calibration_record,
    cobb_angle,
    length,
    roi,
    roi_mask,
    value_unit,
)

__all__ = [
    "BASIS_CALIBRATION", "BASIS_DETECTOR", "BASIS_NONE", "BASIS_PIXEL_SPACING", "CALIBRATION", "UNKNOWN",
    "Calibration", "Measurement", "angle", "calibration_from", "calibration_of", "calibration_record",
    "cobb_angle", "handles", "length", "move_handle", "roi", "roi_mask", "user_calibration", "value_unit",
]
