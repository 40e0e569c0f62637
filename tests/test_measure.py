"""Calibrated measurement: the spacing rules, the label of each basis, the tools, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from radview.cli import main
from radview.io import load_frame
from radview.measure import (
    Calibration,
    Measurement,
    angle,
    calibration_of,
    cobb_angle,
    length,
    roi,
    roi_mask,
    user_calibration,
)
from tests.dicom_factory import write_dicom

PIX = (np.arange(200 * 300, dtype=np.uint16).reshape(200, 300) % 1000)  # 300 wide, 200 high


def measure_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["measure", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def dcm(tmp_path):
    def make(name="x.dcm", pixels=PIX, **tags):
        return write_dicom(tmp_path / name, pixels, **tags)
    return make


# ---------------------------------------------------------------- the bases, through the CLI


def test_pixel_spacing_gives_exact_mm_with_rows_and_columns_apart(dcm, capsys):
    f = dcm(PixelSpacing=[0.2, 0.1])  # 0.2 mm between rows (y), 0.1 mm between columns (x)
    assert measure_json(capsys, f, "--line", 0, 0, 100, 0) == {
        "kind": "length", "length": 10.0, "unit": "mm", "basis": "PixelSpacing", "label": "mm",
        "points": [[0.0, 0.0], [100.0, 0.0]], "note": "PixelSpacing, at the patient"}
    assert measure_json(capsys, f, "--line", 5, 0, 5, 100)["length"] == 20.0
    assert measure_json(capsys, f, "--line", 0, 0, 30, 40)["length"] == round(math.sqrt(3.0**2 + 8.0**2), 4)


def test_detector_only_is_labelled_at_the_detector(dcm, capsys):
    f = dcm(ImagerPixelSpacing=[0.15, 0.15])
    out = measure_json(capsys, f, "--line", 0, 0, 100, 0)
    assert (out["length"], out["unit"], out["basis"], out["label"]) == (15.0, "mm", "ImagerPixelSpacing (detector)",
                                                                      "mm (detector)")
    capsys.readouterr()
    assert main(["measure", str(f), "--line", "0", "0", "100", "0"]) == 0
    assert capsys.readouterr().out.startswith("15.0 mm (detector)")


def test_ermf_corrects_the_detector_spacing(dcm, capsys):
    f = dcm(ImagerPixelSpacing=[0.15, 0.15], EstimatedRadiographicMagnificationFactor=1.2)
    out = measure_json(capsys, f, "--line", 0, 0, 120, 0)
    assert (out["length"], out["basis"], out["label"]) == (15.0, "ImagerPixelSpacing / ERMF 1.2", "mm (ERMF 1.2)")


def test_no_spacing_zero_spacing_and_malformed_spacing_are_px(dcm, capsys):
    for tags in ({}, {"PixelSpacing": [0.0, 0.0]}, {"ImagerPixelSpacing": [-0.1, 0.1]}, {"PixelSpacing": [0.1]}):
        out = measure_json(capsys, dcm(**tags), "--line", 0, 0, 30, 40)
        assert (out["length"], out["unit"], out["basis"], out["label"]) == (50.0, "px", "none", "px"), tags


def test_rg1_and_rg3_give_the_tags_spacing(testdata, capsys):
    rg1 = testdata("RG1_J2KR.dcm")  # PixelSpacing 0.000\0.000: unknown
    out = measure_json(capsys, rg1, "--line", 0, 0, 300, 400)
    assert (out["length"], out["unit"], out["basis"]) == (500.0, "px", "none")
    assert "0\\0 means unknown" in out["note"]
    rg3 = testdata("RG3_J2KR.dcm")  # no spacing tag at all
    out = measure_json(capsys, rg3, "--line", 0, 0, 300, 400)
    assert (out["length"], out["unit"], out["basis"]) == (500.0, "px", "none")
    ct = testdata("CT_small.dcm")  # PixelSpacing 0.661468\0.661468
    assert measure_json(capsys, ct, "--line", 0, 0, 100, 0)["length"] == round(66.1468, 4)


def test_frame_meta_carries_the_spacing_tags(dcm):
    f = dcm(ImagerPixelSpacing=[0.15, 0.15], EstimatedRadiographicMagnificationFactor=1.2,
            PixelSpacingCalibrationType="GEOMETRY")
    meta = load_frame(f).meta
    assert meta["ImagerPixelSpacing"] == [0.15, 0.15]
    assert meta["EstimatedRadiographicMagnificationFactor"] == 1.2
    assert meta["PixelSpacingCalibrationType"] == "GEOMETRY"


# ---------------------------------------------------------------- the rules, on header mappings


@pytest.mark.parametrize("meta, basis, label, spacing", [
    ({"PixelSpacing": [0.1, 0.1], "ImagerPixelSpacing": [0.12, 0.12]}, "PixelSpacing", "mm", (0.1, 0.1)),
    # PixelSpacing that only repeats ImagerPixelSpacing is the detector's (cornerstone's PROJECTION)
    ({"PixelSpacing": [0.15, 0.15], "ImagerPixelSpacing": [0.15, 0.15]}, "ImagerPixelSpacing (detector)",
     "mm (detector)", (0.15, 0.15)),
    ({"PixelSpacing": [0.11, 0.11], "ImagerPixelSpacing": [0.11, 0.11], "EstimatedRadiographicMagnificationFactor": 1.1},
     "ImagerPixelSpacing / ERMF 1.1", "mm (ERMF 1.1)", (0.1, 0.1)),
    # ... unless the file says it calibrated it
    ({"PixelSpacing": [0.15, 0.15], "ImagerPixelSpacing": [0.15, 0.15], "PixelSpacingCalibrationType": "GEOMETRY"},
     "PixelSpacing", "mm", (0.15, 0.15)),
    ({"ImagerPixelSpacing": "0.2\\0.1"}, "ImagerPixelSpacing (detector)", "mm (detector)", (0.2, 0.1)),
    ({"ImagerPixelSpacing": [0.2, 0.2], "EstimatedRadiographicMagnificationFactor": 0.5},  # < 1: nonsense
     "ImagerPixelSpacing (detector)", "mm (detector)", (0.2, 0.2)),
    ({"PixelSpacing": [0.0, 0.0], "ImagerPixelSpacing": [0.2, 0.2]}, "ImagerPixelSpacing (detector)",
     "mm (detector)", (0.2, 0.2)),
    ({"PixelSpacing": "abc"}, "none", "px", (None, None)),
    ({}, "none", "px", (None, None)),
])
def test_calibration_rules(meta, basis, label, spacing):
    cal = calibration_of(meta)
    assert (cal.basis, cal.label) == (basis, label)
    if spacing[0] is None:
        assert not cal.known and cal.unit == "px" and cal.row_mm is None
    else:
        assert cal.row_mm == pytest.approx(spacing[0]) and cal.col_mm == pytest.approx(spacing[1])


def test_user_calibration_overrides_the_file_and_keeps_the_aspect(dcm, capsys):
    f = dcm()  # no spacing
    out = measure_json(capsys, f, "--line", 0, 0, 0, 100, "--calibrate", 0, 0, 200, 0, 50)
    assert (out["length"], out["unit"], out["basis"], out["label"]) == (25.0, "mm", "calibration", "mm (calibrated)")
    g = dcm("g.dcm", PixelSpacing=[0.2, 0.1])  # rows twice as far apart as columns: kept
    out = measure_json(capsys, g, "--line", 0, 0, 0, 100, "--calibrate", 0, 0, 100, 0, 20)
    assert out["length"] == 40.0 and out["basis"] == "calibration"
    with pytest.raises(ValueError, match="zero length"):
        user_calibration((1, 1), (1, 1), 10)
    with pytest.raises(ValueError, match="positive"):
        user_calibration((0, 0), (1, 1), 0)


# ---------------------------------------------------------------- angle, Cobb, ROI


def test_angle_in_physical_space():
    square = calibration_of({})
    assert angle(square, (10, 0), (0, 0), (0, 10)).value == pytest.approx(90.0)
    # columns 0.1 mm, rows 0.2 mm: (10, 5) px is (1, 1) mm from the vertex -> 45 degrees, not 26.6
    aniso = calibration_of({"PixelSpacing": [0.2, 0.1]})
    assert angle(aniso, (10, 0), (0, 0), (10, 5)).value == pytest.approx(45.0)
    assert angle(square, (10, 0), (0, 0), (10, 5)).value == pytest.approx(math.degrees(math.atan(0.5)))
    with pytest.raises(ValueError, match="non-zero length"):
        angle(square, (0, 0), (0, 0), (1, 1))


def _line(deg, x=0.0, y=0.0, r=100.0):
    t = math.radians(deg)
    return (x, y), (x + r * math.cos(t), y - r * math.sin(t))


def test_cobb_angle_whatever_the_drawing_direction():
    cal = calibration_of({"PixelSpacing": [0.1, 0.1]})
    a0, a1 = _line(20)
    b0, b1 = _line(-15, y=300)
    assert cobb_angle(cal, a0, a1, b0, b1).value == pytest.approx(35.0)
    assert cobb_angle(cal, a1, a0, b0, b1).value == pytest.approx(35.0)  # line A drawn right to left
    assert cobb_angle(cal, a1, a0, b1, b0).value == pytest.approx(35.0)
    c0, c1 = _line(50)
    d0, d1 = _line(-50, y=300)
    assert cobb_angle(cal, c0, c1, d1, d0).value == pytest.approx(100.0)  # a severe curve passes 90


def test_cobb_cli(dcm, capsys):
    f = dcm(PixelSpacing=[0.1, 0.1])
    out = measure_json(capsys, f, "--cobb", 10, 50, 110, 50, 10, 100, 110, 100 + 100 * math.tan(math.radians(30)))
    assert out["angle"] == pytest.approx(30.0, abs=1e-3) and out["unit"] == "deg"


def test_rect_and_ellipse_stats_in_modality_units(dcm, capsys):
    pix = np.zeros((100, 120), dtype=np.uint16)
    pix[20:40, 30:70] = np.arange(20 * 40, dtype=np.uint16).reshape(20, 40)
    f = dcm(pixels=pix, PixelSpacing=[0.5, 0.25], RescaleSlope=2, RescaleIntercept=-100)
    out = measure_json(capsys, f, "--rect", 30, 20, 70, 40)
    want = pix[20:40, 30:70].astype(float) * 2 - 100
    assert out["pixels"] == 800
    assert out["mean"] == pytest.approx(want.mean(), abs=1e-4)
    assert out["sd"] == pytest.approx(want.std(), abs=1e-4)
    assert (out["min"], out["max"]) == (want.min(), want.max())
    assert out["area"] == pytest.approx(40 * 0.25 * 20 * 0.5)  # 100 mm²
    assert (out["unit"], out["area_unit"], out["basis"]) == ("mm", "mm²", "PixelSpacing")
    ell = measure_json(capsys, f, "--ellipse", 30, 20, 70, 40)
    assert ell["area"] == pytest.approx(math.pi * 20 * 0.25 * 10 * 0.5, abs=1e-3)
    assert abs(ell["pixels"] - math.pi * 20 * 10) < 0.03 * math.pi * 20 * 10
    frame = load_frame(f)
    mask = roi_mask(frame.shape, (30, 20), (70, 40), "ellipse")
    assert ell["mean"] == pytest.approx((pix[mask].astype(float) * 2 - 100).mean(), abs=1e-4)
    assert not mask[20, 30] and mask[30, 50]  # corner out, centre in


def test_roi_without_spacing_is_px_squared(dcm):
    frame = load_frame(dcm())
    m = roi(calibration_of(frame), frame, (0, 0), (10, 10))
    assert (m.label, m.stats["area"], m.stats["pixels"]) == ("px", 100.0, 100)
    assert "px²" in m.text
    with pytest.raises(ValueError, match="no pixel centre"):
        roi(calibration_of(frame), frame, (0.1, 0.1), (0.2, 0.2))


def test_ct_roi_in_hounsfield(testdata, capsys):
    import pydicom

    path = testdata("CT_small.dcm")
    out = measure_json(capsys, path, "--rect", 10, 10, 50, 50)
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array[10:50, 10:50].astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert out["mean"] == pytest.approx(hu.mean(), abs=1e-3) and out["value_unit"] == "HU"
    assert out["area"] == pytest.approx(40 * 40 * 0.661468 ** 2, rel=1e-6)


def test_measurement_round_trips_through_json():
    cal = Calibration(0.2, 0.1, "PixelSpacing", "mm")
    for m in (length(cal, (0, 0), (3, 4)), angle(cal, (1, 0), (0, 0), (0, 1)),
              cobb_angle(cal, (0, 0), (1, 0), (0, 5), (1, 1))):
        d = json.loads(json.dumps(m.to_dict()))
        back = Measurement.from_dict(d)
        assert (back.kind, back.basis, back.label) == (m.kind, m.basis, m.label)
        assert back.value == pytest.approx(m.value, abs=1e-4)


def test_cli_errors_name_the_file_and_the_reason(dcm, tmp_path, capsys):
    f = dcm()
    assert main(["measure", str(f), "--line", "0", "0", "301", "0"]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "outside the 300x200 image" in err
    assert main(["measure", str(tmp_path / "none.dcm"), "--line", "0", "0", "1", "1"]) == 2
    assert "none.dcm" in capsys.readouterr().err
    assert main(["measure", str(f), "--angle", "0", "0", "0", "0", "5", "5"]) == 2
    assert "non-zero length" in capsys.readouterr().err


def test_png_has_no_spacing(tmp_path, capsys):
    from PIL import Image

    p = tmp_path / "x.png"
    Image.fromarray(np.zeros((50, 60), dtype=np.uint8)).save(p)
    out = measure_json(capsys, p, "--line", 0, 0, 60, 0)
    assert (out["length"], out["unit"], out["basis"]) == (60.0, "px", "none")
