"""Label store, issue 10/11: label spaces on corrections, one store per process, incremental
events, the queue in SQL, undo/redo in the store, connections, keys that survive a moved folder
and the migration of a store written by schema v1."""
from __future__ import annotations

import gc
import json
import shutil
import sqlite3
import threading

import pytest

from postgres import pg_server, store_target  # noqa: F401
from radview import spaces
from radview.store import LabelStore, close_stores, derive, item_id, open_store, schema
from radview.types import Box, ImageRef, Label, ScanResult, Study, View


@pytest.fixture
def store(store_target):
    """The same tests on SQLite and on PostgreSQL (tests/postgres.py)."""
    s = LabelStore(store_target, reader="alice")
    yield s
    s.close()


def _mura(key="XR_WRIST/p1/study1_positive"):
    lab = Label("abnormal", source="mura-folder", space="mura")
    return Study(key=key, label=lab, space="mura", layout="mura",
                 views=(View(ImageRef(f"/nowhere/{key}/image1.png"), label=None),))


def _png(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([seed]) * (1000 + seed))


def _class_scan(root, classes=("abd", "chest")) -> ScanResult:
    """A class-folder scan result as io makes it (real files, spaces assigned by io)."""
    from radview.io.labels import assign_spaces

    studies = []
    for p in sorted(root.rglob("*.png")):
        lab = Label(p.parent.name, source="class-folder")
        studies.append(Study(key=str(p), label=lab, layout="class",
                             views=(View(ImageRef(str(p)), label=lab),)))
    return ScanResult(str(root), tuple(assign_spaces(studies)))


def test_open_store_is_one_object_per_file_and_reopens_after_close(tmp_path):
    a = open_store(tmp_path / "s.sqlite")
    assert open_store(tmp_path / "s.sqlite") is a
    assert open_store(tmp_path / "s.sqlite", readonly=True) is a  # writable serves readers
    assert open_store(tmp_path / "other.sqlite") is not a
    a.close()
    b = open_store(tmp_path / "s.sqlite")
    assert b is not a and not b.closed
    close_stores()
    assert b.closed


def test_corrections_carry_the_items_label_space_and_refuse_foreign_values(store):
    store.record_scan(ScanResult("/nowhere", (_mura(),)))
    key = "XR_WRIST/p1/study1_positive"
    c = store.set_label(key, "normal", level="study")
    assert c.space == "mura"
    assert store.label(key, "study") == Label("normal", source="correction", space="mura")
    with pytest.raises(ValueError, match="not in its label space mura"):
        store.set_label(key, "abd", level="study")  # the issue: "abnormal -> abd"
    u = store.undo(c.id)
    assert u.space == "mura"
    # an explicit space wins; an unknown one is taken as given
    assert store.set_label("/x/a.png", "chest", space="folder:x").space == "folder:x"
    assert "mura" in store.space_names() and "folder:x" in store.space_names()


def test_spaces_recorded_by_a_scan_are_known_to_another_store(tmp_path, store_target):
    root = tmp_path / "openi"
    for i, cls in enumerate(("chest", "abd")):
        _png(root / "train" / cls / f"{i}.png", i)
    result = _class_scan(root)
    assert {s.space for s in result.studies} == {"folder:openi"}
    with LabelStore(store_target) as s:
        s.record_scan(result)
        assert s.folders() == [str(root)]
    spaces._registry.pop("folder:openi", None)  # as in a fresh process
    with LabelStore(store_target) as s:
        assert spaces.get_space("folder:openi").classes == ("abd", "chest")
        assert [x.name for x in s.spaces()] == ["folder:openi"]


def test_events_since_follows_appends_from_another_connection(store, tmp_path):
    start = store.last_event_id()
    other = LabelStore(store.path, reader="bob")
    a = other.set_label("/x/1.png", "chest", space="folder:x")
    b = other.set_label("/x/2.png", "abd", space="csv:y")
    other.close()
    assert [e.id for e in store.events_since(start)] == [a.id, b.id]
    assert [e.id for e in store.events_since(a.id)] == [b.id]
    assert [e.id for e in store.events_since(start, space="csv:y")] == [b.id]
    assert store.events_since(b.id) == []


def test_queue_in_sql_equals_the_python_rule_and_filters_by_space(store):
    k1, k2, k3 = "/d/1.png", "/d/2.png", "/d/3.png"
    e1 = store.set_label(k1, "chest", space="folder:d")
    e2 = store.set_label(k2, "normal", space="rsna-pneumonia")
    e3 = store.set_boxes(k2, [Box(1, 2, 3, 4)], space="rsna-pneumonia")
    store.set_label(k3, "abd", space="folder:d")
    store.mark_consumed([e1.id, e2.id], "run-1")
    u1 = store.undo(e1.id)       # undo of a consumed event: pending
    u3 = store.undo(e3.id)       # undo of a pending one: both leave
    store.undo(u3.id)            # redo: e3 pending again
    ids = [e.id for e in store.pending()]
    assert ids == [e.id for e in derive.pending(store.history())]
    assert u1.id in ids and e3.id in ids and e1.id not in ids and e2.id not in ids
    assert {e.space for e in store.pending(space="folder:d")} == {"folder:d"}
    assert [e.key for e in store.pending(space="rsna-pneumonia")] == [k2]
    q = store.queue_summary(space="rsna-pneumonia")
    assert (q.total, q.by_class) == (1, {"boxes: 1": 1})
    q_all = store.queue_summary()
    assert q_all.total == len(ids) and q_all.by_class == {"(none)": 1, "abd": 1, "boxes: 1": 1}
    # a rolled-back run gives its corrections back
    assert store.release_run("run-1") == 2
    assert e2.id in [e.id for e in store.pending()]


def test_undo_last_and_redo_last_per_reader(store):
    a = store.set_label("/d/1.png", "chest")
    b = store.set_label("/d/2.png", "abd")
    store.set_label("/d/3.png", "abd", reader="bob")  # someone else's: not on alice's stacks
    assert store.undo_stack() == ([a.id, b.id], [])
    u = store.undo_last()
    assert u.inverse_of == b.id and store.label("/d/2.png") is None
    assert store.undo_last().inverse_of == a.id
    assert store.undo_last() is None and not store.can_undo()
    r = store.redo_last()                           # a comes back first (last undone)
    assert store.label("/d/1.png").value == "chest" and r.key == "/d/1.png"
    assert store.can_redo()
    store.set_label("/d/4.png", "chest")           # a new correction clears the redo stack
    assert store.redo_last() is None and store.label("/d/2.png") is None
    # per event: undo after a redo undoes the redo
    store.undo_event(a.id)
    assert store.label("/d/1.png") is None
    store.redo_event(a.id)
    assert store.label("/d/1.png").value == "chest"
    with pytest.raises(ValueError, match="not undone"):
        store.redo_event(a.id)
    # per item scope
    assert store.undo_last(key="/d/1.png", level="image").inverse_of is not None
    assert store.label("/d/4.png").value == "chest"


def test_a_threads_connection_closes_with_the_thread_and_close_spares_busy_ones(store):
    base = store._db.n_connections

    def work():
        store.set_label("/t/1.png", "chest")
    t = threading.Thread(target=work)
    t.start()
    t.join()
    gc.collect()
    assert store._db.n_connections == base  # the worker's connection went with its thread

    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow(conn):
        inside.set()
        release.wait(5)
        return conn.execute("SELECT count(*) FROM corrections").fetchone()[0]

    def reader():
        try:
            assert store._db.read(slow) == 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    t = threading.Thread(target=reader)
    t.start()
    assert inside.wait(5)
    store.close()            # from another thread, mid-transaction
    release.set()
    t.join()
    assert not errors        # its transaction finished on its own connection
    assert store._db.n_connections == 0


def test_correction_follows_a_moved_folder(tmp_path, store_target):
    root = tmp_path / "site" / "openi"
    _png(root / "train" / "chest" / "a.png", 1)
    _png(root / "train" / "abd" / "b.png", 2)
    s = LabelStore(store_target, reader="alice")
    s.record_scan(_class_scan(root))
    old = str(root / "train" / "chest" / "a.png")
    c = s.set_label(old, "abd", level="study")
    s.set_boxes(old, [Box(1, 1, 5, 5, "opacity")], space="folder:openi")
    moved = tmp_path / "elsewhere" / "openi"
    shutil.move(str(root), str(moved))
    new = str(moved / "train" / "chest" / "a.png")
    assert s.label(new, "study") is None          # not rescanned yet: unknown path
    s.record_scan(_class_scan(moved))
    st = s.state(new, "study")
    assert st.corrected and st.label.value == "abd" and st.last_event_id == c.id
    assert s.label(new).boxes == (Box(1, 1, 5, 5, "opacity"),)
    assert [e.key for e in s.history(new, "study")] == [new]   # reported at the new path
    assert {e.key for e in s.pending()} == {new}
    u = s.undo(c.id)                                  # undo lands on the new key
    assert u.key == new and s.label(new, "study").value == "chest"
    s.redo_event(c.id)
    # and once more: the history follows a second move too
    again = tmp_path / "third" / "openi"
    shutil.move(str(moved), str(again))
    s.record_scan(_class_scan(again))
    third = str(again / "train" / "chest" / "a.png")
    assert s.label(third, "study").value == "abd" and s.label(third).boxes
    assert {e.key for e in s.history(third)} == {third}
    s.close()


def test_item_ids():
    assert item_id("/a/b.dcm", 0, "1.2.3") == "dicom:1.2.3"
    assert item_id("/a/b.dcm", 2, "1.2.3") == "dicom:1.2.3#2"
    assert item_id("/no/such/file.png") == "path:/no/such/file.png"
    assert item_id("XR_WRIST/p1/study1_positive") == "XR_WRIST/p1/study1_positive"


def test_dicom_correction_follows_its_sop_instance_uid(tmp_path, store_target):
    f = tmp_path / "a" / "1.dcm"
    f.parent.mkdir()
    f.write_bytes(b"\0" * 128 + b"DICM" + b"x" * 50)

    def scan(path):
        v = View(ImageRef(str(path)), uid="1.2.840.99.1")
        return ScanResult(str(path.parent), (Study(key="1.2.840.99", views=(v,), layout="dicom"),))
    with LabelStore(store_target) as s:
        s.record_scan(scan(f))
        s.set_boxes(str(f), [Box(0, 0, 2, 2)], space="rsna-pneumonia")
        g = tmp_path / "b" / "renamed.dcm"
        g.parent.mkdir()
        f.rename(g)
        g.write_bytes(g.read_bytes() + b"changed bytes, same instance")
        s.record_scan(scan(g))
        assert s.label(str(g)).boxes == (Box(0, 0, 2, 2),)


def _v1_store(path, key: str) -> None:
    """A store file exactly as schema v1 (the previous radview) writes it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    from radview.store.db import _statements

    for st in _statements(schema.MIGRATIONS[0]):
        conn.execute(st)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("INSERT INTO source_labels (level, key, value, boxes, source, time)"
                 " VALUES ('study', ?, 'chest', NULL, 'class-folder', '2026-01-01T00:00:00+00:00')",
                 (key,))
    conn.execute("INSERT INTO corrections (uid, level, key, kind, old_value, new_value, reader,"
                 " time, reason) VALUES ('u1', 'study', ?, 'label', ?, ?, 'alice',"
                 " '2026-01-01T00:00:01+00:00', 'wrong_label')",
                 (key, json.dumps("chest"), json.dumps("abd")))
    conn.execute("COMMIT")
    conn.close()


def test_migration_of_a_v1_store_keeps_history_and_follows_a_move(tmp_path):
    root = tmp_path / "data" / "openi"
    _png(root / "val" / "chest" / "a.png", 3)
    _png(root / "val" / "abd" / "b.png", 4)
    key = str(root / "val" / "chest" / "a.png")
    db = tmp_path / "old.sqlite"
    _v1_store(db, key)
    with LabelStore(db) as s:
        assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == schema.LATEST == 5
        assert s.integrity_check() == "ok"
        [e] = s.history()
        assert (e.uid, e.new_value, e.space) == ("u1", "abd", "")  # no space known yet
        s.record_scan(_class_scan(root))
        assert s.history()[0].space == "folder:openi"     # the item's space, derived on read
        assert s.pending(space="folder:openi")[0].uid == "u1"
        with pytest.raises(sqlite3.IntegrityError):       # still append-only after migrating
            s._db.conn().execute("UPDATE corrections SET reason = 'other'")
    moved = tmp_path / "moved"
    shutil.move(str(root), str(moved))
    with LabelStore(db) as s:
        s.record_scan(_class_scan(moved))
        new = str(moved / "val" / "chest" / "a.png")
        assert s.label(new, "study") == Label("abd", source="correction", space="folder:openi")


def test_a_v1_store_opened_read_only_gives_a_clear_error(tmp_path):
    from radview.store import StoreError

    db = tmp_path / "old.sqlite"
    _v1_store(db, "/x/a.png")
    before = db.read_bytes()
    with pytest.raises(StoreError, match="older radview.*schema version 1"):
        LabelStore(db, readonly=True)
    assert db.read_bytes() == before


def test_a_models_queue_is_the_spaces_comparable_with_it(store):
    from radview.models.manifest import manifest_from_dict

    region = manifest_from_dict({"name": "region", "task": "multiclass", "classes": ["abd", "chest"],
                                 "arch": "efficientnet_lite0", "label_space": "openi-chest-abdomen"})
    store.set_label("/o/1.png", "chest", space="folder:openi")      # a class folder abd/chest
    store.set_label("/o/2.png", "abd", space="openi-chest-abdomen")
    store.set_label("/r/1.png", "normal", space="rsna-pneumonia")   # never the region model's
    spaces.class_folder_space("openi", ("abd", "chest"))
    names = spaces.comparable_spaces(region, store.space_names())
    assert names == ["folder:openi", "openi-chest-abdomen"]
    q = store.queue_summary(space=names)
    assert q.total == 2 and q.by_class == {"chest": 1, "abd": 1}
    assert {e.key for e in store.pending(space=names)} == {"/o/1.png", "/o/2.png"}
    assert store.pending(space=[]) == []
