"""DICOM tag browser for the current image, searchable (tag, keyword or value)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)


class TagBrowser(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.search = QLineEdit(placeholderText="Search tags (keyword, tag or value)…")
        self.search.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setAlternatingRowColors(True)
        # values are never truncated: long ones wrap, and the selected one shows in full below
        self.tree.setUniformRowHeights(False)
        self.tree.setWordWrap(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideNone)
        h = self.tree.header()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        h.setStretchLastSection(True)
        self.detail = QPlainTextEdit()
        self.detail.setReadOnly(True)
        self.detail.setPlaceholderText("Select an element: its whole value shows here (copyable)")
        self.detail.setMaximumHeight(90)
        self.status = QLabel("")
        self.status.setObjectName("Muted")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.search)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.detail)
        lay.addWidget(self.status)
        self.search.textChanged.connect(self._filter)
        self.tree.currentItemChanged.connect(
            lambda item, _prev: self.detail.setPlainText(
                "" if item is None else f"{item.text(1)} {item.text(0)}\n{item.text(3)}".strip()))
        self.path: str | None = None
        self._cache: dict[str, tuple] = {}
        self._workers: set = set()

    CACHE = 64

    def show_file(self, path: str | None, frame_meta: dict | None = None) -> None:
        """Show a file's elements. The header is read on a worker (never a dcmread on the GUI
        thread per navigation) and kept for the last CACHE files."""
        if path == self.path:
            return
        self.path = path
        self.tree.clear()
        if path is None:
            self.status.setText("")
            return
        from radview.io import DICOM_SUFFIXES, RASTER_SUFFIXES

        low = path.lower()
        if low.endswith(RASTER_SUFFIXES) and not low.endswith(DICOM_SUFFIXES):
            self._fill(path, None, "", frame_meta)
            return
        cached = self._cache.get(path)
        if cached is not None:
            self._fill(path, *cached, frame_meta)
            return
        from superqt.utils import create_worker

        self.status.setText("reading…")
        w = create_worker(_read_tags, path, _start_thread=False, _ignore_errors=True)
        w.returned.connect(lambda out, p=path, m=frame_meta: self._read(p, out, m))
        w.errored.connect(lambda exc, p=path, m=frame_meta: self._read(p, (None, f"not DICOM: {exc}"), m))
        self._workers.add(w)
        w.finished.connect(lambda w=w: self._workers.discard(w))
        w.start()

    def _read(self, path: str, out, meta) -> None:
        self._cache[path] = out
        while len(self._cache) > self.CACHE:
            self._cache.pop(next(iter(self._cache)))
        if path == self.path:
            self._fill(path, *out, meta)

    def _fill(self, path: str, rows, note: str, frame_meta) -> None:
        self.tree.clear()
        self.status.setText(note)
        if rows is None:
            for key, value in sorted((frame_meta or {}).items()):
                QTreeWidgetItem(self.tree, ["", str(key), "", str(value)])
            self.status.setText(self.status.text() or "not a DICOM file: image information only")
        else:
            parents: list[QTreeWidgetItem] = []
            for tag, keyword, vr, value, depth in rows:
                del parents[depth:]
                parent = parents[-1] if parents else self.tree
                item = QTreeWidgetItem(parent, [tag, keyword, vr, value])
                item.setToolTip(3, value)
                if vr == "SQ":
                    parents.append(item)
            self.status.setText(f"{len(rows)} elements")
        self._filter(self.search.text())

    def _filter(self, text: str) -> None:
        text = text.strip().lower()

        def visit(item: QTreeWidgetItem) -> bool:
            hit = not text or any(text in item.text(c).lower() for c in range(4))
            child_hit = False
            for i in range(item.childCount()):
                child_hit |= visit(item.child(i))
            item.setHidden(not (hit or child_hit))
            if text and child_hit:
                item.setExpanded(True)
            return hit or child_hit

        for i in range(self.tree.topLevelItemCount()):
            visit(self.tree.topLevelItem(i))

    def visible_rows(self) -> int:
        n = 0

        def count(item):
            nonlocal n
            if not item.isHidden():
                n += 1
            for i in range(item.childCount()):
                count(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            count(self.tree.topLevelItem(i))
        return n


def _read_tags(path: str):
    """(rows, '') or (None, why not) for a file (on a worker thread)."""
    from radview.io.dicom import dataset_tags

    try:
        return dataset_tags(path), ""
    except (OSError, ValueError) as exc:
        return None, f"not DICOM: {exc}"
