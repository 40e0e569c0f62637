"""PNG / JPEG / TIFF / BMP radiographs through Pillow: 8- and 16-bit gray, RGB with equal
channels treated as gray, alpha dropped."""
from __future__ import annotations

import os

import numpy as np

from radview.io.errors import ImageError
from radview.types import Frame, ImageRef, Window

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def load_raster(path: str, frame: int = 0) -> Frame:
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            n_frames = getattr(im, "n_frames", 1)
            if not 0 <= frame < n_frames:
                raise ImageError(path, f"frame {frame} out of range (the file has {n_frames} frame(s))")
            if frame:
                im.seek(frame)
            im.load()
            arr, photometric = _to_array(im)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not a readable image (Pillow cannot identify the file format)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(path, f"truncated or corrupt image ({exc})") from None
    except MemoryError:
        raise ImageError(path, "not enough memory to decode this image") from None
    except Exception as exc:  # noqa: BLE001 - a malformed file never escapes as another error
        raise ImageError(path, f"unreadable image ({type(exc).__name__}: {exc})") from None
    ref = ImageRef(path, frame)
    if arr.ndim == 3:
        win = Window(127.5, 255.0, "LINEAR_EXACT", "full range")
    elif arr.dtype == np.uint8:
        win = Window(127.5, 255.0, "LINEAR_EXACT", "full range")
    else:
        lo, hi = float(arr.min()), float(arr.max())
        win = Window((lo + hi) / 2.0, hi - lo if hi > lo else 1.0, "LINEAR_EXACT", "full range")
    meta = {"path": path, "Rows": arr.shape[0], "Columns": arr.shape[1], "format": "raster"}
    return Frame(ref=ref, stored=arr, auto_window=win, photometric=photometric, n_frames=n_frames, meta=meta)


def _to_array(im) -> tuple[np.ndarray, str]:
    """Pillow image -> (stored array, photometric)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8), "MONOCHROME2"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16, copy=False), "MONOCHROME2"
    if mode == "I":
        a = np.asarray(im)
        if a.min() >= 0 and a.max() <= 65535:
            return a.astype(np.uint16), "MONOCHROME2"
        return a.astype(np.int32), "MONOCHROME2"
    if mode == "F":
        return np.asarray(im, dtype=np.float32), "MONOCHROME2"
    if mode == "LA":
        return np.asarray(im.getchannel("L"), dtype=np.uint8), "MONOCHROME2"
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        if np.array_equal(r, g) and np.array_equal(g, b):
            return np.ascontiguousarray(r), "MONOCHROME2"
        # Gray saved through a colour pipeline (JPEG chroma noise, a faint tint): still gray.
        # Real colour (coloured arrows, annotations, photographs) stays RGB.
        i16 = rgb.astype(np.int16)
        spread = np.abs(i16[..., 0] - i16[..., 1]) + np.abs(i16[..., 1] - i16[..., 2])
        if np.count_nonzero(spread > 8) < 0.01 * spread.size:
            i32 = rgb.astype(np.int32)
            gray = (i32[..., 0] * 299 + i32[..., 1] * 587 + i32[..., 2] * 114 + 500) // 1000
            return gray.astype(np.uint8), "MONOCHROME2"
        return rgb, "RGB"
    return np.asarray(im.convert("L"), dtype=np.uint8), "MONOCHROME2"
