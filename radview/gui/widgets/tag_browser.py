"""DICOM tag browser for the current image, searchable (tag, keyword or value)."""
from __future__ import annotations

from PySide6.QtWidgets import QHeaderView, QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget


class TagBrowser(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.search = QLineEdit(placeholderText="Search tags (keyword, tag or value)…")
        self.search.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        h = self.tree.header()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.status = QLabel("")
        self.status.setObjectName("Muted")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.search)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.status)
        self.search.textChanged.connect(self._filter)
        self.path: str | None = None

    def show_file(self, path: str | None, frame_meta: dict | None = None) -> None:
        if path == self.path:
            return
        self.path = path
        self.tree.clear()
        if path is None:
            self.status.setText("")
            return
        from radview.io import DICOM_SUFFIXES, RASTER_SUFFIXES

        low = path.lower()
        rows = None
        if not low.endswith(RASTER_SUFFIXES) or low.endswith(DICOM_SUFFIXES):
            try:
                from radview.io.dicom import dataset_tags

                rows = dataset_tags(path)
            except Exception as exc:  # noqa: BLE001
                self.status.setText(f"not DICOM: {exc}")
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
