"""Label panel: the current item's label, one key to relabel and move on, reason, note, reader.

    panel = LabelPanel(store=None, parent=window)   # store None: the default LabelStore()
    panel.set_study(study)          # or panel.set_item(key, level, classes=..., title=...)
    panel.set_prediction(pred)      # model name/version and its call, recorded with corrections

One key sets a label and (if "move on" is ticked) emits advanceRequested(). The keys and
buttons come from the STUDY's label space (radview.spaces.label_keys: N / A for MURA, N / P
and the box tools for RSNA, 1-9 for a class folder's classes), whatever model is selected; a
study without labels offers the label spaces in use (`set_spaces_in_use`). `set_keys({...})`
remaps. Keys are shortcuts of the panel's top-level window (they work wherever the focus is,
whether the Label tab is raised or not, except while typing in a text field); a window action
with the same key is shadowed while the key labels. The reason code goes back to the default
after each correction unless "pin" is ticked.
Every label goes through `undo_stack` (a QUndoStack shared with the canvas box edits:
`panel.undo_stack`), so undo appends an inverse event instead of editing history.
`panel.undo_action` / `panel.redo_action` (Ctrl+Z / Ctrl+Shift+Z, window-wide) can go in an
Edit menu as they are. Box edits (radview.gui.widgets.label_boxes): add_box, replace_box (move,
resize, relabel), delete_box, accept_box, reject_box (the canvas calls them with the image they
are on; each is undoable; recorded at image level, also on a study-level DICOM item).

With a main-window parent that has studyShown/scanFinished signals, the panel follows it by
itself (attach): it shows the study being viewed, records each scan in the store on a
background thread, and "move on" triggers the window's next_study action.

Signals: labelled(Correction), advanceRequested(), itemChanged(key, level), storeError(str),
scanRecorded(error or '').
If the store cannot be opened (read-only, corrupt, full disk) the panel says why and stays
disabled; the rest of the app works without it.
"""
from __future__ import annotations

import json

import threading
from typing import Any, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QFormLayout, QGridLayout,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QPushButton, QTextEdit,
                               QVBoxLayout, QWidget)

from shiboken6 import isValid

from radview.gui import settings as cfg
from radview.gui.widgets.label_keys import _keys_setting, default_keys, saved_keys  # noqa: F401 - default_keys: API
from radview.gui.undo import open_owned_store, SetLabelCommand, push, store_signals
from radview.gui.widgets.label_boxes import BoxEdits
from radview import spaces as label_spaces
from radview.spaces import LabelSpace
from radview.store import REASON_CODES, LabelStore, StoreError
from radview.store.service import snapshots_of

STUDY_LAYOUTS = ("mura", "dicom")  # labelled per study; other layouts per image
# a study of these layouts with no label yet still belongs to their space
LAYOUT_SPACES = {"mura": label_spaces.MURA, "rsna": label_spaces.RSNA}


class LabelPanel(BoxEdits, QWidget):
    boxToolRequested = Signal(str)  # 'accept' | 'delete' (the window acts on the selected box)
    labelled = Signal(object)
    advanceRequested = Signal()
    itemChanged = Signal(str, str)
    storeError = Signal(str)
    scanRecorded = Signal(str)

    def __init__(self, store: LabelStore | None = None, parent: QWidget | None = None, *,
                 classes: Sequence[str] = ("normal", "abnormal"),
                 keys: dict[str, str] | None = None, undo_stack: QUndoStack | None = None,
                 store_problem: str | None = None) -> None:
        """store_problem: the host's store failed (with this reason): do not open another."""
        super().__init__(parent)
        self.store: LabelStore | None = None
        self.store_problem = store_problem or ""
        self._host_store_failed = store is None and store_problem is not None
        self.follow_hub = True  # a host that forwards the store event itself sets False
        self.undo_stack = undo_stack or QUndoStack(self)
        self.key: str | None = None
        self.level = "study"
        self.classes: tuple[str, ...] = tuple(classes)
        self.keys: dict[str, str] = {}
        self.model = self.model_version = ""
        self.model_output: Any = None
        self._fixed_classes = False
        self._shortcuts: list[QShortcut] = []
        self._shadowed: dict[QAction, QKeySequence] = {}
        self.space: LabelSpace | None = None
        self.spaces_in_use: list[LabelSpace] = []
        self._study_views: dict[str, tuple[str, ...]] = {}  # study key -> its image keys (box edits)
        self._model_spaces: dict[str, str | None] = {}      # model -> its label space if it has boxes
        self._build()
        self.set_classes(classes, keys)
        self._open(store)
        self.scanRecorded.connect(self._scan_recorded)
        store_signals().changed.connect(self._on_changed)
        store_signals().failed.connect(self._show_error)
        if parent is not None and hasattr(parent, "studyShown"):
            self.attach(parent)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.title = QLabel("No study")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.current = QLabel("—")
        font = self.current.font()
        font.setPointSize(font.pointSize() + 4)
        font.setBold(True)
        self.current.setFont(font)
        self.source_text = QLabel("")
        self.model_text = QLabel("")
        self.model_text.setWordWrap(True)
        self.buttons_box = QGridLayout()
        self.space_text = QLabel("")
        self.space_text.setObjectName("Muted")
        self.space_text.setWordWrap(True)
        self.space_combo = QComboBox()  # for a study without labels: the spaces in use
        self.space_combo.setToolTip("Label space of this study (it has no labels yet)")
        self.space_combo.setVisible(False)
        self.space_combo.activated.connect(self._space_chosen)
        self.box_tools = QWidget()
        bt = QHBoxLayout(self.box_tools)
        bt.setContentsMargins(0, 0, 0, 0)
        bt.addWidget(QLabel("Boxes: Shift+drag draws"))
        self.accept_box_button = QPushButton("Accept [Return]")
        self.delete_box_button = QPushButton("Delete [Del]")
        self.accept_box_button.clicked.connect(lambda: self.boxToolRequested.emit("accept"))
        self.delete_box_button.clicked.connect(lambda: self.boxToolRequested.emit("delete"))
        bt.addWidget(self.accept_box_button)
        bt.addWidget(self.delete_box_button)
        self.box_tools.setVisible(False)
        self.reason = QComboBox()
        for code, text in REASON_CODES.items():
            self.reason.addItem(text, code)
        self.pin_reason = QCheckBox("pin")
        self.pin_reason.setToolTip("Keep this reason for the next corrections (else it resets)")
        self.note = QLineEdit()
        self.note.setPlaceholderText("note (optional)")
        self.reader = QLineEdit()
        self.reader.editingFinished.connect(self._reader_changed)
        self.exclude = QCheckBox("Exclude from training")
        self.advance = QCheckBox("Move to the next item after labelling")
        self.advance.setChecked(True)
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.redo_button.clicked.connect(self.undo_stack.redo)
        self.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)
        self.undo_action = self.undo_stack.createUndoAction(self, "Undo")
        self.redo_action = self.undo_stack.createRedoAction(self, "Redo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        for action in (self.undo_action, self.redo_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(action)
        self.history = QListWidget()
        self.history.setMaximumHeight(110)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #e0a040")

        form = QFormLayout()
        reason_row = QHBoxLayout()
        reason_row.addWidget(self.reason, 1)
        reason_row.addWidget(self.pin_reason)
        form.addRow("Reason", reason_row)
        form.addRow("Note", self.note)
        form.addRow("Reader", self.reader)
        undo_row = QHBoxLayout()
        undo_row.addWidget(self.undo_button)
        undo_row.addWidget(self.redo_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.current)
        lay.addWidget(self.source_text)
        lay.addWidget(self.model_text)
        lay.addWidget(self.space_text)
        lay.addWidget(self.space_combo)
        lay.addLayout(self.buttons_box)
        lay.addWidget(self.box_tools)
        lay.addLayout(form)
        lay.addWidget(self.exclude)
        lay.addWidget(self.advance)
        lay.addLayout(undo_row)
        lay.addWidget(QLabel("History"))
        lay.addWidget(self.history)
        lay.addWidget(self.message)
        lay.addStretch(1)

    def _open(self, store: LabelStore | None) -> None:
        if store is None and not self._host_store_failed:
            store, problem = open_owned_store(self)
            self.store_problem = problem or ""
        self.store = store
        if store is not None:
            saved = str(cfg.get("label_panel/reader", "") or "")
            if saved:
                store.reader = saved
            self.reader.setText(store.reader)
            self.store_problem = ""
        self._update_enabled()
        self.refresh()

    def set_store(self, store: LabelStore | None) -> None:
        self._open(store) if store is not None else self._close_store()

    def _close_store(self) -> None:
        self.store = None
        self._update_enabled()

    def attach(self, window: Any) -> None:
        """Follow a main window: its studyShown(Study) selects the item, its scanFinished
        (ScanResult) is recorded in the store (on a background thread), and advanceRequested
        triggers its 'next_study' action (looked up when needed)."""
        window.studyShown.connect(self.set_study)
        if hasattr(window, "scanFinished"):
            window.scanFinished.connect(self.record_scan)
            window.scanFinished.connect(lambda r: self.set_spaces_in_use(label_spaces.spaces_in(r)))
        self.set_keys(self.keys)  # the shortcuts now belong to the window

        def advance() -> None:
            action = getattr(window, "actions", {}).get("next_study")
            if action is not None:
                action.trigger()
        self.advanceRequested.connect(advance)

    def record_scan(self, result: Any) -> None:
        """Remember a scan's items and source labels in the store, off the GUI thread
        (10,000 studies take ~0.6 s); scanRecorded(error or '') follows."""
        store = self.store
        if store is None or result is None:
            return

        def work() -> None:
            try:
                store.record_scan(result)
                error = ""
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                error = str(exc)
            try:
                self.scanRecorded.emit(error)
            except RuntimeError:  # the panel was closed meanwhile
                pass
        threading.Thread(target=work, name="radview-record-scan", daemon=True).start()

    def _scan_recorded(self, error: str) -> None:
        if not (isValid(self) and isValid(self.current)):
            return
        if error:
            self._show_error(error)
        self.refresh()

    # ------------------------------------------------------------------ configuration
    def set_classes(self, classes: Sequence[str], keys: dict[str, str] | None = None,
                    fixed: bool | None = None) -> None:
        """The classes offered (buttons and keys). fixed=True keeps them when set_study runs."""
        if fixed is not None:
            self._fixed_classes = fixed
        if tuple(classes) == self.classes and keys is None and self.keys:
            return
        self.classes = tuple(classes)
        self.set_keys(keys or saved_keys(self.classes) or default_keys(self.classes))

    def set_keys(self, keys: dict[str, str], save: bool = False) -> None:
        """{key sequence text: class name}, e.g. {'N': 'normal', 'A': 'abnormal'}. save=True
        remembers them in the settings (per set of classes) for the next session."""
        unknown = set(keys.values()) - set(self.classes)
        if unknown:
            raise ValueError(f"keys name unknown classes {sorted(unknown)} (classes: {self.classes})")
        self.keys = {k.upper(): v for k, v in keys.items()}
        if save:
            cfg.put(_keys_setting(self.classes), json.dumps(self.keys))
        for sc in self._shortcuts:
            sc.setEnabled(False)
            sc.deleteLater()
        self._shortcuts = []
        self._unshadow()
        host = self.window()  # the top-level window: a shortcut of a hidden (tabbed) panel is dead
        for key, cls in self.keys.items():
            seq = QKeySequence(key)
            self._shadow(host, seq)
            sc = QShortcut(seq, host)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(lambda c=cls: self._shortcut(c))
            self._shortcuts.append(sc)
        while self.buttons_box.count():
            w = self.buttons_box.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.class_buttons: dict[str, QPushButton] = {}
        by_class = {v: k for k, v in self.keys.items()}
        for i, cls in enumerate(self.classes):
            hint = by_class.get(cls)
            b = QPushButton(f"{cls}  [{hint}]" if hint else cls)
            b.clicked.connect(lambda _=False, c=cls: self.apply_label(c))
            self.buttons_box.addWidget(b, i // 2, i % 2)
            self.class_buttons[cls] = b
        self._update_enabled()

    def _shortcut(self, cls: str) -> None:
        if isinstance(QApplication.focusWidget(), (QLineEdit, QTextEdit)):
            return  # typing a note or a filter never labels
        if isValid(self) and self.isEnabled():  # disabled: e.g. hidden for a blinded read
            self.apply_label(cls)

    def _shadow(self, host: QWidget, seq: QKeySequence) -> None:
        """A window action with the same key would make both ambiguous (neither fires): the
        label key wins while it is installed; the action gets its key back afterwards."""
        for act in host.findChildren(QAction):
            if act.shortcut() == seq and act not in self._shadowed:
                self._shadowed[act] = act.shortcut()
                act.setShortcut(QKeySequence())

    def _unshadow(self) -> None:
        for act, seq in self._shadowed.items():
            if isValid(act):
                act.setShortcut(seq)
        self._shadowed = {}

    # ------------------------------------------------------------------ label spaces
    def set_spaces_in_use(self, spaces: Sequence[LabelSpace]) -> None:
        """The label spaces of the open folder (offered for a study without labels)."""
        self.spaces_in_use = list(spaces)

    def set_space(self, space: LabelSpace | None, chosen: bool = False) -> None:
        """Keys and buttons of this label space (N/A for MURA, N/P + box tools for RSNA, 1-9
        for class spaces)."""
        self.space = space
        self.box_tools.setVisible(bool(space is not None and space.boxes))
        if space is None:
            self.space_text.setText("")
            return
        keys = {k.key: k.value for k in label_spaces.label_keys(space)}
        if tuple(space.classes) != self.classes or keys != self.keys:
            self.classes = tuple(space.classes)
            self.set_keys(saved_keys(self.classes) or keys)
        self.space_text.setText(f"Label space: {space.text}" + (" (chosen)" if chosen else ""))

    def _space_chosen(self, index: int) -> None:
        if 0 <= index < len(self.spaces_in_use):
            self.set_space(self.spaces_in_use[index], chosen=True)

    def _offer_spaces(self) -> None:
        """A study without labels: choose among the spaces in use (the first by default)."""
        self.space_combo.blockSignals(True)
        self.space_combo.clear()
        for sp in self.spaces_in_use:
            self.space_combo.addItem(sp.text)
        self.space_combo.blockSignals(False)
        self.space_combo.setVisible(bool(self.spaces_in_use))
        if self.spaces_in_use:
            self.space_combo.setCurrentIndex(0)
            self.set_space(self.spaces_in_use[0], chosen=True)
        else:
            self.set_space(None)

    @staticmethod
    def study_space(study: Any) -> LabelSpace | None:
        """The study's label space: its own, else its views' labels' (image-level sources)."""
        space = label_spaces.space_of(study)
        if space is None:
            for v in getattr(study, "views", ()):
                space = label_spaces.space_of(v.label) if v.label is not None else None
                if space is not None:
                    break
        return space

    # ------------------------------------------------------------------ item
    def set_study(self, study: Any) -> None:
        """Select a radview.types.Study: study level for MURA/DICOM studies, else its image.
        The keys follow the study's label space (never the model's classes)."""
        if study is None:
            self.set_item(None)
            return
        layout = getattr(study, "layout", "flat")
        self._study_views = {study.key: tuple(v.ref.key for v in study.views)}  # box edits
        space = self.study_space(study)
        self.space_combo.setVisible(False)
        if self._fixed_classes:
            pass
        elif space is not None:
            self.set_space(space)
        elif layout in LAYOUT_SPACES:
            self.set_space(LAYOUT_SPACES[layout])
        else:
            self._offer_spaces()
        if layout in STUDY_LAYOUTS or len(study.views) != 1:
            key, level, label = study.key, "study", study.label
            title = f"Study {study.key}"
        else:
            view = study.views[0]
            key, level, label = view.ref.key, "image", view.label or study.label
            title = view.ref.path
        self._ensure_source(key, level, label)
        self.set_item(key, level, title=title)

    def _ensure_source(self, key: str, level: str, label: Any) -> None:
        """The folder's label of this item, if the store does not know one yet."""
        if self.store is None or label is None:
            return
        try:
            # the snapshot set_item's refresh reads next (one read for both; cached)
            if snapshots_of(self.store).item(key, level).state.source is None:
                from radview.store.labels import BOX_SOURCES
                self.store.set_source_labels({key: label}, level, replace=False,
                                             boxes_known=label.source in BOX_SOURCES or None)
        except StoreError as exc:
            self._show_error(str(exc))

    def set_item(self, key: str | None, level: str = "image", *,
                 classes: Sequence[str] | None = None, title: str | None = None) -> None:
        self.key, self.level = key, level
        if classes is not None:
            self.set_classes(classes)
        self.title.setText(title or (key or "No study"))
        self.model_output = None
        self.model_text.setText(self._model_line())
        self.refresh()
        if key is not None:
            self.itemChanged.emit(key, level)

    def set_prediction(self, pred: Any) -> None:
        """A radview.types.Prediction or StudyPrediction now on screen (or None)."""
        if pred is None:
            self.model = self.model_version = ""
            self.model_output = None
        else:
            self.model, self.model_version = pred.model, pred.model_version
            self.model_output = pred.predicted  # recorded with the correction; keys unchanged
        self.model_text.setText(self._model_line())

    def _model_line(self) -> str:
        if not self.model:
            return ""
        call = f": {self.model_output}" if self.model_output else ""
        return f"Model {self.model} {self.model_version}{call}"

    # ------------------------------------------------------------------ actions
    def apply_label(self, value: str) -> bool:
        """Record value for the current item (undoable). True if it was written."""
        if self.store is None or self.key is None:
            return False
        self._reader_changed()
        cmd = SetLabelCommand(
            self.store, self.key, value, level=self.level,
            reason=self.reason.currentData(), note=self.note.text().strip(),
            model=self.model, model_version=self.model_version,
            model_output=self.model_output if isinstance(self.model_output, str) else None,
            exclude_from_training=self.exclude.isChecked(),
            space=self.space.name if self.space is not None else None,
            seen=getattr(self, "_seen", None))  # another reader's unseen event: a conflict (issue 16)
        try:
            event = push(self.undo_stack, cmd)
        except (StoreError, ValueError) as exc:
            self._show_error(str(exc))
            return False
        self.note.clear()
        self._reset_reason()
        self.exclude.setChecked(False)
        self.message.setText("")
        self.labelled.emit(event)
        if self.advance.isChecked():
            self.advanceRequested.emit()
        return True

    def _reset_reason(self) -> None:
        if not self.pin_reason.isChecked():
            self.reason.setCurrentIndex(0)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - when no shortcut took the key
        text = QKeySequence(event.keyCombination()).toString().upper()
        cls = self.keys.get(text)
        if cls is not None and not isinstance(self.focusWidget(), QLineEdit):
            self.apply_label(cls)
            event.accept()
            return
        super().keyPressEvent(event)

    def _reader_changed(self) -> None:
        name = self.reader.text().strip()
        if self.store is not None and name and name != self.store.reader:
            self.store.reader = name
            cfg.put("label_panel/reader", name)  # remembered for the next session

    # ------------------------------------------------------------------ display
    def refresh(self) -> None:
        if self.store is None or self.key is None:
            self.current.setText("—")
            self.source_text.setText(self.store_problem and "Label store unavailable")
            self.history.clear()
            return
        try:  # state and history in one read transaction, cached until the store changes
            snap = snapshots_of(self.store).item(self.key, self.level)
            state, events = snap.state, list(snap.history)
        except StoreError as exc:
            self._show_error(str(exc))
            return
        label, self._seen = state.label, state.newest_event_id  # what this reader has seen
        value = label.value if label is not None and label.value is not None else "unlabelled"
        if label is not None and label.boxes:
            value += f"  ({len(label.boxes)} box{'es' if len(label.boxes) > 1 else ''})"
        self.current.setText(value)
        if state.corrected:
            who = f" by {state.last_reader}" if state.last_reader else ""
            src = f"corrected{who}; was {state.source.value if state.source else 'unlabelled'}"
        else:
            src = f"from {label.source}" if label is not None and label.source else ""
        if state.excluded:
            src += " · excluded from training"
        self.source_text.setText(src)
        self.history.clear()
        for e in reversed(events[-20:]):
            what = ("undo " if e.inverse_of else "") + (
                f"{e.old_value} → {e.new_value}" if e.kind == "label"
                else f"boxes {len(e.old_value)} → {len(e.new_value)}")
            self.history.addItem(f"#{e.id} {e.time[:19].replace('T', ' ')} {e.reader}: {what}"
                                 f" ({e.reason})" + (f" ⚠ conflict: had not seen #{e.conflict_with}"
                                                     if e.conflict_with is not None else ""))

    def _on_changed(self, key: str, level: str) -> None:
        if not self.follow_hub:
            return
        if isValid(self) and isValid(self.current) and key == self.key:  # the hub outlives panels
            self.refresh()

    def _show_error(self, text: str) -> None:
        if not (isValid(self) and isValid(self.message)):
            return
        self.message.setText(text)
        self.storeError.emit(text)

    def _update_enabled(self) -> None:
        on = self.store is not None
        for b in getattr(self, "class_buttons", {}).values():
            b.setEnabled(on)
        for sc in self._shortcuts:
            sc.setEnabled(on)
        for w in (self.reason, self.note, self.reader, self.exclude):
            w.setEnabled(on)
        if not on:  # only a real failure says so, with its reason and file
            self.message.setText(f"Labels cannot be saved: {self.store_problem}"
                                 if self.store_problem else "")
