"""A MURA-layout data set: study-level labels, per-study-type weighted BCE, patients never split,
MURA's own valid folder as the locked test split, metrics per study."""
from __future__ import annotations

import json
from pathlib import Path

from radview import paths
from radview.models.manifest import manifest_from_dict, write_manifest
from radview.store import LabelStore
from radview.train import synthetic
from radview.train.run import TrainResult, retrain


def test_mura_layout_retrain(tmp_path, radview_home):
    root = tmp_path / "MURA-v1.1"
    studies = synthetic.mura(root, {"XR_WRIST": 6, "XR_ELBOW": 4}, views=2, size=32)
    m = synthetic.tiny_manifest("mura-tiny", classes=("normal", "abnormal"),
                                training={"recipe": {"batch_size": 4, "val_fraction": 0.2}})
    write_manifest(manifest_from_dict(m), paths.user_models_dir() / "mura-tiny")
    flipped = next(s for s in studies if "/train/XR_ELBOW/" in s and s.endswith("negative"))
    key = "train/" + "/".join(Path(flipped).parts[-3:])  # the scan's MURA study key
    res = None
    with LabelStore() as store:
        ev = store.set_label(key, "abnormal", level="study", reason="wrong_label")
        for p in retrain("mura-tiny", root, store=store, epochs=1, freeze_epochs=0, device="cpu"):
            if isinstance(p.payload, TrainResult):
                res = p.payload
    assert res is not None and res.metric == "kappa"
    run = json.loads((Path(res.folder) / "run.json").read_text())
    assert run["split_source"] == "layout:valid"
    assert ev.id in run["events"] and run["n_corrected"] == 2  # both views of the corrected study
    # per study type: w0 = A/(A+N), w1 = N/(A+N) over the training studies (corrections applied)
    w = run["weights"]
    assert set(w) == {"XR_WRIST", "XR_ELBOW"} and all(abs(a + b - 1) < 1e-6 for a, b in w.values())
    counts = run["counts"]
    assert sum(counts["test"].values()) == 2 * 5  # valid: 3 wrist + 2 elbow studies, 2 views each
    assert res.metrics["n_studies"] == 5 and res.metrics["n_images"] == 10
    splits = json.loads((paths.user_models_dir() / ".versions" / "mura-tiny" / "splits.json").read_text())
    assert all(g.startswith("patient:") for g in splits["groups"])
