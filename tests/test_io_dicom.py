"""DICOM pixels: real pydicom-data radiographs and synthetic files against pydicom's own
processing functions as oracles."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.pixels.processing import apply_windowing

from radview.io import load_frame
from radview.io.display import display_image, modality, model_image, voi_unit
from radview.types import Window

from dicom_factory import write_dicom


@pytest.mark.parametrize("name", ["RG1", "RG3"])
def test_nema_cr_lossless_equals_uncompressed_and_lossy_is_close(testdata, name):
    unc = load_frame(testdata(f"{name}_UNCR.dcm"))
    j2kr = load_frame(testdata(f"{name}_J2KR.dcm"))
    j2ki = load_frame(testdata(f"{name}_J2KI.dcm"))
    d_unc, d_r, d_i = display_image(unc), display_image(j2kr), display_image(j2ki)
    assert np.array_equal(unc.stored, j2kr.stored)
    assert np.array_equal(d_unc, d_r)
    diff = np.abs(d_unc.astype(int) - d_i.astype(int))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 12
    assert not np.array_equal(d_unc, d_i)  # lossy really is lossy


def test_monochrome1_shows_bone_bright_background_dark(testdata):
    f = load_frame(testdata("RG3_UNCR.dcm"))
    assert f.photometric == "MONOCHROME1" and f.invert
    d = display_image(f)
    w = d.shape[1]
    bone = d[:, int(0.47 * w): int(0.53 * w)].mean()  # tibia shaft, centre of the film
    air = d[:, int(0.33 * w): int(0.37 * w)].mean()   # air beside the leg
    assert bone > 120 and air < 60
    # the inversion is applied once: forcing invert=False gives the exact complement
    assert np.array_equal(display_image(f, invert=False).astype(int), 255 - d.astype(int))


def test_monochrome1_relabelled_twin_is_the_inverse(shared_data):
    m2 = load_frame(shared_data / "dicom" / "siim-chest-cr-jpeg-baseline.dcm")
    m1 = load_frame(shared_data / "dicom" / "siim-chest-cr-relabelled-monochrome1.dcm")
    assert (m2.photometric, m1.photometric) == ("MONOCHROME2", "MONOCHROME1")
    assert np.array_equal(m1.stored, m2.stored)
    a, b = display_image(m2).astype(int), display_image(m1).astype(int)
    assert np.abs(a + b - 255).max() <= 1
    # the model sees the same polarity convention for both (bone bright)
    assert np.allclose(model_image(m1), 1.0 - model_image(m2), atol=1e-6)


def test_voi_lut_sequence_follows_its_table(testdata):
    path = testdata("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    f = load_frame(path)
    assert f.voi_lut is not None
    expected = apply_voi_lut(ds.pixel_array, ds).astype(np.float64) / (2 ** 16 - 1)
    got = voi_unit(f, modality(f, f.stored))
    assert np.allclose(got, expected, atol=1e-9)
    assert np.abs(display_image(f).astype(float) - np.round(expected * 255)).max() <= 1


def test_modality_lut_sequence_follows_its_table(testdata):
    path = testdata("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    f = load_frame(path)
    assert f.modality_lut is not None and f.stored.dtype == np.int16
    assert np.array_equal(modality(f, f.stored), apply_modality_lut(ds.pixel_array, ds).astype(np.float64))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_functions_match_pydicom(tmp_path, function):
    rng = np.random.default_rng(1)
    px = rng.integers(0, 4096, size=(64, 80), dtype=np.uint16)
    p = write_dicom(tmp_path / "w.dcm", px, bits_stored=12, WindowCenter=[1500, 800], WindowWidth=[1000, 300],
                    VOILUTFunction=function, RescaleSlope=1.5, RescaleIntercept=-100)
    ds = pydicom.dcmread(p)
    f = load_frame(p)
    assert [w.function for w in f.windows] == [function, function]
    assert len(f.windows) == 2  # several windows become presets
    for i in range(2):
        ds_i = pydicom.dcmread(p)
        expected = apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds_i, index=i)
        y_min, y_max = -100.0, (2 ** 12 - 1) * 1.5 - 100.0  # pydicom maps onto the rescaled range
        expected = (expected - y_min) / (y_max - y_min)
        got = voi_unit(f, modality(f, f.stored), f.windows[i])
        assert np.allclose(got, expected, atol=2e-3), function


@pytest.mark.parametrize("dtype,bits", [(np.uint8, 8), (np.uint16, 10), (np.uint16, 12), (np.uint16, 16),
                                        (np.int16, 12), (np.int16, 16), (np.int8, 8)])
def test_bits_stored_signed_and_unsigned_roundtrip(tmp_path, dtype, bits):
    rng = np.random.default_rng(bits)
    info = np.iinfo(dtype)
    lo = -(2 ** (bits - 1)) if info.min < 0 else 0
    hi = 2 ** (bits - 1) - 1 if info.min < 0 else 2 ** bits - 1
    px = rng.integers(lo, hi + 1, size=(40, 30)).astype(dtype)
    p = write_dicom(tmp_path / "b.dcm", px, bits_stored=bits)
    f = load_frame(p)
    assert np.array_equal(f.stored, px)
    assert np.array_equal(f.stored, pydicom.dcmread(p).pixel_array)
    d = display_image(f, window=Window(float(px.mean()), float(hi - lo), "LINEAR_EXACT"))
    # display is monotonic in the stored value
    order = np.argsort(px.ravel(), kind="stable")
    assert np.all(np.diff(d.ravel()[order].astype(int)) >= 0)


def test_multiframe_index(tmp_path):
    px = np.stack([np.full((16, 16), v, np.uint16) for v in (10, 200, 3000)])
    p = write_dicom(tmp_path / "mf.dcm", px)
    assert load_frame(p).stored[0, 0] == 10
    f2 = load_frame(p, 2)
    assert f2.stored[0, 0] == 3000 and f2.n_frames == 3 and f2.ref.frame == 2
    from radview.io import ImageError

    with pytest.raises(ImageError, match="frame 3 out of range"):
        load_frame(p, 3)


@pytest.mark.parametrize("compressed", [
    "emri_small_jpeg_ls_lossless.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm",
])
def test_compressed_syntaxes_equal_the_uncompressed_original(testdata, compressed):
    ref = pydicom.dcmread(testdata("emri_small.dcm")).pixel_array
    for i in (0, 5):
        assert np.array_equal(load_frame(testdata(compressed), i).stored, ref[i])


@pytest.mark.parametrize("name", ["JPEG-LL.dcm", "JPGExtended.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm", "MR2_J2KR.dcm"])
def test_compressed_grayscale_decodes_like_pydicom(testdata, name):
    path = testdata(name)
    f = load_frame(path)
    assert np.array_equal(f.stored, pydicom.dcmread(path).pixel_array)
    assert display_image(f).dtype == np.uint8


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "US1_J2KR.dcm",
                                  "SC_ybr_full_uncompressed.dcm", "OBXXXX1A.dcm"])
def test_colour_and_ybr_become_rgb(testdata, name):
    f = load_frame(testdata(name))
    assert f.is_color and f.stored.dtype == np.uint8 and f.stored.shape[2] == 3
    d = display_image(f)
    assert d.shape == f.stored.shape
    g = model_image(f)
    assert g.ndim == 2 and 0.0 <= g.min() <= g.max() <= 1.0


def test_rescale_slope_intercept_and_auto_window(tmp_path):
    px = np.zeros((50, 50), np.uint16)
    px[10:40, 10:40] = 1000
    px[20:30, 20:30] = 3000
    p = write_dicom(tmp_path / "r.dcm", px, RescaleSlope=2, RescaleIntercept=-1024)
    f = load_frame(p)
    assert f.windows == ()  # none in the file: the auto window is the default
    w = f.default_window
    assert w.name == "auto" and w.center - w.width / 2 <= -1024 and w.center + w.width / 2 >= 4976
    d = display_image(f)
    assert d[0, 0] < d[15, 15] < d[25, 25]


def test_presentation_lut_inverse_and_monochrome1_not_inverted_twice(tmp_path):
    px = np.tile(np.arange(0, 256, dtype=np.uint8), (4, 1))
    normal = display_image(load_frame(write_dicom(tmp_path / "a.dcm", px)))
    inv_pls = display_image(load_frame(write_dicom(tmp_path / "b.dcm", px, PresentationLUTShape="INVERSE")))
    inv_m1 = display_image(load_frame(write_dicom(tmp_path / "c.dcm", px, photometric="MONOCHROME1")))
    both = display_image(load_frame(write_dicom(tmp_path / "d.dcm", px, photometric="MONOCHROME1",
                                                PresentationLUTShape="INVERSE")))
    assert np.array_equal(inv_pls, 255 - normal)
    assert np.array_equal(inv_m1, 255 - normal)
    assert np.array_equal(both, 255 - normal)  # once, never twice


def test_dicom_without_extension_is_recognised(tmp_path):
    p = write_dicom(tmp_path / "IM0001", np.ones((8, 8), np.uint16))
    assert load_frame(p).shape == (8, 8)


def test_auto_window_is_computed_on_demand_for_files_with_windows(testdata):
    from radview.io.display import auto_window, auto_window_of, presets

    f = load_frame(testdata("RG3_UNCR.dcm"))
    assert f.windows and f.default_window == f.windows[0]
    w = auto_window_of(f)
    assert w == auto_window(f) and w.name == "auto" and w.width > 1
    names = [p.name for p in presets(f)]
    assert names[-2:] == ["auto", "full range"] and "auto (not computed)" not in names
