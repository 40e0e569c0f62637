"""`radview train` and `radview lr-find` from the command line (in process, tiny model)."""
from __future__ import annotations

import json

import pytest

from radview import paths
from radview.cli import main
from radview.models.manifest import manifest_from_dict, write_manifest
from radview.train import synthetic


@pytest.fixture
def tiny(tmp_path, radview_home):
    root = tmp_path / "data"
    # 160 images: the locked test split (20 %) holds the 30 items promotion needs
    synthetic.stripes(root, n_h=80, n_v=80, n_checker=0, size=32)
    write_manifest(manifest_from_dict(synthetic.tiny_manifest(training={"recipe": {"batch_size": 8}})),
                   paths.user_models_dir() / "tiny")
    return root


def test_train_versions_promote_rollback(tiny, capsys):
    args = ["train", "--model", "tiny", "--data", str(tiny), "--epochs", "1", "--freeze-epochs", "0",
            "--device", "cpu"]
    assert main(args + ["--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["promoted"] and first["version"] == "1.0.0+r1" and first["metric"] == "kappa"
    assert main(args + ["--no-promote", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1.0.0+r2: kept as a candidate" in out and "kappa on the locked test split" in out
    assert main(["train", "--model", "tiny", "--versions"]) == 0
    rows = dict(line.split("\t")[:2] for line in capsys.readouterr().out.splitlines())
    assert rows["1.0.0+r1"] == "current" and rows["1.0.0+r2"] == "candidate"
    assert main(["train", "--model", "tiny", "--promote", "1.0.0+r2"]) == 0
    assert "now 1.0.0+r2" in capsys.readouterr().out
    assert main(["train", "--model", "tiny", "--rollback"]) == 0
    assert "now 1.0.0+r1" in capsys.readouterr().out
    from radview.models.registry import get_model_info

    assert get_model_info("tiny").version == "1.0.0+r1"


def test_train_errors_are_one_line(tiny, tmp_path, capsys):
    assert main(["train", "--model", "nosuch", "--data", str(tiny)]) == 2
    assert "no such model" in capsys.readouterr().err
    assert main(["train", "--model", "tiny", "--data", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["train", "--model", "tiny"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["train", "--model", "tiny", "--rollback"]) == 2
    assert "nothing to roll back" in capsys.readouterr().err


def test_lr_find_cli(tiny, tmp_path, capsys):
    out = tmp_path / "curve.csv"
    assert main(["lr-find", "--model", "tiny", "--data", str(tiny), "--num-it", "20", "--device", "cpu",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "suggested learning rate:" in text
    rows = out.read_text().splitlines()
    assert rows[0] == "lr,loss" and len(rows) >= 8
