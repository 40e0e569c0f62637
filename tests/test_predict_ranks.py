"""Scale-out inference (issue 16): `radview predict` as 2 real torchrun CPU ranks (gloo) on a tiny
model and tiny images, writing into a real SQLite store and a real PostgreSQL (tests/postgres.py):
disjoint shards, every image predicted exactly once, a rank killed mid-run (SIGKILL) leaves its
shard resumable and the re-run predicts only what is missing; `--shard K/N` without torchrun."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postgres import pg_server, store_target  # noqa: F401
from radview.models import shards
from radview.store import LabelStore, close_stores
from radview.train import synthetic

ROOT = Path(__file__).resolve().parent.parent
SPY = Path(__file__).resolve().parent / "predict_ranks_spy.py"
MODEL = "tiny-ranks"


@pytest.fixture
def tiny_model(radview_home) -> str:
    """A ~0.1 M-parameter mobilenet_v3_small at 32x32, seeded random weights."""
    import torch

    from radview import paths
    from radview.models import arch
    from radview.models.manifest import sha256_file

    d = synthetic.tiny_manifest(MODEL)
    folder = paths.user_models_dir() / MODEL
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(arch.build(d["arch"], 1, "binary", **d["arch_kwargs"]).state_dict(), folder / "weights.pt")
    d.update(format=1, weights={"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")})
    (folder / "manifest.json").write_text(json.dumps(d), encoding="utf-8")
    return MODEL


@pytest.fixture
def archive(tmp_path) -> dict[str, list[str]]:
    """A MURA-style tree: 15 studies of 2 views (48x48 PNGs): {study folder: [view paths]}."""
    made = synthetic.mura(tmp_path / "archive", views=2, size=48)
    return {k: [str(p) for p in v] for k, v in made.items()}


def _all_keys(archive) -> set[str]:
    return {p for views in archive.values() for p in views}


def _owner(archive, root) -> dict[str, int]:
    """image key -> the rank (of 2) whose shard holds its study, by the documented rule."""
    return {p: shards.shard_of(shards.shard_key(study, str(root)), 2)
            for study, views in archive.items() for p in views}


def _stored(target) -> dict[str, str]:
    """{image key: time written} of the tiny model's predictions in the store."""
    with LabelStore(target) as s:
        rows = s._db.read(lambda c: c.execute(
            "SELECT key, time FROM predictions WHERE model = ? AND model_version = '1.0.0'", (MODEL,)).fetchall())
    return dict(rows)


def _spy_keys(spy_dir: Path) -> dict[int, list[str]]:
    """{rank: keys it stored, in order, every attempt} from the spy's logs."""
    out: dict[int, list[str]] = {}
    for f in sorted(spy_dir.glob("rank*.keys")):
        out.setdefault(int(f.name[4:].split(".")[0]), []).extend(f.read_text().split())
    return out


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds marker (the ranks, their decoders, torchrun)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if marker.encode() in (d / "environ").read_bytes():
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def _no_stray_processes(marker: str) -> None:
    deadline = time.monotonic() + 10
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:  # leave nothing behind, then fail
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"processes left running after torchrun: {left}"


def _torchrun(tmp_path, archive_root, target, spy_dir, *extra, kill_after=None, out=None):
    spy_dir.mkdir(exist_ok=True)
    env = {**os.environ, "SPY_DIR": str(spy_dir), "RADVIEW_TEST_MARKER": str(tmp_path),
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("SPY_KILL_RANK", None)
    if kill_after:
        env.update(SPY_KILL_RANK="1", SPY_KILL_AFTER=str(kill_after))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--monitor-interval", "0.2", str(SPY), "predict", str(archive_root), "--model", MODEL,
           "--device", "cpu", "--batch-size", "2", "--store", str(target), *extra]
    if out:
        cmd += ["--out", str(out)]
    # output into files, not pipes: a stray child holding a pipe open would hang the test
    log = spy_dir / "torchrun.log"
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        try:
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _no_stray_processes(f"RADVIEW_TEST_MARKER={tmp_path}")
    return subprocess.CompletedProcess(cmd, code, "", log.read_text(encoding="utf-8", errors="replace"))


def _shard_lines(stderr: str) -> dict[str, str]:
    return {ln.split("shard ")[1].split(":")[0]: ln for ln in stderr.splitlines()
            if ln.startswith("radview predict: shard ") and " studies, " in ln}


# --------------------------------------------------------------------------- sharding rules


def test_shards_are_disjoint_stable_and_cover_every_study(tmp_path):
    from radview.types import ImageRef, Study, View

    def studies(root):
        return [Study(key=f"{root}/XR_WRIST/patient{i:05d}/study1", views=(View(ref=ImageRef(f"{root}/{i}.png")),))
                for i in range(101)]

    a, b = studies("/mnt/a/archive"), studies("/srv/b/elsewhere")
    for by in shards.BY:
        for n in (1, 2, 3, 7):
            parts = [shards.select(a, shards.Shard(k, n, by), "/mnt/a/archive") for k in range(n)]
            keys = [{s.key for s in p} for p in parts]
            assert sum(len(k) for k in keys) == len(a) and set().union(*keys) == {s.key for s in a}
            if by == "index":
                assert max(map(len, parts)) - min(map(len, parts)) <= 1
            # the same archive mounted elsewhere: the same studies in the same shards
            moved = [shards.select(b, shards.Shard(k, n, by), "/srv/b/elsewhere") for k in range(n)]
            assert [[s.key.split("/archive/")[-1] for s in p] for p in parts] == \
                   [[s.key.split("/elsewhere/")[-1] for s in p] for p in moved]
    # hash: a study's shard depends on it alone (an archive that grows moves nobody)
    grown = a + studies("/mnt/a/archive/new")
    for k in range(3):
        old = {s.key for s in shards.select(a, shards.Shard(k, 3), "/mnt/a/archive")}
        assert old <= {s.key for s in shards.select(grown, shards.Shard(k, 3), "/mnt/a/archive")}
    assert shards.shard_of("1.2.840.10008.1", 4) == shards.shard_of("1.2.840.10008.1", 4)
    assert shards.parse_shard("2/8") == shards.Shard(2, 8)
    for bad in ("8/8", "-1/2", "1", "a/b"):
        with pytest.raises(ValueError, match="K/N|0 <= K < N"):
            shards.parse_shard(bad)


# --------------------------------------------------------------------------- torchrun ranks


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_torchrun_ranks_killed_and_resumed(tmp_path, tiny_model, archive, store_target):  # noqa: F811
    """2 CPU ranks; rank 1 SIGKILLs itself after its 2nd stored batch; the re-run finishes (a run
    with nothing left to do: test_shard_k_of_n_without_torchrun_matches_a_plain_run)."""
    root = tmp_path / "archive"
    everything, owner = _all_keys(archive), _owner(archive, root)
    assert len(everything) == 30 and {0, 1} == set(owner.values())

    # 1. rank 1 dies mid-run: torchrun fails, the committed batches stay in the store
    spy1 = tmp_path / "spy1"
    first = _torchrun(tmp_path, root, store_target, spy1, kill_after=2)
    assert first.returncode != 0, first.stderr[-2000:]
    assert "Signals.SIGKILL" in first.stderr or "SIGKILL" in first.stderr
    done1 = _stored(store_target)
    seen1 = _spy_keys(spy1)
    assert len(seen1[1]) == 4 and all(owner[k] == 1 for k in seen1[1])   # 2 batches of 2, its own shard
    assert set(seen1[1]) <= set(done1) and set(done1) <= everything
    assert set(done1) >= set(seen1.get(0, []))
    rank1_shard = {k for k, r in owner.items() if r == 1}
    assert set(done1) & rank1_shard == set(seen1[1]) != rank1_shard     # rank 1's shard: part done

    # 2. the same command again: only the missing images are predicted, each once, by its owner
    spy2 = tmp_path / "spy2"
    out = tmp_path / "all.csv"
    second = _torchrun(tmp_path, root, store_target, spy2, out=out)
    assert second.returncode == 0, second.stderr[-3000:]
    seen2 = _spy_keys(spy2)
    new = [k for keys in seen2.values() for k in keys]
    assert len(new) == len(set(new))                                     # nothing stored twice
    assert not set(new) & set(done1)                                     # nothing done before redone
    assert set(new) | set(done1) == everything                           # and nothing left out
    for rank, keys in seen2.items():
        assert all(owner[k] == rank for k in keys)                       # disjoint shards, by the rule
    done2 = _stored(store_target)
    assert set(done2) == everything
    assert {k: done2[k] for k in done1} == done1                         # earlier rows not rewritten
    lines = _shard_lines(second.stderr)
    assert set(lines) == {"0/2", "1/2"}
    for rank in (0, 1):
        n_done = sum(1 for k in done1 if owner[k] == rank)
        n_all = sum(1 for r in owner.values() if r == rank)
        assert f"{n_all} images: {n_done} already done, {n_all - n_done} predicted, 0 failed" in lines[f"{rank}/2"]
    # rank 0 wrote the whole archive from the store: 30 image rows, 15 study rows, no errors
    rows = _rows(out)
    images = [r for r in rows if r["level"] == "image"]
    assert sorted(r["path"] for r in images) == sorted(everything)
    assert len([r for r in rows if r["level"] == "study"]) == 15 and not any(r["error"] for r in rows)
    assert all(float(r["p_abd"]) + float(r["p_chest"]) == pytest.approx(1) for r in images)


# --------------------------------------------------------------------------- --shard K/N


def test_shard_k_of_n_without_torchrun_matches_a_plain_run(tmp_path, tiny_model, archive, capsys):
    from radview.cli import main

    root = tmp_path / "archive"
    db = tmp_path / "preds.sqlite"
    plain = tmp_path / "plain.csv"
    assert main(["predict", str(root), "--model", MODEL, "--device", "cpu", "--out", str(plain)]) == 0
    outs = []
    try:
        for k in (0, 1):
            outs.append(tmp_path / f"shard{k}.json")
            assert main(["predict", str(root), "--model", MODEL, "--device", "cpu", "--shard", f"{k}/2",
                         "--store", str(db), "--out", str(outs[-1])]) == 0
        err = capsys.readouterr().err
        again = main(["predict", str(root), "--model", MODEL, "--device", "cpu", "--shard", "1/2",
                      "--store", str(db), "--out", str(tmp_path / "again.json")])
        err_again = capsys.readouterr().err
    finally:
        close_stores()
    assert again == 0
    parts = [json.loads(o.read_text()) for o in outs]
    img = [{r["path"]: r for r in p if r["level"] == "image"} for p in parts]
    assert not set(img[0]) & set(img[1]) and set(img[0]) | set(img[1]) == _all_keys(archive)
    owner = _owner(archive, root)
    assert all(owner[k] == i for i in (0, 1) for k in img[i])
    # the same numbers as one plain `radview predict` over the whole folder
    ref = {r["path"]: r for r in _rows(plain) if r["level"] == "image"}
    for part in img:
        for k, r in part.items():
            assert r["p_chest"] == pytest.approx(float(ref[k]["p_chest"]), abs=1e-6)
            assert r["predicted"] == ref[k]["predicted"]
    studies = {r["study"] for p in parts for r in p if r["level"] == "study"}
    assert studies == {os.path.relpath(k, root) for k in archive}   # MURA study keys: relative
    n1 = len(img[1])
    assert f"{n1} images: 0 already done, {n1} predicted" in err
    assert f"{n1} images: {n1} already done, 0 predicted" in err_again
    assert json.loads((tmp_path / "again.json").read_text()) == parts[1]
    assert set(_stored(db)) == _all_keys(archive)


def test_shard_errors_are_one_line(tmp_path, tiny_model, archive, capsys, monkeypatch):
    from radview.cli import main

    root = str(tmp_path / "archive")
    assert main(["predict", root, "--model", MODEL, "--shard", "2/2"]) == 2
    assert "0 <= K < N" in capsys.readouterr().err
    assert main(["predict", root, "--model", MODEL, "--shard", "0/2", "--cam-dir", str(tmp_path / "c")]) == 2
    assert "--cam-dir is not available" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["predict", root, "--model", MODEL, "--shard", "0/2"]) == 2
    assert "under torchrun (WORLD_SIZE=2)" in capsys.readouterr().err



def test_shards_route_studies_as_a_plain_predict_does(tmp_path, capsys):
    """The bundled region model (chest/abdomen) on stripes: routing skips every study in both paths,
    with the same rows; --all-studies runs them all through the store."""
    from radview.cli import main

    root = tmp_path / "stripes"
    synthetic.stripes(root, n_h=2, n_v=2, n_checker=0, size=32)
    plain, dist, every = tmp_path / "plain.json", tmp_path / "dist.json", tmp_path / "every.json"
    db = tmp_path / "s.sqlite"
    try:
        assert main(["predict", str(root), "--model", "region", "--device", "cpu", "--out", str(plain)]) == 0
        assert main(["predict", str(root), "--model", "region", "--device", "cpu", "--shard", "0/1",
                     "--store", str(db), "--out", str(dist)]) == 0
        assert "4 skipped by routing" in capsys.readouterr().err
        assert main(["predict", str(root), "--model", "region", "--device", "cpu", "--shard", "0/1",
                     "--store", str(db), "--out", str(every), "--all-studies"]) == 0
    finally:
        close_stores()
    a, b = json.loads(plain.read_text()), json.loads(dist.read_text())
    assert len(a) == 4 and all(r["level"] == "skipped" for r in a)
    assert sorted(a, key=lambda r: r["study"]) == sorted(b, key=lambda r: r["study"])
    rows = json.loads(every.read_text())
    assert sorted(r["level"] for r in rows) == ["image"] * 4 + ["study"] * 4
    assert len(_stored_model(db, "region")) == 4


def _stored_model(target, model: str) -> list[str]:
    with LabelStore(target) as s:
        return [r[0] for r in s._db.read(lambda c: c.execute(
            "SELECT key FROM predictions WHERE model = ?", (model,)).fetchall())]
