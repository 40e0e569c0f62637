"""Pixels and studies from disk: no torch, no Qt.

- `load_frame(path, frame=0) -> Frame`: DICOM (any syntax pydicom + pylibjpeg decode) or a
  raster image (PNG/JPEG/TIFF/BMP); raises `ImageError` naming the file and the reason.
- `radview.io.display`: `display_image` (uint8 for the screen) and `model_image` (float32 in
  [0,1] for model preprocessing): separate pure functions of one Frame.
- `scan(path) -> ScanResult`: studies, views and labels under a folder (or one file).
"""
from __future__ import annotations

import os

from radview.io.errors import ImageError, printable_path
from radview.io.raster import RASTER_SUFFIXES
from radview.types import Frame

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")

__all__ = ["ImageError", "load_frame", "scan", "is_image_path", "printable_path", "DICOM_SUFFIXES", "RASTER_SUFFIXES"]


def is_image_path(path: str) -> bool:
    """Cheap check: a raster or DICOM suffix, else DICOM content (sniffed) for any name that
    does not say it is something else."""
    low = path.lower()
    if low.endswith(RASTER_SUFFIXES) or low.endswith(DICOM_SUFFIXES):
        return True
    from radview.io.sniff import NOT_IMAGE_SUFFIXES

    if os.path.splitext(low)[1] in NOT_IMAGE_SUFFIXES:
        return False
    from radview.io.dicom import is_dicom_file  # PACS names: IM0001, 1.3.12.2.1107..., image.v2

    return is_dicom_file(path)


def load_frame(path: str | os.PathLike, frame: int = 0) -> Frame:
    """Decode one frame of an image file into a Frame (see radview.types.Frame)."""
    p = os.fspath(path)
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    low = p.lower()
    from radview.io.dicom import is_dicom_file, load_dicom

    if low.endswith(RASTER_SUFFIXES):
        from radview.io.raster import load_raster

        try:
            return load_raster(p, frame)
        except ImageError:
            if is_dicom_file(p):  # a DICOM file named .png/.jpg is a DICOM file
                return load_dicom(p, frame)
            raise

    if low.endswith(DICOM_SUFFIXES) or is_dicom_file(p):
        return load_dicom(p, frame)
    if not os.path.exists(p):
        raise ImageError(p, "no such file")
    # Unknown suffix: let Pillow try, then report clearly.
    from radview.io.raster import load_raster

    try:
        return load_raster(p, frame)
    except ImageError:
        from radview.io.sniff import describe, read_head

        try:
            what = describe(read_head(p))
        except OSError as exc:
            raise ImageError(p, f"cannot read file ({exc.strerror or exc})") from None
        raise ImageError(p, f"not a DICOM file (no DICM preamble, no DICOM data elements) nor an image "
                            f"Pillow can read: it looks like {what}") from None


def scan(path: str | os.PathLike, **kwargs):
    """Studies under a folder (or one file): see radview.io.studies.scan."""
    from radview.io.studies import scan as _scan

    return _scan(path, **kwargs)
