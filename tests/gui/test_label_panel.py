"""Label panel and undo commands on a real store file, real widgets (offscreen)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QWidget

from radview.gui.undo import (AcceptBoxCommand, AddBoxCommand, DeleteBoxCommand,
                              RejectBoxCommand, RelabelBoxCommand, ReplaceBoxCommand,
                              SetLabelCommand, push, store_signals)
from radview.gui.widgets.label_panel import LabelPanel, default_keys
from radview.store import LabelStore, StoreError
from radview.types import Box, ImageRef, Label, Prediction, Study, View


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite", reader="alice")
    yield s
    s.close()


@pytest.fixture
def make_panel(qtbot):
    def make(**kw):
        panel = LabelPanel(**kw)
        qtbot.addWidget(panel)
        panel.show()
        qtbot.waitExposed(panel)
        return panel
    return make


MURA = Study("valid/XR_WRIST/patient1/study1_positive", patient="patient1", study_type="XR_WRIST",
             label=Label("abnormal", source="mura-folder"), layout="mura",
             views=(View(ImageRef("/m/image1.png")), View(ImageRef("/m/image2.png"))))
MURA2 = Study("valid/XR_HAND/patient2/study1_negative", layout="mura",
              label=Label("normal", source="mura-folder"), views=(View(ImageRef("/m/h.png")),))


def test_default_keys():
    assert default_keys(["normal", "abnormal"]) == {"N": "normal", "A": "abnormal"}
    assert default_keys(["pneumonia", "normal"]) == {"N": "normal", "A": "pneumonia"}
    assert default_keys(["chest", "abd", "hand"]) == {"1": "chest", "2": "abd", "3": "hand"}


def test_one_key_labels_and_moves_on(qtbot, store, make_panel):
    store.set_source_labels({MURA.key: MURA.label}, level="study")
    panel = make_panel(store=store)
    panel.set_study(MURA)
    assert panel.level == "study" and panel.current.text() == "abnormal"
    assert "mura-folder" in panel.source_text.text()
    panel.set_prediction(Prediction(ImageRef("/m/image1.png"), "mura-lite", "3",
                                    ("normal", "abnormal"), (0.2, 0.8)))
    panel.reason.setCurrentIndex(panel.reason.findData("degenerative_change"))
    panel.note.setText("old healed fracture")
    panel.reader.setText("dr_bob")
    panel.reader.editingFinished.emit()
    panel.setFocus()
    with qtbot.waitSignal(panel.advanceRequested), qtbot.waitSignal(panel.labelled) as got:
        qtbot.keyClick(panel, Qt.Key.Key_N)
    event = got.args[0]
    assert (event.key, event.level, event.old_value, event.new_value) == (MURA.key, "study",
                                                                         "abnormal", "normal")
    assert (event.reason, event.note, event.reader) == ("degenerative_change", "old healed fracture",
                                                        "dr_bob")
    assert (event.model, event.model_version, event.model_output) == ("mura-lite", "3", "abnormal")
    assert store.label(MURA.key, "study").value == "normal"
    assert panel.current.text() == "normal" and "corrected by dr_bob" in panel.source_text.text()
    assert panel.note.text() == ""  # ready for the next item
    assert panel.history.count() == 1
    again = LabelPanel(store=store)  # the reader is remembered (settings under RADVIEW_HOME)
    assert again.reader.text() == "dr_bob"
    again.deleteLater()


def test_undo_redo_append_inverse_events(qtbot, store, make_panel):
    store.set_source_labels({MURA.key: MURA.label}, level="study")
    panel = make_panel(store=store)
    panel.set_study(MURA)
    panel.advance.setChecked(False)
    assert panel.apply_label("normal")
    assert panel.undo_button.isEnabled()
    panel.undo_stack.undo()
    assert store.label(MURA.key, "study").value == "abnormal"
    assert panel.current.text() == "abnormal"
    panel.undo_stack.redo()
    assert store.label(MURA.key, "study").value == "normal"
    panel.undo_stack.undo()
    assert store.label(MURA.key, "study").value == "abnormal"
    history = store.history(MURA.key, "study")
    assert len(history) == 4 and [e.inverse_of is not None for e in history] == [False, True,
                                                                                  True, True]
    assert store.pending() == []


def test_multiclass_digit_keys_and_typing_in_note_does_not_label(qtbot, store, make_panel):
    panel = make_panel(store=store, classes=("chest", "abd", "hand"))
    assert panel.keys == {"1": "chest", "2": "abd", "3": "hand"}
    flat = Study("/c/x.png", layout="class", views=(View(ImageRef("/c/x.png")),))
    panel.set_study(flat)
    assert panel.level == "image" and panel.key == "/c/x.png"
    panel.note.setFocus()
    qtbot.keyClicks(panel.note, "12 ribs")
    assert panel.note.text() == "12 ribs" and store.history() == []
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_2)
    assert store.label("/c/x.png").value == "abd"
    assert store.history()[0].note == "12 ribs"
    panel.set_keys({"C": "chest"})
    qtbot.keyClick(panel, Qt.Key.Key_C)
    assert store.label("/c/x.png").value == "chest"
    with pytest.raises(ValueError):
        panel.set_keys({"X": "spine"})


def test_shortcut_works_from_another_widget_of_the_window(qtbot, store):
    window = QWidget()
    qtbot.addWidget(window)
    other = QWidget(window)
    panel = LabelPanel(store=store, parent=window)
    panel.set_item("/img.png", "image", classes=("normal", "abnormal"))
    window.show()
    with qtbot.waitActive(window):
        window.activateWindow()
    other.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    other.setFocus()
    qtbot.keyClick(other, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: store.label("/img.png") is not None)
    assert store.label("/img.png").value == "abnormal"


def test_exclude_flag_and_rsna_classes(store, make_panel):
    panel = make_panel(store=store)
    rsna = Study("1.2.3", layout="rsna", views=(View(ImageRef("/r/p1.dcm")),))
    panel.set_study(rsna)
    assert panel.classes == ("normal", "pneumonia") and panel.level == "image"
    panel.exclude.setChecked(True)
    panel.apply_label("pneumonia")
    assert store.excluded_keys("image") == {"/r/p1.dcm"}
    assert not panel.exclude.isChecked()
    panel.set_study(MURA2)
    assert panel.classes == ("normal", "abnormal")


def test_unavailable_store_disables_panel(qtbot, tmp_path, monkeypatch, make_panel):
    bad = tmp_path / "home"
    bad.mkdir()
    (bad / "labels.sqlite").write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("RADVIEW_HOME", str(bad))
    panel = make_panel()
    assert panel.store is None
    assert "not a SQLite database" in panel.message.text()
    assert not panel.class_buttons["normal"].isEnabled()
    panel.set_item("/x.png")
    assert panel.apply_label("normal") is False


def test_store_error_on_write_is_shown_and_stack_unchanged(qtbot, tmp_path, make_panel):
    db = tmp_path / "small.sqlite"
    LabelStore(db).close()
    import sqlite3
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    s = LabelStore(db, pragmas={"max_page_count": pages + 2})
    panel = make_panel(store=s)
    panel.set_item("/x.png")
    panel.advance.setChecked(False)
    errors = []
    panel.storeError.connect(errors.append)
    ok = True
    for _ in range(200):
        panel.note.setText("n" * 900)
        ok = panel.apply_label("abnormal")
        if not ok:
            break
    assert not ok and errors and "disk is full" in errors[-1]
    assert panel.undo_stack.count() == len(s.history())
    s.close()


# ---------------------------------------------------------------------------- box commands


def test_box_commands_undo_redo(qtbot, store):
    key = "/r/p1.dcm"
    store.set_source_labels({key: Label("pneumonia", (Box(10, 10, 50, 50),), "rsna-csv")},
                            boxes_known=True)
    stack = QUndoStack()
    changed = []
    store_signals().changed.connect(lambda k, lv: changed.append((k, lv)))
    b0 = Box(10, 10, 50, 50)
    b1 = Box(200, 200, 40, 30)
    push(stack, AddBoxCommand(store, key, b1))
    moved = Box(210, 220, 40, 30)
    push(stack, ReplaceBoxCommand(store, key, b1, moved))
    resized = Box(210, 220, 80, 90)
    push(stack, ReplaceBoxCommand(store, key, moved, resized))
    push(stack, RelabelBoxCommand(store, key, resized, "nodule"))
    push(stack, DeleteBoxCommand(store, key, b0))
    pred = Box(400, 400, 20, 20, "opacity", 0.91)
    push(stack, AcceptBoxCommand(store, key, pred, model="det", model_version="2"))
    rejected = Box(1, 1, 5, 5, "opacity", 0.55)
    push(stack, RejectBoxCommand(store, key, rejected, model="det", model_version="2"))
    final = (Box(210, 220, 80, 90, "nodule"), Box(400, 400, 20, 20, "opacity"))
    assert store.label(key).boxes == final
    texts = [stack.text(i) for i in range(stack.count())]
    assert texts == ["Add box opacity", "Move box", "Resize box", "Relabel box nodule",
                     "Delete box", "Accept predicted box", "Reject predicted box"]
    last = store.history(key)[-1]
    assert last.model_output == (rejected,) and last.new_value == last.old_value
    accept = store.history(key)[-2]
    assert accept.model_output == (pred,) and accept.new_value[-1].score is None
    assert changed and changed[-1] == (key, "image")
    for _ in range(stack.count()):
        stack.undo()
    assert store.label(key).boxes == (b0,) and not store.state(key).corrected
    for _ in range(stack.count()):
        stack.redo()
    assert store.label(key).boxes == final
    n = len(store.history(key))
    assert n == 7 + 7 + 7  # every step appended, nothing rewritten
    with pytest.raises(ValueError):
        push(stack, DeleteBoxCommand(store, key, Box(9, 9, 9, 9)))
    assert stack.count() == 7


def test_push_failure_leaves_stack_unchanged(store, tmp_path):
    stack = QUndoStack()
    ro = LabelStore(store.path, readonly=True)
    with pytest.raises(StoreError):
        push(stack, SetLabelCommand(ro, "/x.png", "normal"))
    assert stack.count() == 0
    ro.close()


# ---------------------------------------------------------------------------- in the main window


def test_in_main_window_one_key_labels_and_moves_to_next_study(qtbot, make_window, open_and_wait,
                                                               mura_folder, radview_home):
    w = make_window(start=False)
    panel = w.extra_panels.get("labelpanel")
    assert panel is not None, "the main window docks the label panel"
    result = open_and_wait(w, mura_folder)
    qtbot.waitUntil(lambda: panel.key is not None, timeout=10000)
    first = w.viewer.study
    assert panel.key == first.key and panel.level == "study"
    assert panel.current.text() == first.label.value  # the folder's label, from the store
    with qtbot.waitActive(w):
        w.activateWindow()
    flip = "normal" if first.label.value == "abnormal" else "abnormal"
    key = {"normal": Qt.Key.Key_N, "abnormal": Qt.Key.Key_A}[flip]
    qtbot.keyClick(w.viewer, key)
    qtbot.waitUntil(lambda: w.viewer.study.key != first.key, timeout=5000)
    with LabelStore() as store:  # the default store under RADVIEW_HOME, as the CLI sees it
        assert store.path.parent == radview_home
        assert store.label(first.key, "study") == Label(flip, source="correction", space="mura")
        qtbot.waitUntil(lambda: len(store.labels("study")) == len(result.studies), timeout=5000)
    queue = w.extra_panels.get("queuepanel")
    assert queue is not None
    if queue is not None:
        qtbot.waitUntil(lambda: queue.table.rowCount() == 1, timeout=5000)
        assert queue.counts("class") == {flip: 1}
        queue.table.cellDoubleClicked.emit(0, 0)  # opens the corrected study in the viewer
        qtbot.waitUntil(lambda: w.viewer.study.key == first.key, timeout=5000)


def test_panel_box_methods_and_ctrl_z(qtbot, store, make_panel):
    key = "/r/p9.dcm"
    store.set_source_labels({key: Label("normal", (), "rsna-csv")}, boxes_known=True)
    panel = make_panel(store=store)
    panel.set_item(key, "image", classes=("normal", "pneumonia"))
    panel.set_prediction(Prediction(ImageRef(key), "det", "4", ("normal", "pneumonia"), (0.1, 0.9),
                                    boxes=(Box(5, 5, 10, 10, "opacity", 0.9),)))
    assert panel.accept_box(Box(5, 5, 10, 10, "opacity", 0.9))
    assert panel.replace_box(Box(5, 5, 10, 10), Box(6, 6, 12, 12))
    assert not panel.delete_box(Box(1, 1, 1, 1))  # not there: reported, nothing written
    assert "not among" in panel.message.text()
    assert store.label(key).boxes == (Box(6, 6, 12, 12),)
    assert store.history(key)[0].model == "det"
    assert panel.current.text().startswith("normal") and "1 box" in panel.current.text()
    with qtbot.waitActive(panel):
        panel.activateWindow()
    qtbot.keyClick(panel, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert store.label(key).boxes == (Box(5, 5, 10, 10),)
    qtbot.keyClick(panel, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert store.label(key).boxes == ()
    panel.set_item("study-1", "study")
    assert not panel.add_box(Box(1, 1, 2, 2))  # boxes belong to images


def test_saved_label_keys_come_back_in_a_new_panel(qtbot, store, make_panel):
    classes = ("chest", "abd")
    first = make_panel(store=store, classes=classes)
    assert first.keys == {"1": "chest", "2": "abd"}
    first.set_keys({"C": "chest", "B": "abd"}, save=True)
    second = make_panel(store=store, classes=classes)
    assert second.keys == {"C": "chest", "B": "abd"}
    flat = Study("/c/y.png", layout="class", views=(View(ImageRef("/c/y.png")),))
    second.set_study(flat)
    second.setFocus()
    qtbot.keyClick(second, Qt.Key.Key_B)
    assert store.label("/c/y.png").value == "abd"
    # other class sets keep their defaults
    assert make_panel(store=store, classes=("normal", "abnormal")).keys == {"N": "normal", "A": "abnormal"}
