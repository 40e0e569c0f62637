"""The review panel's top-loss grid (a mixin of ReviewPanel): tiles built a few per event-loop
turn, as many columns as the width holds, images from the io queue blended with their CAMs."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QTimer, Qt

from radview.gui.widgets.review_tiles import ReviewTile, load_gray, pixmap_from_rgb
from radview.review.report import blend_cam
from radview.types import ImageRef


class ReviewGridMixin:
    def _fill_grid(self, tops) -> None:
        """Replace the tiles; they are built a few per event-loop turn so that showing a
        review never stalls the GUI (a tile costs ~2 ms to build and lay out)."""
        for t in self._tiles:
            self.grid.removeWidget(t)
            t.deleteLater()
        self._tiles = []
        self._cols = 0
        self._refs = {}
        self._pending_tops = list(tops)
        self._tile_gen += 1
        self._wanted = []
        if self._pending_tops:
            QTimer.singleShot(0, lambda g=self._tile_gen: self._add_tiles(g))

    def _add_tiles(self, gen: int, batch: int = 2) -> None:
        if gen != self._tile_gen:
            return  # a newer review replaced these tiles
        d = self._interp.data if self._interp is not None else None
        for top in self._pending_tops[:batch]:
            tile = ReviewTile(top, self._thumb)
            tile.clicked.connect(self.studyActivated)
            self._tiles.append(tile)
            if d is not None and top.study_key in d.keys:  # the ImageRefs (path + frame)
                for v in d.views[d.keys.index(top.study_key)]:
                    self._refs[v.ref.key] = v.ref
            for key in tile.refs:
                ref = self._refs.get(key) or ImageRef(key)
                self._wanted.append(ref)
                if key in self._grays:
                    self._show_image(key)
                elif self._io is not None:
                    self._io.submit(key, load_gray, ref, self._thumb * 2)
            cols = self._cols or self._columns()
            self._cols = cols
            n = len(self._tiles) - 1
            self.grid.addWidget(tile, n // cols, n % cols)
            tile.show()
        del self._pending_tops[:batch]
        if self._pending_tops:
            QTimer.singleShot(0, lambda: self._add_tiles(gen))
        else:
            self._relayout()
            self.tilesReady.emit()
            self._note_busy()
            if self._wanted:
                self.camsWanted.emit(list(self._wanted))

    def _columns(self) -> int:
        tile_w = max(t.sizeHint().width() for t in self._tiles) + self.grid.spacing()
        return max(1, (self.scroll.viewport().width() - 12) // max(tile_w, 1))

    def _relayout(self) -> None:
        """Place the tiles in as many columns as the grid's width holds."""
        if not self._tiles or self._pending_tops:
            return
        cols = self._columns()
        if cols == self._cols:
            return
        self._cols = cols
        for t in self._tiles:
            self.grid.removeWidget(t)
        for n, t in enumerate(self._tiles):
            self.grid.addWidget(t, n // cols, n % cols)

    def eventFilter(self, obj, event) -> bool:
        if obj is self.scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._relayout()
        return super().eventFilter(obj, event)

    def _on_image(self, key, gray, error) -> None:
        if error:
            for t in self._tiles:
                if key in t.images:
                    t.images[key].setText("unreadable")
                    t.images[key].setToolTip(error)
            return
        self._grays[key] = gray
        if len(self._grays) > 512:  # a bounded cache: drop the oldest
            self._grays.pop(next(iter(self._grays)))
        self._show_image(key)

    def _show_image(self, key: str) -> None:
        labels = [t.images[key] for t in self._tiles if key in t.images]
        gray = self._grays.get(key)
        if not labels or gray is None:
            return
        cam = self._cams.get(key)
        pix = pixmap_from_rgb(blend_cam(gray, None if cam is None else cam.astype(np.float32) / 255.0))
        pix = pix.scaled(self._thumb, self._thumb, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
        for lab in labels:
            lab.setPixmap(pix)
