"""Queue panel on a real store file: pending corrections, counts, Retrain signal, live updates."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QUndoStack

from radview.gui.undo import SetLabelCommand, push
from radview.gui.widgets.queue_panel import QueuePanel
from radview.store import LabelStore
from radview.types import Box


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite", reader="alice")
    yield s
    s.close()


@pytest.fixture
def make_panel(qtbot):
    def make(**kw):
        panel = QueuePanel(**kw)
        qtbot.addWidget(panel)
        panel.show()
        qtbot.waitExposed(panel)
        return panel
    return make


def test_counts_per_class_and_reader(store, make_panel):
    store.set_label("s1", "abnormal", level="study")
    store.set_label("s2", "abnormal", level="study", reader="bob")
    store.set_label("s3", "normal", level="study", reader="bob", reason="ambiguous")
    store.set_boxes("/i.dcm", [Box(1, 2, 3, 4)])
    undone = store.set_label("s4", "normal", level="study")
    store.undo(undone.id)
    panel = make_panel(store=store, poll_ms=0)
    assert panel.table.rowCount() == 4
    assert panel.counts("class") == {"abnormal": 2, "normal": 1, "boxes: 1": 1}
    assert panel.counts("reader") == {"alice": 2, "bob": 2}
    assert panel.summary.text().startswith("4 pending")
    first = [panel.table.item(0, c).text() for c in range(panel.table.columnCount())]
    assert first[0] == "4" and first[5] == "0 boxes → 1 box"  # newest first
    row_s3 = next(r for r in range(4) if panel.table.item(r, 4).text() == "s3")
    assert panel.table.item(row_s3, 6).text() == "Ambiguous"


def test_retrain_button_and_activation(qtbot, store, make_panel):
    store.set_label("/a.png", "chest")
    panel = make_panel(store=store, poll_ms=0)
    with qtbot.waitSignal(panel.retrainRequested):
        qtbot.mouseClick(panel.retrain, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(panel.itemActivated) as got:
        panel.table.cellDoubleClicked.emit(0, 0)
    assert got.args == ["/a.png", "image"]
    panel.set_retrain_enabled(False)
    assert not panel.retrain.isEnabled()


def test_consumed_corrections_leave_the_queue(store, make_panel):
    a = store.set_label("/a.png", "chest")
    store.set_label("/b.png", "abd")
    panel = make_panel(store=store, poll_ms=0)
    assert panel.table.rowCount() == 2
    store.mark_consumed([a.id], "run-1")
    panel.refresh()
    assert panel.table.rowCount() == 1 and panel.counts("class") == {"abd": 1}


def test_updates_from_undo_stack_and_from_another_program(qtbot, store, make_panel):
    panel = make_panel(store=store, poll_ms=100)
    assert panel.table.rowCount() == 0
    stack = QUndoStack()
    with qtbot.waitSignal(panel.countChanged, timeout=2000):
        push(stack, SetLabelCommand(store, "/a.png", "chest"))
    assert panel.table.rowCount() == 1
    stack.undo()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 0, timeout=2000)
    # another program (the CLI) writes to the same file: the poll picks it up
    other = LabelStore(store.path, reader="cli")
    other.set_label("/b.png", "abd")
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=3000)
    assert panel.counts("reader") == {"cli": 1}
    other.close()


def test_unavailable_store(tmp_path, monkeypatch, make_panel):
    home = tmp_path / "home"
    home.mkdir()
    (home / "labels.sqlite").write_bytes(b"\x00garbage" * 500)
    monkeypatch.setenv("RADVIEW_HOME", str(home))
    panel = make_panel(poll_ms=0)
    assert panel.store is None and "unavailable" in panel.summary.text()
    assert not panel.retrain.isEnabled()
