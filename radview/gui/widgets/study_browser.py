"""Study browser: patients -> studies -> views, with thumbnails, predictions, sort and filter.

The model is a plain QAbstractItemModel over small Python nodes (10,000 studies cost a few MB);
thumbnails are requested only for rows that are painted, made on an io thread, kept in a
byte-bounded LRU and on disk (see thumbnails.py).
"""
from __future__ import annotations

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from radview.types import Prediction, Study, StudyPrediction, View

COLUMNS = ("Name", "Type", "Label", "Prediction", "Prob.", "Domain", "Corrected", "Body part",
           "Patient name", "Patient ID", "Date", "Accession", "Modality", "Images")
INFO_COL = 8  # the columns from the DICOM header (study_info), one tuple per study
SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
NODE_ROLE = int(Qt.ItemDataRole.UserRole) + 2
# data() is called thousands of times per paint: compare plain ints, reject other roles first.
_DISPLAY, _DECORATION, _TOOLTIP, _FOREGROUND = (int(Qt.ItemDataRole.DisplayRole), int(Qt.ItemDataRole.DecorationRole),
                                                int(Qt.ItemDataRole.ToolTipRole), int(Qt.ItemDataRole.ForegroundRole))
_ROLES = frozenset((_DISPLAY, _DECORATION, _TOOLTIP, _FOREGROUND, SORT_ROLE, NODE_ROLE))
_WARN, _BAD = QColor("#ffb454"), QColor("#ff6b6b")


class Node:
    __slots__ = ("kind", "parent", "children", "row", "name", "study", "view", "pred", "corrected", "label")

    def __init__(self, kind: str, parent: Node | None, name: str = "", study: Study | None = None,
                 view: View | None = None):
        self.kind, self.parent, self.name, self.study, self.view = kind, parent, name, study, view
        self.children: list[Node] = []
        self.row = 0
        self.pred: Prediction | StudyPrediction | None = None
        self.corrected: str = ""
        self.label = None  # the store's current label (corrections win) once known: a Label or False

    def add(self, child: Node) -> Node:
        child.row = len(self.children)
        self.children.append(child)
        return child


def _label_text(label) -> str:
    if label is None:
        return ""
    if label.value:
        return label.value
    return f"{len(label.boxes)} box(es)" if label.boxes else ""


def _domain_text(pred) -> str:
    if pred is None:
        return ""
    return "in" if pred.in_domain else "OUT"


def _date(value) -> str:
    """DICOM DA 'YYYYMMDD' -> 'YYYY-MM-DD' (sorts as text); anything else as it is."""
    v = str(value or "").strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def study_info(st: Study, headers: dict) -> tuple:
    """(patient name, patient ID, study date, accession, modality, number of images) of a study,
    from its views' headers (the first that has each)."""
    hs = [headers.get(v.ref.path) or {} for v in st.views]

    def first(kw: str) -> str:
        return next((str(h[kw]).strip() for h in hs if h.get(kw) not in (None, "")), "")

    name = first("PatientName").replace("^", " ").strip()
    mods = sorted({v.modality for v in st.views if v.modality} or ({first("Modality")} - {""}))
    return (name, first("PatientID"), _date(first("StudyDate")), first("AccessionNumber"),
            "/".join(mods), len(st.views))


class StudyModel(QAbstractItemModel):
    def __init__(self, thumbnails=None, parent=None):
        super().__init__(parent)
        self.root = Node("root", None)
        self.thumbnails = thumbnails  # ThumbnailCache or None
        self.by_study: dict[str, Node] = {}
        self.by_ref: dict[str, Node] = {}
        self.studies: list[Study] = []
        self.info: dict[str, tuple] = {}
        self._dirty: set[Node] = set()
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self.flush)
        if thumbnails is not None:
            thumbnails.ready.connect(self._thumbnail_ready)

    # ------------------------------------------------------------------ content
    def set_studies(self, studies, headers: dict | None = None) -> None:
        """headers: DICOM path -> header keywords (ScanResult.headers) for the patient / date /
        accession / modality columns."""
        self.beginResetModel()
        self.info = {st.key: study_info(st, headers or {}) for st in studies}
        self._dirty.clear()
        self.root = Node("root", None)
        self.by_study.clear()
        self.by_ref.clear()
        self.studies = list(studies)
        patients: dict[str, Node] = {}
        for st in self.studies:
            pname = st.patient or "(no patient)"
            pnode = patients.get(pname)
            if pnode is None:
                pnode = patients[pname] = self.root.add(Node("patient", self.root, pname))
            sname = st.description or st.key.rsplit("/", 1)[-1]
            snode = pnode.add(Node("study", pnode, sname, study=st))
            self.by_study[st.key] = snode
            for i, v in enumerate(st.views):
                vname = v.ref.path.rsplit("/", 1)[-1] + (f" [{v.ref.frame}]" if v.ref.frame else "")
                vnode = snode.add(Node("view", snode, vname or f"view {i + 1}", study=st, view=v))
                self.by_ref[v.ref.key] = vnode
        self.endResetModel()

    def index_of_node(self, node: Node, column: int = 0) -> QModelIndex:
        if node is None or node.kind == "root":
            return QModelIndex()
        return self.createIndex(node.row, column, node)

    def set_study_prediction(self, sp: StudyPrediction) -> None:
        node = self.by_study.get(sp.study_key)
        if node is not None:
            node.pred = sp
            self._changed(node)

    def set_prediction(self, pred: Prediction) -> None:
        node = self.by_ref.get(pred.ref.key)
        if node is not None:
            node.pred = pred
            self._changed(node)

    def set_label(self, key: str, label, corrected: bool = True) -> None:
        """The item's current label from the store (after a correction, undo or redo): the
        Label and Corrected columns show it at once."""
        node = self.by_study.get(key) or self.by_ref.get(key)
        if node is None:
            return
        node.label = label if label is not None else False
        value = label.value if label is not None else None
        text = value if isinstance(value, str) else (f"{len(label.boxes)} box(es)" if label is not None
                                                     and label.boxes else "removed")
        node.corrected = f"✎ {text}" if corrected else ""
        self._dirty.add(node)
        if node.kind == "study":
            self._dirty.update(node.children)
        elif node.parent is not None and len(node.parent.children) == 1:
            # a one-image study: its row shows the image's label (what its label is)
            node.parent.label, node.parent.corrected = node.label, node.corrected
            self._dirty.add(node.parent)
        self.flush()  # now, not in 200 ms: the browser shows the correction in this turn

    def set_corrected(self, key: str, text: str) -> None:
        node = self.by_study.get(key) or self.by_ref.get(key)
        if node is not None:
            node.corrected = text
            self._changed(node)

    def set_body_part(self, study_key: str, text: str, reason: str = "") -> None:
        """The study's body part (radview.models.routing.study_verdict: DICOM header, else the
        body-part model) for the Body part column; the reason is its tooltip."""
        if not hasattr(self, "_body_parts"):
            self._body_parts: dict[str, tuple[str, str]] = {}
        self._body_parts[study_key] = (text, reason)
        node = self.by_study.get(study_key)
        if node is not None:
            self._changed(node)
            self._dirty.update(node.children)

    def body_part(self, study_key: str) -> str:
        return getattr(self, "_body_parts", {}).get(study_key, ("", ""))[0]

    def clear_predictions(self) -> None:
        for node in list(self.by_study.values()) + list(self.by_ref.values()):
            node.pred = None
        if self.root.children:
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, len(COLUMNS) - 1))

    def _changed(self, node: Node) -> None:
        """Batched: results arrive per image; the view and the sort/filter proxy hear about
        them at most every 200 ms (one dataChanged per changed row)."""
        self._dirty.add(node)
        if not self._flush_timer.isActive():
            self._flush_timer.start(200)

    def flush(self) -> None:
        self._flush_timer.stop()
        dirty, self._dirty = self._dirty, set()
        for node in dirty:
            self.dataChanged.emit(self.index_of_node(node, 1), self.index_of_node(node, len(COLUMNS) - 1))

    def _thumbnail_ready(self, key: str) -> None:
        node = self.by_ref.get(key)
        if node is not None:
            idx = self.index_of_node(node, 0)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])
            study = node.parent
            if study is not None and study.children and study.children[0] is node:
                sidx = self.index_of_node(study, 0)
                self.dataChanged.emit(sidx, sidx, [Qt.ItemDataRole.DecorationRole])

    # ------------------------------------------------------------------ Qt model
    def index(self, row, column, parent=QModelIndex()):
        pnode = parent.internalPointer() if parent.isValid() else self.root
        if 0 <= row < len(pnode.children) and 0 <= column < len(COLUMNS):
            return self.createIndex(row, column, pnode.children[row])
        return QModelIndex()

    def parent(self, index=QModelIndex()):  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        node = index.internalPointer().parent
        if node is None or node.kind == "root":
            return QModelIndex()
        return self.createIndex(node.row, 0, node)

    def rowCount(self, parent=QModelIndex()):  # noqa: N802
        if parent.isValid() and parent.column() > 0:
            return 0
        node = parent.internalPointer() if parent.isValid() else self.root
        return len(node.children)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index, role=_DISPLAY):  # noqa: C901
        role = int(role)
        if role not in _ROLES or not index.isValid():
            return None
        node: Node = index.internalPointer()
        col = index.column()
        if role == NODE_ROLE:
            return node
        if role == _DISPLAY or role == SORT_ROLE:
            value = self._value(node, col)
            if role == SORT_ROLE:
                return -1.0 if value is None and col == 4 else (value if value is not None else "")
            if col == 4 and value is not None:
                return f"{value:.2f}"
            return value if value is not None else ""
        if role == _DECORATION:
            if col != 0 or self.thumbnails is None:
                return None
            view = node.view if node.kind == "view" else (
                node.children[0].view if node.kind == "study" and node.children else None)
            return self.thumbnails.get(view.ref) if view is not None else None
        if role == _FOREGROUND:
            if col == 5 and node.pred is not None and not node.pred.in_domain:
                return _WARN
            if col == 3 and node.pred is not None:
                label = self._label(node)
                pred = node.pred.predicted
                if label and pred and label in node.pred.classes and label != pred:
                    return _BAD
            return None
        if node.kind == "view":  # tooltip
            tip = node.view.ref.path
        elif node.kind == "study":
            tip = node.study.key
        else:
            tip = node.name
        if node.pred is not None and not node.pred.in_domain:
            tip += f"\nout of domain: {node.pred.domain_reason}"
        return tip

    @staticmethod
    def _label(node: Node) -> str:
        if node.kind == "view":
            own = _label_text(node.label or None) if node.label is not None else _label_text(node.view.label)
            return own or StudyModel._label(node.parent)
        if node.kind == "study":
            return _label_text(node.label or None) if node.label is not None else _label_text(node.study.label)
        return ""

    def _value(self, node: Node, col: int):
        if col == 0:
            if node.kind == "patient":
                return f"{node.name}  ({len(node.children)})"
            return node.name
        if node.kind == "patient":
            return None
        if col == 1:
            st = node.study
            return st.study_type or (node.view.body_part if node.view else "") or st.layout
        if col == 2:
            return self._label(node)
        if col == 3:
            return node.pred.predicted if node.pred is not None else None
        if col == 4:
            if node.pred is None:
                return None
            p = node.pred.probability if isinstance(node.pred, Prediction) else (
                max(node.pred.probs) if node.pred.probs else None)
            return p
        if col == 5:
            return _domain_text(node.pred)
        if col == 6:
            return node.corrected
        if col == 7:
            return self.body_part(node.study.key) if node.study is not None else None
        if col >= INFO_COL and node.study is not None:
            info = self.info.get(node.study.key)
            if info is None:
                return None
            if node.kind == "view" and col == INFO_COL + 4:
                return node.view.modality or info[4]
            if node.kind == "view" and col == INFO_COL + 5:
                return None
            return info[col - INFO_COL]
        return None


class StudyFilter(QSortFilterProxyModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(-1)

    def lessThan(self, left, right):  # noqa: N802
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if type(a) is not type(b):
            return str(a) < str(b)
        return a < b


class StudyBrowser(QWidget):
    """Filter bar + tree. studyActivated(Study), viewActivated(Study, index of view)."""

    studyActivated = Signal(object)
    viewActivated = Signal(object, int)

    def __init__(self, thumbnails=None, parent=None):
        super().__init__(parent)
        self.model = StudyModel(thumbnails, self)
        self.proxy = StudyFilter(self)
        self.proxy.setSourceModel(self.model)
        self.filter_edit = QLineEdit(placeholderText="Filter studies…")
        self.filter_edit.setClearButtonEnabled(True)
        self.column_combo = QComboBox()
        self.column_combo.addItem("All columns", -1)
        for i, name in enumerate(COLUMNS):
            self.column_combo.addItem(name, i)
        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIconSize(QSize(44, 34))
        if thumbnails is not None:
            thumbnails.icon_size = (44, 34)  # kept pre-scaled: no scaling at paint time
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 190)
        for c in range(1, len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(c, 64)
        header.resizeSection(3, 80)
        header.resizeSection(4, 46)
        top = QHBoxLayout()
        top.setContentsMargins(4, 4, 4, 0)
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.column_combo)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addLayout(top)
        lay.addWidget(self.tree, 1)
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.column_combo.currentIndexChanged.connect(lambda _i: self._apply_filter(self.filter_edit.text()))
        self.tree.selectionModel().currentChanged.connect(self._current_changed)
        self._current_study_key: str | None = None
        self._silent = False

    def _apply_filter(self, text: str) -> None:
        self.proxy.setFilterKeyColumn(int(self.column_combo.currentData()))
        self.proxy.setFilterFixedString(text)

    def set_studies(self, studies, headers: dict | None = None) -> None:
        self.model.set_studies(studies, headers)
        if len(self.model.root.children) <= 50:
            self.tree.expandToDepth(0)

    def _current_changed(self, current, _previous) -> None:
        if self._silent or not current.isValid():
            return
        node: Node = self.proxy.mapToSource(current).internalPointer()
        if node.kind == "patient":
            return
        if node.kind == "study":
            self.studyActivated.emit(node.study)
        else:
            self.viewActivated.emit(node.study, node.row)

    def select(self, study_key: str, view: int | None = None, emit: bool = False) -> None:
        node = self.model.by_study.get(study_key)
        if node is None:
            return
        if view is not None and 0 <= view < len(node.children):
            node = node.children[view]
        idx = self.proxy.mapFromSource(self.model.index_of_node(node))
        if not idx.isValid():
            return
        self._silent = not emit
        try:
            self.tree.setCurrentIndex(idx)
            self.tree.scrollTo(idx)
        finally:
            self._silent = False

    def neighbour(self, study_key: str | None, step: int) -> Study | None:
        """The study `step` rows before/after this one in the browser's sorted, filtered order
        (crossing patients); the first study when study_key is None."""
        proxy = self.proxy
        node = self.model.by_study.get(study_key) if study_key else None
        if node is None:
            first = proxy.index(0, 0)
            child = proxy.index(0, 0, first)
            return proxy.mapToSource(child).internalPointer().study if child.isValid() else None
        idx = proxy.mapFromSource(self.model.index_of_node(node))
        if not idx.isValid():
            return None
        prow, srow = idx.parent().row(), idx.row()
        while True:
            srow += step
            pidx = proxy.index(prow, 0)
            if 0 <= srow < proxy.rowCount(pidx):
                break
            prow += 1 if step > 0 else -1
            if not 0 <= prow < proxy.rowCount():
                return None
            srow = -1 if step > 0 else proxy.rowCount(proxy.index(prow, 0))
        child = proxy.index(srow, 0, proxy.index(prow, 0))
        return proxy.mapToSource(child).internalPointer().study

    def visible_studies(self) -> list[Study]:
        """Studies in the browser's current (sorted, filtered) order."""
        out: list[Study] = []
        for prow in range(self.proxy.rowCount()):
            pidx = self.proxy.index(prow, 0)
            for srow in range(self.proxy.rowCount(pidx)):
                node = self.proxy.mapToSource(self.proxy.index(srow, 0, pidx)).internalPointer()
                out.append(node.study)
        return out
