"""PNG/JPEG through Pillow: 8/16-bit gray, RGB with equal channels as gray, alpha dropped."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from radview.io import load_frame
from radview.io.display import display_image, model_image


def test_png_8bit_gray_displays_as_is(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "g.png")
    f = load_frame(tmp_path / "g.png")
    assert f.stored.dtype == np.uint8 and not f.is_color
    assert np.array_equal(display_image(f), a)
    assert np.allclose(model_image(f), a / 255.0, atol=1e-6)


def test_png_16bit_gray_keeps_16_bits(tmp_path):
    a = np.random.default_rng(1).integers(100, 60000, (20, 25), dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    f = load_frame(tmp_path / "g16.png")
    assert f.stored.dtype == np.uint16 and np.array_equal(f.stored, a)
    d = display_image(f)
    assert d[np.unravel_index(a.argmin(), a.shape)] == 0 and d[np.unravel_index(a.argmax(), a.shape)] == 255


def test_rgb_with_equal_channels_is_gray_and_alpha_is_dropped(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, (10, 12), dtype=np.uint8)
    Image.fromarray(np.dstack([a, a, a])).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([a, a, a, np.full_like(a, 7)])).save(tmp_path / "rgba.png")
    for name in ("rgb.png", "rgba.png"):
        f = load_frame(tmp_path / name)
        assert not f.is_color and np.array_equal(f.stored, a), name


def test_nearly_equal_channels_are_gray(tmp_path):
    a = np.random.default_rng(4).integers(10, 240, (20, 20), dtype=np.uint8)
    rgb = np.dstack([a, a + 1, a - 1])  # chroma noise of a JPEG round trip
    Image.fromarray(rgb).save(tmp_path / "n.png")
    f = load_frame(tmp_path / "n.png")
    assert not f.is_color and np.abs(f.stored.astype(int) - a).max() <= 1


def test_real_colour_stays_colour(tmp_path):
    a = np.zeros((8, 8, 3), np.uint8)
    a[..., 0] = 200
    Image.fromarray(a).save(tmp_path / "c.png")
    f = load_frame(tmp_path / "c.png")
    assert f.is_color and display_image(f).shape == (8, 8, 3)


def test_jpeg_gray(tmp_path):
    a = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    Image.fromarray(a).save(tmp_path / "j.jpg", quality=95)
    f = load_frame(tmp_path / "j.jpg")
    assert np.abs(f.stored.astype(int) - a).mean() < 3


def test_real_openi_pngs_load(shared_data):
    paths = sorted((shared_data / "openi-chest-abdomen" / "val").glob("*/*.png"))
    assert len(paths) >= 5
    n_gray = 0
    for p in paths:
        f = load_frame(p)
        n_gray += not f.is_color
        assert display_image(f, max_size=128).shape[0] <= 128
        m = model_image(f)
        assert m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    assert n_gray >= len(paths) - 1  # one val figure has coloured annotations and stays colour


@pytest.mark.parametrize("max_size", [64, 100])
def test_max_size_box_filters_down(tmp_path, max_size):
    a = np.random.default_rng(3).integers(0, 256, (300, 200), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "big.png")
    d = display_image(load_frame(tmp_path / "big.png"), max_size=max_size)
    assert max(d.shape) <= max_size and max(d.shape) >= max_size * 0.6
    assert abs(float(d.mean()) - float(a.mean())) < 2


def test_scan_time_png_header_check_agrees_with_pillow(tmp_path):
    """The scan checks PNG headers itself (fast); Pillow's open is the oracle: each mutated
    header is refused by both or accepted by both."""
    import io
    import struct
    import zlib

    from PIL import Image

    from radview.io.sniff import check_raster

    buf = io.BytesIO()
    Image.fromarray(np.full((6, 5), 7, np.uint8)).save(buf, format="PNG")
    good = buf.getvalue()

    def with_ihdr(width=5, height=6, depth=8, colour=0, crc_ok=True, interlace=0):
        data = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
        crc = zlib.crc32(b"IHDR" + data) ^ (0 if crc_ok else 1)
        return good[:8] + struct.pack(">I", 13) + b"IHDR" + data + struct.pack(">I", crc) + good[33:]

    variants = {"good": good, "depth3": with_ihdr(depth=3), "rgb4bit": with_ihdr(depth=4, colour=2),
                "zero": with_ihdr(width=0), "crc": with_ihdr(crc_ok=False), "interlace": with_ihdr(interlace=1),
                "cut": good[:20], "colour5": with_ihdr(colour=5)}
    for name, data in variants.items():
        p = tmp_path / f"{name}.png"
        p.write_bytes(data)
        ours = check_raster(str(p), len(data))
        try:
            with Image.open(p) as im:
                im.size
            pillow_ok = True
        except Exception:  # noqa: BLE001 - the oracle: any refusal
            pillow_ok = False
        assert (ours is None) == pillow_ok, (name, ours)
    assert "IHDR" in check_raster(str(tmp_path / "cut.png"), 20)
