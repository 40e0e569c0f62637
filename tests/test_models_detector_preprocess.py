"""The model input of a display-ready 8-bit DICOM (no window, no VOI LUT, no rescale: every RSNA
challenge file) is its pixels / 255, exactly as for its PNG/JPEG twin, never the viewer's
percentile auto window (the RSNA detector was trained on the 512 px JPEGs of these files)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from radview.io import load_frame
from radview.io.display import display_image
from radview.models.preprocess import gray_image, prepare
from radview.models.manifest import InputSpec
from tests.dicom_factory import write_dicom


def _narrow(h=64, w=48):
    rng = np.random.default_rng(0)
    return rng.integers(40, 201, size=(h, w), dtype=np.uint8)  # a narrow range: the auto window would stretch it


def test_8bit_dicom_without_window_gives_the_same_model_input_as_its_png(tmp_path):
    px = _narrow()
    dcm = load_frame(write_dicom(tmp_path / "a.dcm", px))
    Image.fromarray(px).save(tmp_path / "a.png")
    png = load_frame(tmp_path / "a.png")
    assert not dcm.windows and dcm.auto_window.name != "full range"  # the viewer's own choice stays
    g = gray_image(dcm)
    assert np.allclose(g, px / 255.0, atol=1e-6) and np.allclose(g, gray_image(png), atol=1e-6)
    spec = InputSpec(size=(32, 32), channels=3)
    assert np.allclose(prepare(dcm, spec)[0], prepare(png, spec)[0], atol=1e-5)
    # the display path is unchanged: the auto window stretches the narrow range for the eye
    assert display_image(dcm).max() > 250 and display_image(dcm).min() < 5


def test_monochrome1_and_windowed_8bit_dicoms_keep_their_own_voi(tmp_path):
    px = _narrow()
    m1 = gray_image(load_frame(write_dicom(tmp_path / "m1.dcm", px, photometric="MONOCHROME1")))
    assert np.allclose(m1, 1.0 - px / 255.0, atol=1e-6)  # polarity still applied
    win = load_frame(write_dicom(tmp_path / "w.dcm", px, WindowCenter=120, WindowWidth=80))
    g = gray_image(win)
    assert g.min() == 0.0 and g.max() == 1.0  # the file's own window is the model's VOI
    assert not np.allclose(g, px / 255.0, atol=0.05)
    # a 12-bit DICOM without a window keeps the io core's default VOI
    px12 = (_narrow().astype(np.uint16) * 16)
    f12 = load_frame(write_dicom(tmp_path / "b12.dcm", px12, bits_stored=12))
    from radview.io.display import model_image

    assert np.allclose(gray_image(f12), model_image(f12))
