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
from radview.measure.tools import Measurement, angle, cobb_angle, length, roi, roi_mask, value_unit

__all__ = [
    "BASIS_CALIBRATION", "BASIS_DETECTOR", "BASIS_NONE", "BASIS_PIXEL_SPACING", "UNKNOWN",
    "Calibration", "Measurement", "angle", "calibration_of", "cobb_angle", "length", "roi", "roi_mask",
    "user_calibration", "value_unit",
]
