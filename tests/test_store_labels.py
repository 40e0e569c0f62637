"""Label store: source labels vs corrections, undo/redo by inverse events, queue, prediction cache."""
from __future__ import annotations

import sqlite3

import pytest

from postgres import append_only_errors, pg_server, raw_connection, store_target  # noqa: F401
from radview.store import REASON_CODES, LabelStore, StoreError
from radview.types import Box, ImageRef, Label, Prediction, ScanResult, Study, View


@pytest.fixture
def store(store_target):
    """The same tests on SQLite and on PostgreSQL (tests/postgres.py)."""
    s = LabelStore(store_target, reader="alice")
    yield s
    s.close()


def test_default_path_is_under_radview_home(radview_home):
    with LabelStore() as s:
        assert s.path == radview_home / "labels.sqlite"
        assert s.path.exists()
        assert s.reader  # the OS user by default


def test_schema_wal_foreign_keys_and_version(sqlite_store):
    store = sqlite_store
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 5  # v2: label spaces, item keys; v3: measurements; v4: reader roles; v5: projects, worklists, reads
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x52564C53
    conn.close()
    fk = store._db.conn().execute("PRAGMA foreign_keys").fetchone()[0]
    assert fk == 1


def test_correction_wins_over_source_and_undo_restores(store):
    store.set_source_labels({"XR_WRIST/p1/study1_positive": Label("abnormal", source="mura-csv")},
                            level="study")
    key = "XR_WRIST/p1/study1_positive"
    assert store.label(key, "study") == Label("abnormal", source="mura-csv")
    c = store.set_label(key, "normal", level="study", reason="degenerative_change", note="old",
                        model="mura", model_version="1.0", model_output="abnormal")
    assert (c.old_value, c.new_value, c.reader, c.reason) == ("abnormal", "normal", "alice",
                                                               "degenerative_change")
    assert c.time.endswith("+00:00") and c.model_output == "abnormal"
    assert store.label(key, "study") == Label("normal", source="correction")
    st = store.state(key, "study")
    assert st.corrected and (st.last_event_id, st.last_reader) == (c.id, "alice")
    u = store.undo(c.id)
    assert u.inverse_of == c.id and (u.old_value, u.new_value) == ("normal", "abnormal")
    assert store.label(key, "study").value == "abnormal"
    assert not store.state(key, "study").corrected
    # redo = undo the undo; history only grows
    r = store.undo(u.id)
    assert store.label(key, "study").value == "normal"
    assert [e.id for e in store.history(key, "study")] == [c.id, u.id, r.id]
    with pytest.raises(ValueError, match="already undone"):
        store.undo(c.id)


def test_out_of_order_undo_keeps_later_correction(store):
    a = store.set_label("img", "chest")
    b = store.set_label("img", "abd")
    u = store.undo(a.id)
    assert store.label("img").value == "abd"
    assert (u.old_value, u.new_value) == ("abd", "abd")
    store.undo(b.id)
    assert store.label("img") is None  # no source label, no active correction


def test_history_is_append_only_at_the_sql_level(store):
    c = store.set_label("img", "chest")
    conn = raw_connection(store)  # another program's connection (sqlite3 or psycopg)
    with pytest.raises(append_only_errors(store), match="append-only"):
        conn.execute("UPDATE corrections SET new_value = '\"abd\"' WHERE id = %d" % c.id)
    with pytest.raises(append_only_errors(store), match="append-only"):
        conn.execute("DELETE FROM corrections")
    conn.close()
    assert store.correction(c.id).new_value == "chest"


def test_boxes_events_and_box_json_round_trip(store):
    ref = ImageRef("/data/rsna/abc.dcm")
    store.set_source_labels({ref: Label("pneumonia", (Box(1, 2, 3, 4),), "rsna-csv")})
    boxes = (Box(1.5, 2, 30, 40, "opacity"), Box(100, 200, 50, 60, "opacity", 0.87))
    c = store.set_boxes(ref, boxes, model="rsna-det", model_version="2",
                        model_output=Box(100, 200, 50, 60, "opacity", 0.87))
    assert c.old_value == (Box(1, 2, 3, 4),) and c.new_value == boxes
    assert c.model_output == (Box(100, 200, 50, 60, "opacity", 0.87),)
    lab = store.label(ref)
    assert lab.value == "pneumonia" and lab.boxes == boxes and lab.source == "correction"
    assert store.state(ref).boxes_known
    with pytest.raises(StoreError, match="CHECK constraint"):
        store._db.write(lambda conn: conn.execute(
            "INSERT INTO corrections (uid, level, key, kind, reader, time, reason)"
            " VALUES ('x', 'study', 'k', 'boxes', 'r', 't', 'other')"))


def test_validation_errors(store):
    with pytest.raises(ValueError, match="reason"):
        store.set_label("img", "chest", reason="because")
    with pytest.raises(ValueError, match="level"):
        store.set_label("img", "chest", level="series")
    with pytest.raises(TypeError):
        store.set_label("img", 3)
    with pytest.raises(ValueError, match="no correction"):
        store.undo(999)
    assert set(REASON_CODES) == {"wrong_label", "ambiguous", "bad_image", "wrong_body_part",
                                 "degenerative_change", "other"}


def test_exclude_keeps_label_and_flags_item(store):
    store.set_source_labels({"img": Label("chest", source="class-folder")})
    e = store.exclude("img", reason="bad_image", note="motion blur")
    assert e.new_value == "chest" and e.exclude_from_training
    assert store.excluded_keys("image") == {"img"}
    store.undo(e.id)
    assert store.excluded_keys("image") == set()


def test_queue_pending_counts_and_mark_consumed(store):
    a = store.set_label("s1", "abnormal", level="study")
    b = store.set_label("s2", "normal", level="study", reader="bob")
    c = store.set_boxes("i1", [Box(0, 0, 5, 5)])
    d = store.set_label("i2", "chest")
    store.undo(d.id)  # undone before any training: neither it nor its undo is pending
    pend = store.pending()
    assert [e.id for e in pend] == [a.id, b.id, c.id]
    summary = store.queue_summary()
    assert summary.total == 3
    assert summary.by_class == {"abnormal": 1, "normal": 1, "boxes: 1": 1}
    assert summary.by_reader == {"alice": 2, "bob": 1}
    assert store.pending(level="study") == pend[:2]
    assert store.mark_consumed([a.id, b.id], "run-1") == 2
    assert store.mark_consumed([a.id], "run-2") == 0  # first run keeps it
    assert [e.id for e in store.pending()] == [c.id]
    assert store.correction(a.id).consumed_by_run == "run-1"
    assert store.consumed_by("run-1") == [a.id, b.id]
    # undoing a consumed correction puts the undo in the queue (the model learnt the old value)
    u = store.undo(a.id)
    assert [e.id for e in store.pending()] == [c.id, u.id]
    with pytest.raises(ValueError):
        store.mark_consumed([12345], "run-3")


def test_record_scan_keeps_imports_and_knows_rsna_negatives(store):
    v1 = View(ImageRef("/d/a.dcm"), Label("normal", (), "rsna-csv"), rows=1024, columns=1024,
              modality="CR")
    v2 = View(ImageRef("/d/b.png"), Label("chest", source="class-folder"))
    res = ScanResult("/d", (Study("1.2.3", patient="P1", label=Label("normal", source="rsna-csv"),
                                  views=(v1,), layout="rsna"),
                            Study("/d/b.png", views=(v2,), layout="class",
                                  label=Label("chest", source="class-folder"))))
    store.set_source_labels({"/d/b.png": Label("abd")}, source="import:csv")
    assert store.record_scan(res) == 4
    assert store.state("/d/a.dcm").boxes_known
    assert store.label("/d/b.png").value == "abd"  # the import wins over the folder name
    assert store.items("image")["/d/a.dcm"]["width"] == 1024
    assert store.items("study")["1.2.3"]["patient"] == "P1"
    assert set(store.labels("image")) == {"/d/a.dcm", "/d/b.png"}


def test_prediction_cache_round_trip_and_stale_files(store, tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"not really a png")
    p1 = Prediction(ImageRef(str(f)), "mura", "1.0", ("normal", "abnormal"), (0.25, 0.75),
                    boxes=(Box(1, 2, 3, 4, "opacity", 0.5),), in_domain=False,
                    domain_reason="not a radiograph")
    p2 = Prediction(ImageRef("/nowhere/y.dcm", 2), "mura", "1.0", ("normal", "abnormal"),
                    (0.9, 0.1))
    bad = Prediction(ImageRef("/nowhere/z.dcm"), "mura", "1.0", (), (), error="cannot decode")
    assert store.put_predictions([p1, p2, bad]) == 2
    got = store.get_predictions("mura", "1.0", [p1.ref, p2.ref.key, bad.ref])
    assert got == {p1.ref.key: p1, p2.ref.key: p2}
    assert store.get_predictions("mura", "2.0", [p1.ref]) == {}
    f.write_bytes(b"changed contents, other size")
    assert store.get_predictions("mura", "1.0", [p1.ref]) == {}
    assert store.clear_predictions("mura") == 2


def test_states_bulk_matches_single(store):
    # more than one IN chunk
    store.set_source_labels({f"k{i}": Label("chest" if i % 2 else "abd") for i in range(1200)})
    store.set_label("k7", "abd")
    states = store.states("image", [f"k{i}" for i in range(1200)])
    assert len(states) == 1200 and states["k7"].label.value == "abd" and states["k7"].corrected
    assert states["k8"] == store.state("k8")


def test_two_stores_on_one_file_see_each_other(store_target):
    a = LabelStore(store_target, reader="app")
    b = LabelStore(store_target, reader="cli")
    c = a.set_label("img", "chest")
    assert b.label("img").value == "chest"
    b.undo(c.id)
    assert a.label("img") is None and a.history("img")[-1].reader == "cli"
    a.close()
    b.close()


def test_threads_each_get_a_connection(store):
    import threading
    ids, errors = [], []

    def work(n):
        try:
            for i in range(20):
                ids.append(store.set_label(f"t{n}-{i}", "chest").id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 80
    assert len(store.history()) == 80


def test_readonly_mode_reads_and_refuses_writes(store):
    store.set_label("img", "chest")
    ro = LabelStore(store.path, readonly=True)
    assert ro.label("img").value == "chest"
    with pytest.raises(StoreError, match="read-only"):
        ro.set_label("img", "abd")
    ro.close()


def test_newer_schema_and_foreign_sqlite_are_refused_untouched(tmp_path):
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = newer.read_bytes()
    with pytest.raises(StoreError, match="newer radview") as info:
        LabelStore(newer)
    assert str(newer) in str(info.value)
    assert newer.read_bytes() == before
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        LabelStore(other)
    assert other.read_bytes() == before


def test_backup_is_a_working_store(store, tmp_path):
    store.set_label("img", "chest")
    dest = store.backup(tmp_path / "copy.sqlite")
    with LabelStore(dest) as copy:
        assert copy.label("img").value == "chest"
