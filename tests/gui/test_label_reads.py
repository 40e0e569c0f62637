"""Store reads per label key press, counted on the real SQLite store (sqlite3 trace callback on
the GUI thread's connection): the item's state and history come in one read transaction
(radview.store.service.read_item), cached until the store changes (snapshots_of)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from radview.gui.widgets.label_panel import LabelPanel
from radview.store import LabelStore
from radview.store.service import read_item, snapshots_of
from radview.types import ImageRef, Label, Study, View

MURA = Study("valid/XR_WRIST/patient1/study1_positive", patient="patient1", study_type="XR_WRIST",
             label=Label("abnormal", source="mura-folder"), layout="mura",
             views=(View(ImageRef("/m/image1.png")), View(ImageRef("/m/image2.png"))))


class Trace:
    """The SQL statements of one connection (what sqlite3 runs, in order)."""

    def __init__(self, conn):
        self.conn, self.sql = conn, []
        conn.set_trace_callback(self.sql.append)

    def close(self):
        self.conn.set_trace_callback(None)

    def clear(self):
        self.sql.clear()

    def reads(self) -> list[list[str]]:
        """The read transactions: the statements of each BEGIN ... COMMIT (writes excluded)."""
        out, cur = [], None
        for s in self.sql:
            head = s.strip().upper()
            if head == "BEGIN":
                cur = []
            elif head.startswith("BEGIN"):  # BEGIN IMMEDIATE: a write
                cur = None
            elif head == "COMMIT":
                if cur is not None:
                    out.append(cur)
                cur = None
            elif cur is not None:
                cur.append(s)
        return out

    def writes(self) -> int:
        return sum(1 for s in self.sql if s.strip().upper().startswith("BEGIN IMMEDIATE"))


@pytest.fixture
def store(sqlite_store):
    """The real SQLite store (tests/conftest.py): the trace callback is sqlite3's."""
    return sqlite_store


def test_read_item_is_state_and_history_in_one_transaction(store):
    store.set_source_labels({MURA.key: MURA.label}, "study")
    store.set_label(MURA.key, "normal", level="study", reason="wrong_label")
    t = Trace(store._db.conn())
    snap = read_item(store, MURA.key, "study")
    t.close()
    assert len(t.reads()) == 1
    assert snap.state == store.state(MURA.key, "study")
    assert list(snap.history) == store.history(MURA.key, "study")
    assert snap.state.label.value == "normal" and snap.state.source.value == "abnormal"


def test_label_key_press_reads_the_item_once(qtbot, store):
    panel = LabelPanel(store=store)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    panel.advance.setChecked(False)
    panel.set_study(MURA)
    assert panel.current.text() == "abnormal"
    t = Trace(store._db.conn())
    try:
        qtbot.keyClick(panel, Qt.Key.Key_N)  # MURA: N = normal
        assert t.writes() == 1
        reads = t.reads()
        assert panel.current.text() == "normal" and panel.history.count() == 1
        # before: state() and history() were two read transactions per key press
        assert len(reads) == 1, reads
        t.clear()
        panel.refresh()  # nothing changed: served from the cache, no read transaction
        assert t.reads() == [] and panel.current.text() == "normal"
    finally:
        t.close()
    # another program (here: another connection) writes: the cache must not hide it
    other = LabelStore(store.path, reader="bob")
    other.set_label(MURA.key, "abnormal", level="study", reason="wrong_label")
    other.close()
    panel.refresh()
    assert panel.current.text() == "abnormal" and panel.history.count() == 2


def test_snapshot_cache_drops_on_this_connections_writes(store):
    snaps = snapshots_of(store)
    assert snaps.item(MURA.key, "study").state.label is None
    store.set_label(MURA.key, "normal", level="study", reason="wrong_label")  # same thread, no event
    assert snaps.item(MURA.key, "study").state.label.value == "normal"
    hits = snaps.hits
    assert snaps.item(MURA.key, "study").state.label.value == "normal" and snaps.hits == hits + 1


def test_key_press_in_the_window_reads_the_item_once(qtbot, make_window, open_and_wait, mura_folder):
    w = make_window()
    open_and_wait(w, mura_folder)
    panel = w.extra_panels["labelpanel"]
    panel.advance.setChecked(False)
    qtbot.waitUntil(lambda: panel.key is not None)
    qtbot.wait(50)
    key = panel.key
    t = Trace(w.store._db.conn())
    try:
        assert panel.apply_label("normal")
        reads = t.reads()
    finally:
        t.close()
    assert t.writes() == 1 and panel.current.text() == "normal"
    of_item = [r for r in reads if any(key in s for s in r)]
    # the window's store event, the label panel: one read of the item (was 3: state, state,
    # history); the queue panel: one (was 3: last id, pending, summary)
    assert len(of_item) == 1, reads
    assert len(reads) <= 2, reads
