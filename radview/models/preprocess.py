"""Frame -> model input (numpy + Pillow; runs in decoder threads, no torch needed).

The model path starts from `radview.io.display.model_image(frame)` (float32 HxW in [0,1], default
VOI, polarity applied, colour -> gray), never from the display pixels. Then:
resize ('squash' to the manifest's input size, Pillow bilinear with antialiasing on reduction),
gray -> channels (replicate), per-channel (x - mean) / std. The same function is used by the
training scripts so that training and inference see identical inputs.

`Geometry` maps model-input coordinates back to image pixels (boxes, CAM maps).
`decode_ref(ref, specs) -> Decoded` reads and prepares one image for one or more input specs;
it never raises (a bad file gives Decoded.error = "<path>: <reason>") and imports no torch, so
the engine can run it in decoder threads or processes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from radview.models.manifest import InputSpec
from radview.types import Frame, ImageRef


@dataclass(frozen=True)
class Geometry:
    """image (frame) size and model-input size, both (height, width)."""

    image_hw: tuple[int, int]
    input_hw: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Multiply input-space x, y by these to get image-space x, y."""
        return self.image_hw[1] / self.input_hw[1], self.image_hw[0] / self.input_hw[0]


def _display_ready_8bit(frame: Frame) -> bool:
    """An 8-bit grey frame with no VOI of its own (no window, no VOI LUT) and no modality
    transform: already display-ready pixels (a JPEG inside a DICOM wrapper, e.g. every RSNA
    challenge file)."""
    return (not frame.is_color and frame.stored.dtype == np.uint8 and not frame.windows
            and frame.voi_lut is None and frame.modality_lut is None
            and frame.slope == 1.0 and frame.intercept == 0.0)


def gray_image(frame: Frame) -> np.ndarray:
    """Float32 HxW in [0,1]: the io core's model image, except that a display-ready 8-bit grey
    frame (see `_display_ready_8bit`) maps 0..255 -> 0..1 (polarity applied), exactly as its
    PNG/JPEG twin does through radview.io.raster. The viewer's percentile auto window (a display
    choice) would otherwise stretch the model input of such a DICOM away from the raster images
    the models were trained on (RSNA: mean input off by up to 0.3 on the challenge DICOMs)."""
    from radview.io.display import model_image

    if _display_ready_8bit(frame):
        x = frame.stored.astype(np.float32) * np.float32(1.0 / 255.0)
        return (1.0 - x) if frame.invert else x
    return model_image(frame)


def resize_gray(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float32 HxW image (antialiased when reducing)."""
    h, w = size_hw
    if img.shape == (h, w):
        return np.ascontiguousarray(img, dtype=np.float32)
    im = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F")
    return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


def normalize(gray: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HxW float in [0,1] (already at input size) -> CxHxW float32 normalised."""
    c = spec.channels
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(c, 1, 1)
    inv_std = (1.0 / np.asarray(spec.std, dtype=np.float32)).reshape(c, 1, 1)
    return ((gray[None, :, :] - mean) * inv_std).astype(np.float32, copy=False)


def prepare_gray(gray: np.ndarray, spec: InputSpec) -> np.ndarray:
    return normalize(resize_gray(gray, spec.size), spec)


def prepare(frame: Frame, spec: InputSpec) -> tuple[np.ndarray, Geometry]:
    """Frame -> (CxHxW float32 input, Geometry)."""
    gray = gray_image(frame)
    return prepare_gray(gray, spec), Geometry(image_hw=gray.shape[:2], input_hw=tuple(spec.size))


# --------------------------------------------------------------------------- decoding


@dataclass
class Decoded:
    """One image ready for the model: input arrays by spec key, what the gate needs, or an error."""

    ref: ImageRef
    meta: dict[str, Any] = field(default_factory=dict)
    inputs: dict[tuple, np.ndarray] = field(default_factory=dict)
    geometry: Geometry = Geometry((0, 0), (0, 0))
    error: str | None = None


def spec_key(spec: InputSpec) -> tuple:
    return (tuple(spec.size), spec.channels, tuple(spec.mean), tuple(spec.std))


def decode_frame(frame: Frame, specs: Sequence[InputSpec]) -> Decoded:
    gray = gray_image(frame)
    inputs = {spec_key(s): prepare_gray(gray, s) for s in specs}
    return Decoded(frame.ref, dict(frame.meta or {}), inputs,
                   Geometry(image_hw=gray.shape[:2], input_hw=tuple(specs[0].size)))


def decode_ref(ref: ImageRef, specs: Sequence[InputSpec]) -> Decoded:
    from radview.io import ImageError, load_frame

    try:
        return decode_frame(load_frame(ref.path, ref.frame), specs)
    except ImageError as exc:
        return Decoded(ref, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bad file never stops the run
        return Decoded(ref, error=f"{ref.path}: {type(exc).__name__}: {exc}")
