"""Thumbnails for the study browser and the series strip: made on an io thread, kept in a
byte-bounded LRU of QPixmaps and as small PNGs under RADVIEW_HOME/thumbnails (keyed by path,
frame, size, mtime). One decode serves both: the browser's icon (get(ref), pre-scaled to
icon_size) and the strip's full THUMB_PX picture (get(ref, large=True))."""
from __future__ import annotations

import collections
import hashlib
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap

from radview import paths
from radview.gui.workers import TaskQueue
from radview.types import ImageRef

THUMB_PX = 96


def _disk_key(ref: ImageRef) -> str | None:
    try:
        st = os.stat(ref.path)
    except OSError:
        return None
    raw = f"{ref.path}|{ref.frame}|{st.st_size}|{st.st_mtime_ns}|{THUMB_PX}"
    return hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()


def make_thumbnail(ref: ImageRef, cache_dir: Path | None) -> QImage:
    """Runs on the io thread: disk cache hit, or decode + display_image at thumbnail size."""
    key = _disk_key(ref)
    file = cache_dir / key[:2] / f"{key}.png" if cache_dir is not None and key else None
    if file is not None and file.is_file():
        img = QImage(str(file))
        if not img.isNull():
            return img
    from radview.io import load_frame
    from radview.io.display import display_image

    arr = display_image(load_frame(ref.path, ref.frame), max_size=THUMB_PX)
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        img = QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    else:
        img = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    if max(w, h) > THUMB_PX:
        img = img.scaled(THUMB_PX, THUMB_PX, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            img.save(str(file), "PNG")
        except OSError:
            pass
    return img


class ThumbnailCache(QObject):
    """get(ref) -> QPixmap or None (and a background request); ready(key) when one arrives."""

    ready = Signal(str)

    def __init__(self, max_bytes: int = 48 * 2**20, disk: bool = True, parent: QObject | None = None):
        super().__init__(parent)
        self.max_bytes = max_bytes
        self.icon_size: tuple[int, int] | None = None  # scale to this once, on arrival
        self.bytes = 0
        self._lru: collections.OrderedDict[str, QPixmap] = collections.OrderedDict()
        self._large: collections.OrderedDict[str, QPixmap] = collections.OrderedDict()
        self._failed: set[str] = set()
        self._requested: set[str] = set()
        self.cache_dir = paths.user_home() / "thumbnails" if disk else None
        self.queue = TaskQueue(max_pending=128, parent=self)
        self.queue.done.connect(self._done)

    def get(self, ref: ImageRef, large: bool = False) -> QPixmap | None:
        """The icon (large: the THUMB_PX picture of the series strip), or None while it is made."""
        key = ref.key
        lru = self._large if large else self._lru
        pm = lru.get(key)
        if pm is not None:
            lru.move_to_end(key)
            return pm
        if key not in self._failed and key not in self._requested:
            self._requested.add(key)
            self.queue.submit(key, make_thumbnail, ref, self.cache_dir)
            if len(self._requested) > 4 * 128:  # dropped requests may be asked again
                self._requested = {k for k in self._requested if k in self.queue._pending}
        return None

    def _done(self, key, img, error) -> None:
        self._requested.discard(key)
        if error is not None or img is None:
            self._failed.add(key)
            return
        large = QPixmap.fromImage(img)
        if self.icon_size is not None:
            img = img.scaled(*self.icon_size, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
        pm = QPixmap.fromImage(img) if self.icon_size is not None else large
        for lru, p in ((self._lru, pm), (self._large, large)):
            old = lru.pop(key, None)
            if old is not None:
                self.bytes -= old.width() * old.height() * 4
            lru[key] = p
            self.bytes += p.width() * p.height() * 4
        while self.bytes > self.max_bytes and (self._lru or self._large):
            lru = self._large if len(self._large) >= len(self._lru) and self._large else self._lru
            _, old = lru.popitem(last=False)
            self.bytes -= old.width() * old.height() * 4
        self.ready.emit(key)

    def clear(self) -> None:
        self.queue.clear()
        self._lru.clear()
        self._large.clear()
        self._failed.clear()
        self._requested.clear()
        self.bytes = 0

    def stop(self) -> None:
        self.queue.stop()
