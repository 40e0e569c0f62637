"""The one error type of the io core: it names the file and the reason."""
from __future__ import annotations

import os


def printable_path(path: str | os.PathLike) -> str:
    """A path safe to print or store as text, even with a non-UTF-8 file name."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class ImageError(Exception):
    """A file could not be read as an image. str(err) is '<path>: <reason>'."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = printable_path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ScanCancelled(Exception):
    """A scan was stopped by its `cancel` callback (see radview.io.studies.iter_scan)."""
