"""Frozen dataclasses shared by every room of radview (io, models, review, store, train, gui).

Only numpy and the standard library are imported here: no torch, no Qt.
Coordinates of boxes and CAM maps are always in *image pixel* coordinates of the
decoded frame (x to the right, y down), never in display or model-input coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageRef:
    """One 2-D image on disk: a file and, for multi-frame DICOM, a frame index."""

    path: str
    frame: int = 0

    @property
    def key(self) -> str:
        """Where the image is (path, `path#frame`): the key the store, caches and the GUI use.
        The store maps it to a stable item id (SOPInstanceUID, content hash: radview.store.keys)
        so that corrections follow a moved folder."""
        return self.path if self.frame == 0 else f"{self.path}#{self.frame}"


@dataclass(frozen=True)
class Window:
    """A VOI window (DICOM PS3.3 C.11.2.1.2). function: LINEAR, LINEAR_EXACT or SIGMOID."""

    center: float
    width: float
    function: str = "LINEAR"
    name: str = ""


@dataclass(frozen=True)
class LookupTable:
    """A DICOM LUT (modality or VOI): input values below first_mapped map to table[0],
    above the end to table[-1]. bits: output bits of the table entries."""

    first_mapped: int
    table: np.ndarray
    bits: int = 16
    name: str = ""


@dataclass(frozen=True)
class Frame:
    """One decoded image with everything the display and the model paths need.

    stored:   the stored pixel values (int array, HxW; HxWx3 uint8 for colour).
    slope/intercept or modality_lut: the modality transform (stored -> modality units).
    voi_lut:  a VOI LUT sequence item (used before any window), windows: Window presets
              from the file (first is the default), auto_window: a robust percentile window
              of the modality values (used when the file has neither).
    invert:   True for MONOCHROME1 or Presentation LUT Shape INVERSE: applied last, once.
    meta:     selected header values (Modality, BodyPartExamined, PatientID, StudyInstanceUID,
              SeriesInstanceUID, PixelSpacing, PhotometricInterpretation, ...).
    """

    ref: ImageRef
    stored: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    modality_lut: LookupTable | None = None
    voi_lut: LookupTable | None = None
    windows: tuple[Window, ...] = ()
    auto_window: Window = Window(127.5, 256.0, "LINEAR", "auto")
    invert: bool = False
    photometric: str = "MONOCHROME2"
    n_frames: int = 1
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_color(self) -> bool:
        return self.stored.ndim == 3

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.stored.shape[0]), int(self.stored.shape[1])

    @property
    def default_window(self) -> Window:
        return self.windows[0] if self.windows else self.auto_window


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels. score is None for a ground-truth box."""

    x: float
    y: float
    width: float
    height: float
    label: str = "opacity"
    score: float | None = None

    def as_xyxy(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.x + self.width, self.y + self.height


@dataclass(frozen=True)
class Label:
    """A label of a study or an image. value is a class name ('abnormal', 'chest', ...)
    or None where only boxes are known. source: where it came from
    ('mura-folder', 'mura-csv', 'class-folder', 'rsna-csv', 'csv', 'correction', ...).
    space: the label space it belongs to ('mura', 'rsna-pneumonia', 'folder:<name>',
    'csv:<stem>'; see radview.spaces), set by io at scan time."""

    value: str | None
    boxes: tuple[Box, ...] = ()
    source: str = ""
    space: str = ""  # the label space's name (radview.spaces), '' when unknown


# --------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class View:
    """One image of a study with what the scan learnt about it from the header or path."""

    ref: ImageRef
    label: Label | None = None
    modality: str = ""
    body_part: str = ""
    rows: int = 0
    columns: int = 0
    series_uid: str = ""
    instance: int = 0
    uid: str = ""  # SOPInstanceUID for DICOM ('' otherwise): the store's stable item key


@dataclass(frozen=True)
class Study:
    """A group of views of one patient and body part.

    layout: how the scan grouped it: 'dicom' (StudyInstanceUID), 'mura', 'class' (class
    folders), 'rsna' (challenge layout with labels CSV), 'flat' (one study per file).
    key: a stable identity (StudyInstanceUID for DICOM, the study folder for MURA, the
    file path for one-file studies)."""

    key: str
    patient: str = ""
    study_type: str = ""
    split: str = ""
    label: Label | None = None
    views: tuple[View, ...] = ()
    layout: str = "flat"
    description: str = ""
    space: str = ""  # label space name of its label (radview.spaces.space_of resolves it)


@dataclass(frozen=True)
class ScanError:
    path: str
    reason: str


@dataclass(frozen=True)
class ScanResult:
    root: str
    studies: tuple[Study, ...]
    errors: tuple[ScanError, ...] = ()
    n_files: int = 0
    n_read: int = 0  # files whose headers were (re-)read this time; the rest came from cache
    # DICOM path -> the header keywords the scan kept (radview.io.dicom.HEADER_KEYWORDS): the study
    # browser's date / accession / patient columns and radview.priors read them (not compared)
    headers: dict = field(default_factory=dict, compare=False, repr=False)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Prediction:
    """A model's answer for one image. probs: one per class (sigmoid for binary models,
    given as (1-p, p); softmax for multiclass; for detection, (1-max score, max score)).
    in_domain / domain_reason: the out-of-domain gate's verdict (shown with the answer)."""

    ref: ImageRef
    model: str
    model_version: str
    classes: tuple[str, ...]
    probs: tuple[float, ...]
    boxes: tuple[Box, ...] = ()
    in_domain: bool = True
    domain_reason: str = ""
    error: str | None = None

    @property
    def predicted(self) -> str | None:
        if self.error or not self.probs:
            return None
        return self.classes[int(np.argmax(self.probs))]

    @property
    def probability(self) -> float | None:
        if self.error or not self.probs:
            return None
        return float(max(self.probs))


@dataclass(frozen=True)
class StudyPrediction:
    """The study-level answer: mean of the view probabilities (the MURA rule)."""

    study_key: str
    model: str
    model_version: str
    classes: tuple[str, ...]
    probs: tuple[float, ...]
    predicted: str | None
    views: tuple[Prediction, ...] = ()
    in_domain: bool = True
    domain_reason: str = ""


@dataclass(frozen=True)
class CamMap:
    """A class-activation map, float32 in 0..1, in image coordinates (same shape as the frame)."""

    ref: ImageRef
    data: np.ndarray
    target: str = ""
    layer: str = ""
    method: str = "gradcam"


# --------------------------------------------------------------------------- long work


@dataclass(frozen=True)
class Progress:
    """What a long-running generator yields: done of total (total None = unknown)."""

    done: int
    total: int | None = None
    message: str = ""
    payload: Any = None
