"""The series strip: the views of the study on screen as thumbnails in one row (issue 14), the
way RadiAnt and Weasis show a study's series. Click a thumbnail (or move with the arrow keys,
Home / End, when the strip has the focus) to make that view the active one; the strip follows
the viewer (Left / Right, a click on a canvas).

Thumbnails come from the window's ThumbnailCache (one decode for the browser and the strip;
THUMB_PX pictures here). Each item is captioned with its number, the view position / body part
and the file name; a multi-frame file says how many frames it holds.

Signal: viewChosen(index of the view in the study).
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem

from radview.gui.widgets.thumbnails import THUMB_PX


def caption(index: int, view, meta: dict | None = None, tag: str = "") -> str:
    """'2 · LAT · image2.png' (view position from the header when the scan kept it); tag first
    when given ('prior 2023-02-01 · 2 · PA · PA.dcm' in a current|prior hanging)."""
    meta = meta or {}
    what = str(meta.get("ViewPosition") or getattr(view, "body_part", "") or meta.get("BodyPartExamined") or "")
    name = os.path.basename(view.ref.path) + (f" [{view.ref.frame}]" if view.ref.frame else "")
    return " · ".join(x for x in (tag, str(index + 1), what.strip(), name or "no view") if x)


class SeriesStrip(QListWidget):
    viewChosen = Signal(int)

    def __init__(self, thumbnails=None, parent=None):
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.setGridSize(QSize(THUMB_PX + 40, THUMB_PX + 34))
        self.setSpacing(2)
        self.setUniformItemSizes(True)
        self.setWordWrap(True)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(THUMB_PX + 34 + 22)
        self.study = None
        self._by_key: dict[str, list[int]] = {}
        self._silent = False
        self._blank = QPixmap(THUMB_PX, THUMB_PX)
        self._blank.fill(QColor("#1b1e22"))
        self.currentRowChanged.connect(self._row_changed)
        if thumbnails is not None:
            thumbnails.ready.connect(self._thumbnail_ready)

    def set_study(self, study, headers: dict | None = None, current: int = 0, tags=None) -> None:
        """Show the views of this study (None: empty); tags: a caption prefix per view."""
        self._silent = True
        try:
            self.clear()
            self._by_key = {}
            self.study = study
            for i, view in enumerate(study.views if study is not None else ()):
                meta = (headers or {}).get(view.ref.path) if view.ref.path else None
                tag = tags[i] if tags and i < len(tags) else ""
                text = caption(i, view, meta, tag)
                item = QListWidgetItem(self._two_lines(caption(i, view, meta), tag))
                item.setData(Qt.ItemDataRole.UserRole, text)
                item.setToolTip(view.ref.path or "no view of this projection in this study")
                item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
                if not view.ref.path:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                item.setIcon(self._pixmap(view.ref))
                self.addItem(item)
                self._by_key.setdefault(view.ref.key, []).append(i)
            if self.count():
                self.setCurrentRow(max(0, min(current, self.count() - 1)))
        finally:
            self._silent = False

    def _two_lines(self, text: str, tag: str = "") -> str:
        """The caption in at most two lines of the cell: the tag (or the number and view) first,
        the rest under it, elided in the middle."""
        fm = self.fontMetrics()
        room = self.gridSize().width() - 8
        if tag:
            return fm.elidedText(tag, Qt.TextElideMode.ElideRight, room) + "\n" + \
                fm.elidedText(text, Qt.TextElideMode.ElideMiddle, room)
        head, _, name = text.rpartition(" · ")
        if head and fm.horizontalAdvance(text) > room:
            return fm.elidedText(head, Qt.TextElideMode.ElideRight, room) + "\n" + \
                fm.elidedText(name, Qt.TextElideMode.ElideMiddle, room)
        return fm.elidedText(text, Qt.TextElideMode.ElideMiddle, room)

    def caption_of(self, index: int) -> str:
        """The item's whole caption (its text may be elided)."""
        item = self.item(index)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def set_current(self, index: int) -> None:
        """The viewer moved to this view: select it without echoing viewChosen."""
        if 0 <= index < self.count() and index != self.currentRow():
            self._silent = True
            try:
                self.setCurrentRow(index)
                self.scrollToItem(self.item(index))
            finally:
                self._silent = False

    def _pixmap(self, ref) -> QPixmap:
        if not ref.path or self.thumbnails is None:
            return self._blank
        pm = self.thumbnails.get(ref, large=True)
        return pm if pm is not None else self._blank

    def _thumbnail_ready(self, key: str) -> None:
        if self.study is None:
            return
        for i in self._by_key.get(key, ()):
            item = self.item(i)
            if item is not None:
                item.setIcon(self._pixmap(self.study.views[i].ref))

    def _row_changed(self, row: int) -> None:
        if not self._silent and row >= 0:
            self.viewChosen.emit(row)

    _KEYS = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End)

    def event(self, event):  # noqa: D401 - the strip keeps its keys while it has the focus
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.ShortcutOverride and event.key() in self._KEYS and not event.modifiers():
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event):  # noqa: N802
        """Left / Right / Home / End move (and choose); every other key goes to the window."""
        if event.key() in self._KEYS and self.count():
            row = {Qt.Key.Key_Left: self.currentRow() - 1, Qt.Key.Key_Right: self.currentRow() + 1,
                   Qt.Key.Key_Home: 0, Qt.Key.Key_End: self.count() - 1}[event.key()]
            self.setCurrentRow(max(0, min(row, self.count() - 1)))
            return
        event.ignore()
