"""Study browser: patients -> studies -> views, with thumbnails, predictions, sort and filter.

Priors (issue 14): the Priors column (shown second) counts each study's priors (the same
patient's earlier studies, radview.priors); once a study is on screen (set_current) its own row
says "current" and its priors say "prior, N days before" in a colour of their own; the context
menu of a study opens it as the prior beside the current study (priorRequested), or compares
the current one with its most recent prior.

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
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from radview.gui.widgets.browser_rows import (
    LazyPriors,
    Node,
    _domain_text,
    _label_text,
    study_info,
    study_priors,
)
from radview.types import Prediction, Study, StudyPrediction

__all__ = ["COLUMNS", "INFO_COL", "PRIORS_COL", "Node", "StudyBrowser", "StudyFilter", "StudyModel", "study_info",
           "study_priors"]

COLUMNS = ("Name", "Type", "Label", "Prediction", "Prob.", "Domain", "Corrected", "Body part",
           "Patient name", "Patient ID", "Date", "Accession", "Modality", "Images", "Priors")
INFO_COL = 8  # the columns from the DICOM header (study_info), one tuple per study
PRIORS_COL = 14  # shown second (the header moves it), kept last in the model
BODY_PART_COL = 7
SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
NODE_ROLE = int(Qt.ItemDataRole.UserRole) + 2
# data() is called thousands of times per paint: compare plain ints, reject other roles first.
_DISPLAY, _DECORATION, _TOOLTIP, _FOREGROUND = (int(Qt.ItemDataRole.DisplayRole), int(Qt.ItemDataRole.DecorationRole),
                                                int(Qt.ItemDataRole.ToolTipRole), int(Qt.ItemDataRole.ForegroundRole))
_FONT = int(Qt.ItemDataRole.FontRole)
_ROLES = frozenset((_DISPLAY, _DECORATION, _TOOLTIP, _FOREGROUND, _FONT, SORT_ROLE, NODE_ROLE))
_WARN, _BAD, _PRIOR = QColor("#ffb454"), QColor("#ff6b6b"), QColor("#7fd4a0")


class StudyModel(QAbstractItemModel):
    def __init__(self, thumbnails=None, parent=None):
        super().__init__(parent)
        self.root = Node("root", None)
        self.thumbnails = thumbnails  # ThumbnailCache or None
        self.by_study: dict[str, Node] = {}
        self.by_ref: dict[str, Node] = {}
        self.studies: list[Study] = []
        self.info: dict[str, tuple] = {}
        self.priors = LazyPriors((), {})  # study key -> radview.priors.Prior list (earlier first)
        self.current_key: str | None = None  # the study on screen (its priors are marked)
        self.marks: dict[str, object] = {}  # study key -> Prior of the current study
        self.shown_prior: str | None = None  # the prior beside the current study (priors view)
        self._bold = QFont()
        self._bold.setBold(True)
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
        self.priors = LazyPriors(studies, headers or {})
        self.current_key, self.marks, self.shown_prior = None, {}, None
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

    def set_current(self, study_key: str | None, shown_prior: str | None = None) -> None:
        """The study on screen: its row says 'current', its priors' rows are marked (the one
        shown beside it, shown_prior, with a ▶)."""
        if (study_key, shown_prior) == (self.current_key, self.shown_prior):
            return
        self.shown_prior = shown_prior
        from radview.priors import earlier

        old = set(self.marks) | ({self.current_key} if self.current_key else set())
        self.current_key = study_key
        self.marks = {p.study.key: p for p in earlier(self.priors.get(study_key or "", []))}
        for key in old | set(self.marks) | ({study_key} if study_key else set()):
            node = self.by_study.get(key)
            if node is not None:
                self.dataChanged.emit(self.index_of_node(node, 0), self.index_of_node(node, len(COLUMNS) - 1))

    def priors_of(self, study_key: str) -> list:
        """The study's priors a comparison may use (earlier and same-day: radview.priors.earlier)."""
        from radview.priors import earlier

        return earlier(self.priors.get(study_key, []))

    def _priors_text(self, node: Node):
        key = node.study.key
        n = len(self.priors_of(key))
        if key == self.current_key:
            return f"current · {n}" if n else "current"
        mark = self.marks.get(key)
        if mark is not None:
            days = mark.days
            text = "prior" + (f" · {days} d" if days else " · same day" if days == 0 else "")
            return f"▶ {text}" if key == self.shown_prior else text
        return n or ""

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
        hook = getattr(self, "body_part_changed", None)
        if hook is not None:
            hook(300)  # the browser widens the column to its values (batched)

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
        if role == _FONT:
            return self._bold if node.kind == "study" and node.study.key == self.current_key else None
        if role == _FOREGROUND:
            if node.kind == "study" and node.study.key in self.marks and col in (0, PRIORS_COL):
                return _PRIOR
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
            mark = self.marks.get(tip)
            if mark is not None:
                from radview.priors import describe

                tip += f"\nprior of the current study: {describe(mark)}\n(right-click: open beside it)"
            elif self.priors_of(tip):
                tip += f"\n{len(self.priors_of(tip))} prior(s) of this patient in the folder"
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
        if col == PRIORS_COL:
            return self._priors_text(node) if node.kind == "study" else None
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
        self.setRecursiveFilteringEnabled(True)  # a matching study keeps its patient row
        self.setAutoAcceptChildRows(True)  # and a matching patient (or study) keeps its studies and views
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
    priorRequested = Signal(object)  # a Study to open as the prior beside the current one
    compareRequested = Signal()  # the current study beside its most recent prior

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
        header.setMinimumSectionSize(36)
        header.setResizeContentsPrecision(64)  # fit_columns samples 64 rows: 10,000 studies fit at once
        header.moveSection(header.visualIndex(PRIORS_COL), 1)  # Priors second: visible in a narrow dock
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.timeout.connect(lambda: self.fit_columns((BODY_PART_COL,)))
        self.model.body_part_changed = self._fit_timer.start
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
        self.fit_columns()

    def fit_columns(self, columns=None) -> None:
        """Columns as wide as their header and their (visible) contents, within sane bounds:
        nothing truncated in a normal dock (the Name column takes at most 260 px, others 200)."""
        header = self.tree.header()
        fm = header.fontMetrics()
        for c in (range(len(COLUMNS)) if columns is None else columns):
            want = max(fm.horizontalAdvance(COLUMNS[c]) + 28, self.tree.sizeHintForColumn(c) + 8)
            if c == 0:
                want = max(want, 150)
            elif c == BODY_PART_COL:  # filled later (header or model): room for "chest 0.99" at once
                want = max(want, fm.horizontalAdvance("chest 0.99") + 16)
            elif c == PRIORS_COL:  # "prior · 391 d" once a study is on screen
                want = max(want, fm.horizontalAdvance("prior · 9999 d") + 16)
            want = min(want, 260 if c == 0 else 200)
            if columns is None or want > header.sectionSize(c):
                header.resizeSection(c, want)

    def set_current(self, study_key: str | None, shown_prior: str | None = None) -> None:
        """Mark the study on screen and its priors (the Priors column; ▶ the one beside it)."""
        self.model.set_current(study_key, shown_prior)

    def _context_menu(self, pos) -> None:
        idx = self.tree.indexAt(pos)
        if not idx.isValid():
            return
        menu = self.context_menu(self.proxy.mapToSource(idx).internalPointer())
        if menu is not None:
            menu.exec(self.tree.viewport().mapToGlobal(pos))

    def context_menu(self, node: Node) -> QMenu | None:
        """The study row's menu: open it as the prior beside the current study, or compare the
        current study with its most recent prior (tests call it without exec)."""
        if node.kind not in ("study", "view"):
            return None
        study = node.study
        cur = self.model.current_key
        menu = QMenu(self)
        if study.key != cur:
            act = menu.addAction("Open as prior beside the current study")
            act.setObjectName("open_as_prior")
            mark = self.model.marks.get(study.key)
            if mark is None:
                act.setEnabled(False)
                act.setText("Open as prior (not a prior of the current study)")
            act.triggered.connect(lambda _c=False, st=study: self.priorRequested.emit(st))
        else:
            n = len(self.model.priors_of(cur))
            act = menu.addAction(f"Compare with its most recent prior ({n} in the folder)" if n else
                                 "No prior of this patient in the folder")
            act.setObjectName("compare_prior")
            act.setEnabled(bool(n))
            act.triggered.connect(lambda _c=False: self.compareRequested.emit())
        return menu

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
