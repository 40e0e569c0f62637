"""The label store on PostgreSQL (issue 16): a real server from the machine's binaries
(tests/postgres.py). Backend selection (RADVIEW_STORE, settings entry), schema version and
migrations, append-only triggers, refusing foreign/newer databases, errors naming the server,
backup to SQLite, the SQL dialect, and the concurrency load test (small) on both backends."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from postgres import pg_server, pg_url, store_target  # noqa: F401
from radview.store import LabelStore, StoreError, close_stores, open_store, pg_dialect, schema
from radview.store.backends import store_target as resolve_target
from radview.types import Box, Label

psycopg = pytest.importorskip("psycopg")


def _raw(url):
    return psycopg.connect(url, autocommit=True)


def test_schema_version_and_append_only_triggers(pg_url):
    with LabelStore(pg_url, reader="alice") as s:
        c = s.set_label("img", "chest")
        assert s.integrity_check() == "ok"
        assert s._db.backend == "postgresql" and s.path == pg_url
    with _raw(pg_url) as conn:
        meta = dict(conn.execute("SELECT key, value FROM radview_meta").fetchall())
        assert meta == {"user_version": str(schema.LATEST), "application_id": str(schema.APPLICATION_ID)}
        for sql in ("UPDATE corrections SET reason = 'other'", "DELETE FROM corrections",
                    "TRUNCATE corrections CASCADE"):
            with pytest.raises(psycopg.IntegrityError, match="corrections are append-only"):
                conn.execute(sql)
        # every append-only trigger of the SQLite schema exists on PostgreSQL too
        from radview.store.db import _statements
        wanted = {st.split()[2] for m in schema.MIGRATIONS for st in _statements(m)
                  if st.upper().startswith("CREATE TRIGGER")}
        have = {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        assert wanted and wanted <= have
        # ids are BIGINT identities (mtime in ns does not fit 32 bits)
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns"
                                  " WHERE table_name = 'item_keys'").fetchall())
        assert types["mtime_ns"] == "bigint"
    with LabelStore(pg_url) as s:
        assert s.correction(c.id).new_value == "chest" and len(s.history()) == 1


def test_radview_store_env_selects_postgresql_and_writes_no_sqlite(pg_url, radview_home, monkeypatch):
    monkeypatch.setenv("RADVIEW_STORE", pg_url)
    close_stores()
    try:
        s = open_store()
        assert s._db.backend == "postgresql" and open_store() is s
        s.set_label("/x/a.png", "chest", space="folder:x")
        assert not list(Path(radview_home).glob("*.sqlite*"))   # no SQLite store written
        with LabelStore(pg_url) as other:
            assert other.label("/x/a.png").value == "chest"
    finally:
        close_stores()


def test_settings_entry_selects_postgresql(pg_url, radview_home, monkeypatch):
    monkeypatch.delenv("RADVIEW_STORE", raising=False)
    assert resolve_target(None) == Path(radview_home) / "labels.sqlite"
    (Path(radview_home) / "radview.ini").write_text(f"[store]\nurl={pg_url}\n", encoding="utf-8")
    assert resolve_target(None) == pg_url
    with LabelStore() as s:
        assert s._db.backend == "postgresql"
        assert not (Path(radview_home) / "labels.sqlite").exists()
    monkeypatch.setenv("RADVIEW_STORE", str(Path(radview_home) / "env.sqlite"))  # env wins
    assert resolve_target(None) == Path(radview_home) / "env.sqlite"


def test_a_foreign_or_newer_database_is_refused_untouched(pg_server):
    other = pg_server.create_database()
    with _raw(other) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(StoreError, match="another program") as info:
        LabelStore(other)
    assert other in str(info.value)
    with _raw(other) as conn:
        assert {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables"
                                           " WHERE table_schema = 'public'")} == {"photos"}
    newer = pg_server.create_database()
    LabelStore(newer).close()
    with _raw(newer) as conn:
        conn.execute("UPDATE radview_meta SET value = '99' WHERE key = 'user_version'")
    with pytest.raises(StoreError, match="newer radview"):
        LabelStore(newer)


def test_migration_from_v1_keeps_history(pg_server):
    url = pg_server.create_database()
    from radview.store.db import _statements
    with _raw(url) as conn:  # a v1 store, as the v1 schema makes it on PostgreSQL
        conn.execute("CREATE TABLE radview_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO radview_meta VALUES ('application_id', %s), ('user_version', '1')",
                     (str(schema.APPLICATION_ID),))
        for st in _statements(schema.MIGRATIONS[0]):
            for pg in pg_dialect.ddl(st):
                conn.execute(pg)
        conn.execute("INSERT INTO corrections (uid, level, key, kind, old_value, new_value, reader,"
                     " time, reason) VALUES ('u1', 'study', 'k', 'label', %s, %s, 'alice',"
                     " '2026-01-01T00:00:01+00:00', 'wrong_label')",
                     (json.dumps("chest"), json.dumps("abd")))
    with pytest.raises(StoreError, match="upgraded read-only"):
        LabelStore(url, readonly=True)
    with LabelStore(url) as s:
        [e] = s.history()
        assert (e.uid, e.new_value, e.space) == ("u1", "abd", "")
        assert s.integrity_check() == "ok"
        assert s.set_label("k", "chest", level="study", space="folder:x").old_value == "abd"


def test_unreachable_server_names_it_without_the_password():
    url = "postgresql://bob:s3cret@127.0.0.1:1/labels"
    with pytest.raises(StoreError) as info:
        LabelStore(url, timeout=1)
    text = str(info.value)
    assert "127.0.0.1:1/labels" in text and "s3cret" not in text
    assert "cannot reach the PostgreSQL server" in text


def test_backup_of_a_postgresql_store_is_a_sqlite_store(pg_url, tmp_path):
    with LabelStore(pg_url, reader="alice") as s:
        s.set_source_labels({"i1": Label("pneumonia", (Box(1, 2, 3, 4),), "rsna-csv")})
        c = s.set_boxes("i1", [Box(5, 6, 7, 8)])
        s.mark_consumed([c.id], "run-1")
        u = s.undo(c.id)
        dest = s.backup(tmp_path / "copy.sqlite")
        want = s.history()
    with LabelStore(dest) as copy:
        assert copy.history() == want and copy.pending()[0].id == u.id
        assert copy.label("i1").boxes == (Box(1, 2, 3, 4),)
        assert copy.integrity_check() == "ok"


def test_two_readers_on_one_study_at_once_both_kept(store_target):
    import threading
    a, b = LabelStore(store_target, reader="alice"), LabelStore(store_target, reader="bob")
    go = threading.Barrier(2)
    out = {}

    def work(store, value):
        go.wait()
        out[store.reader] = store.set_label("XR/s1", value, level="study", space="mura")
    ts = [threading.Thread(target=work, args=(a, "normal")),
          threading.Thread(target=work, args=(b, "abnormal"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    hist = a.history("XR/s1", "study")
    assert {e.reader for e in hist} == {"alice", "bob"} and len(hist) == 2
    first, second = hist
    assert second.old_value == first.new_value   # the later writer saw the earlier one: visible
    assert a.label("XR/s1", "study").value == second.new_value
    a.close()
    b.close()


def test_dialect_translation():
    q, ret = pg_dialect.query("INSERT INTO corrections (a, b) VALUES (?, '?%')")
    assert q == "INSERT INTO corrections (a, b) VALUES (%s, '?%%') RETURNING id" and ret
    q, _ = pg_dialect.query("INSERT OR IGNORE INTO moves (level) VALUES (?)")
    assert q == "INSERT INTO moves (level) VALUES (%s) ON CONFLICT DO NOTHING"
    q, _ = pg_dialect.query("INSERT OR REPLACE INTO spaces (name, spec) VALUES (?,?)")
    assert q.endswith("ON CONFLICT (name) DO UPDATE SET spec = excluded.spec")
    q, _ = pg_dialect.query("SELECT x FROM t WHERE 1 AND y IN (?) AND 0")
    assert q == "SELECT x FROM t WHERE TRUE AND y IN (%s) AND FALSE"
    q, _ = pg_dialect.query("SELECT json_extract(c.new_value, '$'), (a - b) % 2 FROM c")
    assert q == "SELECT ((c.new_value)::jsonb #>> '{}'), (a - b) %% 2 FROM c"
    assert pg_dialect.ddl("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT) WITHOUT ROWID;") == [
        'CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, k TEXT COLLATE "C")']


def _bench():
    """scripts/bench_store_team.py as a module (importable by name: its writers are spawned)."""
    scripts = str(Path(__file__).resolve().parent.parent / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module("bench_store_team")


def test_concurrent_processes_lose_and_duplicate_nothing_on_both_backends(tmp_path, pg_server):
    """The load test of scripts/bench_store_team.py, small: 4 processes x 30 events on each
    backend, both backends' writers at the same time, overlapping studies."""
    bench = _bench()
    targets = {"sqlite": tmp_path / "team.sqlite", "postgresql": pg_server.create_database()}
    for t in targets.values():
        LabelStore(t).close()
    results = bench.run_together(targets, procs=4, events=120, items=10)
    for name, r in results.items():
        assert r["errors"] == [], name
        assert (r["events"], r["lost"], r["duplicated"], r["ordered"]) == (120, 0, 0, True), name
    for t in targets.values():
        with LabelStore(t) as s:
            assert {e.reader for e in s.history()} == {f"reader{i}" for i in range(4)}
            assert s.queue_summary().total == 120


def test_a_dropped_connection_is_reopened_and_nothing_is_lost(pg_url):
    with LabelStore(pg_url, reader="alice") as s:
        a = s.set_label("img", "chest")
        with _raw(pg_url) as admin:  # the server drops every radview connection (e.g. a restart)
            n = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                              " WHERE application_name = 'radview' AND pid <> pg_backend_pid()"
                              ).fetchone()[0]
        assert n >= 1
        b = s.set_label("img", "abd")          # reconnects before its transaction starts
        assert [e.id for e in s.history("img")] == [a.id, b.id] and b.old_value == "chest"
