"""Distributed training: the same retrain entry point in 2 CPU processes (gloo), as torchrun runs
it: ranks see disjoint data each epoch, only rank 0 writes, and the saved weights are exactly what
every rank holds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radview import paths
from radview.models.manifest import manifest_from_dict, write_manifest
from radview.train import synthetic

ROOT = Path(__file__).resolve().parent.parent


def _worker(rank: int, root: str, out: str) -> None:
    from radview.train.run import TrainResult, retrain

    res = None
    # min_test=2: DDP mechanics here; the promotion gate is tested in test_train_retrain.py
    for p in retrain("tiny", root, use_store=False, epochs=2, freeze_epochs=1, batch_size=4, device="cpu",
                     bn_momentum=0.3, min_test=2):
        if isinstance(p.payload, TrainResult):
            res = p.payload
    Path(out, f"rank{rank}.json").write_text(json.dumps({
        "rank": res.rank, "world": res.world_size, "version": res.version, "folder": res.folder,
        "seen": [list(e) for e in res.seen], "digest": res.state_digest}))


def test_two_cpu_processes_train_one_model(tmp_path, radview_home):
    import torch

    from radview.train.data import read_splits, relative_key
    from radview.train.ddp import spawn_local
    from radview.train.run import state_digest
    from radview.train.versions import list_versions, splits_path

    root = tmp_path / "data"
    synthetic.stripes(root, n_h=9, n_v=9, n_checker=0, size=32)
    write_manifest(manifest_from_dict(synthetic.tiny_manifest()), paths.user_models_dir() / "tiny")
    out = tmp_path / "out"
    out.mkdir()
    spawn_local(2, _worker, str(root), str(out))
    r0, r1 = (json.loads((out / f"rank{i}.json").read_text()) for i in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"], r1["world"]) == (0, 1, 2, 2)
    # only rank 0 wrote a version
    assert r0["version"] and r1["version"] is None
    assert [v.version for v in list_versions("tiny") if v.status == "current"] == [r0["version"]]
    # every epoch: disjoint shares of equal length covering the training split (minus the odd one)
    splits = read_splits(splits_path("tiny"))
    n_train = sum(1 for s in splits.values() if s == "train")
    assert len(r0["seen"]) == len(r1["seen"]) == 3
    for a, b in zip(r0["seen"], r1["seen"]):
        assert a and len(a) == len(b) and not set(a) & set(b)
        assert len(set(a) | set(b)) == n_train - n_train % 2
    assert r0["seen"][1] != r0["seen"][2]  # reshuffled each epoch
    # the saved weights are what each rank holds
    saved = torch.load(Path(r0["folder"]) / "weights.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert state_digest(saved) == r0["digest"] == r1["digest"]
    assert all(relative_key(k, str(root)) == k for k in splits)  # stored keys are relative


def test_torchrun_runs_the_train_command(tmp_path, radview_home):
    """`torchrun --standalone --nproc_per_node 2 -m radview train ...`: one JSON answer (rank 0)."""
    root = tmp_path / "data"
    synthetic.stripes(root, n_h=8, n_v=8, n_checker=0, size=32)
    # min_test 2 in the recipe: torchrun mechanics here, the promotion gate in test_train_retrain.py
    write_manifest(manifest_from_dict(synthetic.tiny_manifest(training={"recipe": {"batch_size": 4,
                                                                                   "min_test": 2}})),
                   paths.user_models_dir() / "tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RADVIEW_HOME": str(radview_home)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "radview", "train", "--model", "tiny", "--data", str(root), "--epochs", "1",
                           "--device", "cpu", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert res["version"] == "1.0.0+r1" and res["promoted"]
    from radview.train.versions import list_versions

    assert [v.version for v in list_versions("tiny") if not v.version.endswith("+import")] == ["1.0.0+r1"]
    assert json.loads((Path(res["folder"]) / "run.json").read_text())["world_size"] == 2
