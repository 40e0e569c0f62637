"""Label store reliability: SIGKILL mid-write, two writer processes, read-only / full / corrupt files.

Real processes, real SQLite files; nothing mocked.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from radview.store import LabelStore, StoreError
from radview.types import Box, Label

ROOT = Path(__file__).resolve().parent.parent

# A labeller: prints each correction id only after set_label/set_boxes/undo returned.
LABELLER = r"""
import random, sys
from radview.store import LabelStore
from radview.types import Box, Label
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(tag)
store = LabelStore(path, reader=tag, timeout=60)
print("ready", flush=True)
for i in range(n):
    key = f"{tag}-{rng.randrange(40)}"
    r = rng.random()
    if r < 0.6:
        c = store.set_label(key, rng.choice(["normal", "abnormal"]), level="study",
                            note="x" * rng.randrange(200))
    elif r < 0.85:
        c = store.set_boxes(key, [Box(rng.random() * 900, 10, 50, 60)] * rng.randrange(4))
    else:
        last = store.history(key)
        c = store.undo(last[-1].id) if last and not any(e.inverse_of == last[-1].id for e in last) \
            else store.set_label(key, "normal")
    print(c.id, flush=True)
print("done", flush=True)
"""


def _spawn(db: Path, tag: str, n: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # unbuffered binary pipes: readline() must not swallow lines that communicate() then misses
    return subprocess.Popen([sys.executable, "-c", LABELLER, str(db), tag, str(n)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)


def _line(proc: subprocess.Popen) -> str:
    return proc.stdout.readline().decode()


def _finish(proc: subprocess.Popen, timeout: float | None = None) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    return out.decode(), err.decode()


def _ids(text: str) -> list[int]:
    # a line counts only when complete (the id was printed after the call returned)
    lines = text.split("\n")[:-1]
    return [int(x) for x in lines if x.strip().isdigit()]


def test_sigkill_at_random_points_loses_no_returned_correction(tmp_path):
    db = tmp_path / "labels.sqlite"
    LabelStore(db).close()
    rng = random.Random(1234)
    confirmed: list[int] = []
    kills_mid_run = 0
    for round_ in range(50):
        proc = _spawn(db, f"k{round_}", 100000)
        assert _line(proc).strip() == "ready", proc.stderr.read()
        first = _line(proc)  # the loop is running: kill it somewhere in the next ~30 ms
        assert first.strip().isdigit(), first + proc.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        out, err = _finish(proc)
        assert proc.returncode == -signal.SIGKILL
        assert "Traceback" not in err, err
        ids = [int(first), *_ids(out)]
        kills_mid_run += len(ids) > 1
        confirmed += ids
        if round_ % 10 == 9:
            with LabelStore(db) as s:
                present = {e.id for e in s.history()}
                assert set(confirmed) <= present
    assert kills_mid_run >= 25  # most kills landed after more corrections had been written
    with LabelStore(db) as s:
        present = {e.id for e in s.history()}
        missing = set(confirmed) - present
        assert not missing, f"{len(missing)} returned corrections lost after SIGKILL"
        assert s.integrity_check() == "ok"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_two_writer_processes_lose_nothing_and_never_fail_locked(tmp_path):
    db = tmp_path / "labels.sqlite"
    with LabelStore(db, reader="app") as app:
        n = 150
        procs = [_spawn(db, "cli-a", n), _spawn(db, "cli-b", n)]
        for p in procs:
            assert _line(p).strip() == "ready"
        mine = []
        for i in range(60):  # this process writes at the same time (the app)
            mine.append(app.set_label(f"app-{i % 7}", "abnormal", level="study").id)
        outs = [_finish(p, timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert "locked" not in err.lower()
            assert out.strip().endswith("done")
        ids = mine + _ids(outs[0][0]) + _ids(outs[1][0])
        assert (len(mine), len(_ids(outs[0][0])), len(_ids(outs[1][0]))) == (60, n, n), outs
        assert len(set(ids)) == len(ids)
        history = app.history()
        assert {e.id for e in history} == set(ids)
        assert {e.reader for e in history} == {"app", "cli-a", "cli-b"}
        assert app.integrity_check() == "ok"


# ---------------------------------------------------------------------------- hostile files


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _read_only(*paths: Path):
    """Make files/folders unwritable, even for root (immutable attribute), and undo it."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a read-only file")
        done = []
        try:
            for p in paths:
                r = subprocess.run(["chattr", "+i", str(p)], capture_output=True, text=True)
                if r.returncode != 0:
                    pytest.skip(f"chattr +i not permitted here: {r.stderr.strip()}")
                done.append(p)
            yield
        finally:
            for p in done:
                subprocess.run(["chattr", "-i", str(p)], check=False)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        try:
            for p in paths:
                p.chmod(0o555 if p.is_dir() else 0o444)
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)


def _make_store(folder: Path) -> Path:
    db = folder / "labels.sqlite"
    with LabelStore(db) as s:
        s.set_label("img", "chest")
    for suffix in ("-wal", "-shm"):  # closed cleanly: WAL checkpointed into the file
        assert not Path(str(db) + suffix).exists()
    return db


def test_read_only_file_gives_clear_error_and_is_untouched(tmp_path):
    db = _make_store(tmp_path)
    before = _digest(db)
    with _read_only(db):
        with pytest.raises(StoreError) as info:
            with LabelStore(db) as s:
                s.set_label("img", "abd")
        msg = str(info.value)
        assert str(db) in msg and "read-only" in msg
        with LabelStore(db, readonly=True) as ro:  # still readable
            assert ro.label("img").value == "chest"
    assert _digest(db) == before


def test_read_only_folder_gives_clear_error(tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    db = _make_store(folder)
    before = _digest(db)
    with _read_only(folder):
        with pytest.raises(StoreError) as info:
            LabelStore(db)
        assert str(db) in str(info.value) and "read-only" in str(info.value)
        with pytest.raises(StoreError, match="read-only"):
            LabelStore(folder / "new.sqlite")
        with LabelStore(db, readonly=True) as ro:
            assert ro.label("img").value == "chest"
    assert _digest(db) == before
    assert sorted(p.name for p in folder.iterdir()) == ["labels.sqlite"]


def test_full_disk_gives_clear_error_and_keeps_earlier_corrections(tmp_path):
    db = tmp_path / "labels.sqlite"
    LabelStore(db).close()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    # a store that cannot grow by more than a few pages: a full disk as SQLite sees it
    s = LabelStore(db, pragmas={"max_page_count": pages + 3})
    saved = []
    with pytest.raises(StoreError) as info:
        for i in range(10000):
            saved.append(s.set_label(f"img{i}", "chest", note="n" * 500).id)
    assert str(db) in str(info.value) and "disk is full" in str(info.value)
    assert saved  # some fit before the limit
    s.close()
    with LabelStore(db) as again:
        assert {e.id for e in again.history()} == set(saved)
        assert again.integrity_check() == "ok"


def test_full_tmpfs_gives_clear_error(tmp_path):
    """A real full file system (a 256 KiB tmpfs) where this machine allows mounting one."""
    mnt = Path(tempfile.mkdtemp(prefix="radview-full-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode})")
    try:
        db = mnt / "labels.sqlite"
        s = LabelStore(db)
        saved = []
        with pytest.raises(StoreError) as info:
            for i in range(100000):
                saved.append(s.set_label(f"img{i}", "chest", note="n" * 2000).id)
        assert "disk is full" in str(info.value) and str(db) in str(info.value)
        s.close()
        with LabelStore(db, readonly=True) as ro:
            assert {e.id for e in ro.history()} == set(saved)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


def test_not_a_database_is_refused_untouched(tmp_path):
    db = tmp_path / "labels.sqlite"
    db.write_bytes(os.urandom(8192))
    before = _digest(db)
    with pytest.raises(StoreError) as info:
        LabelStore(db)
    msg = str(info.value)
    assert str(db) in msg and "not a SQLite database" in msg and "left untouched" in msg
    assert _digest(db) == before
    assert not Path(str(db) + "-wal").exists()


def test_corrupt_pages_give_clear_error_and_file_is_untouched(tmp_path):
    db = tmp_path / "labels.sqlite"
    with LabelStore(db) as s:
        s.set_source_labels({f"img{i}": Label("x" * 300, (Box(i, i, 10, 10),)) for i in range(300)})
        for i in range(5):
            s.set_boxes(f"img{i}", [Box(i, i, 10, 10)], note="z" * 300)
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 8 * page
    for p in range(2, len(raw) // page):  # garble every page after the schema page
        raw[p * page + 10: p * page + 200] = os.urandom(190)
    db.write_bytes(bytes(raw))
    before = _digest(db)
    with pytest.raises(StoreError) as info:
        with LabelStore(db) as s:
            s.history()
            s.set_label("img1", "abd")
    msg = str(info.value)
    assert str(db) in msg and "corrupt" in msg
    assert _digest(db) == before


def test_missing_folder_is_created_and_bad_parent_reported(tmp_path):
    with LabelStore(tmp_path / "a" / "b" / "labels.sqlite") as s:
        assert s.path.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create its folder"):
        LabelStore(blocker / "labels.sqlite")
