"""Detection retraining: boxes drawn as corrections on plain PNGs are the training targets; the
torchvision detector's own losses train it; box metrics land on the card."""
from __future__ import annotations

import math
from pathlib import Path

from radview import paths
from radview.models.manifest import manifest_from_dict, write_manifest
from radview.store import LabelStore
from radview.train import synthetic
from radview.train.loop import EpochEnd
from radview.train.run import TrainResult, retrain


def test_box_corrections_train_a_detector(tmp_path, radview_home):
    root = tmp_path / "data"
    boxes = synthetic.boxes(root, n_pos=10, n_neg=5, size=64)
    write_manifest(manifest_from_dict(synthetic.tiny_manifest("det", task="detection",
                                                              classes=("background", "opacity"), size=64)),
                   paths.user_models_dir() / "det")
    ends, res = [], None
    with LabelStore() as store:
        events = {store.set_boxes(str(p), b).id for p, b in boxes.items()}
        # min_test=2: this test is about the detector's losses and box targets, not the promotion
        # gate (tests/test_train_retrain.py holds that one to its 30 locked test items)
        for p in retrain("det", root, store=store, epochs=3, lr=1e-2, lr_mult=1, batch_size=4, patience=5,
                         min_test=2):
            if isinstance(p.payload, EpochEnd):
                ends.append(p.payload)
            if isinstance(p.payload, TrainResult):
                res = p.payload
        pending = {e.id for e in store.pending()}
    assert res is not None and res.promoted
    # the training split's box corrections are consumed; those of validation and locked test
    # images were used as truth only and stay in the queue
    from radview.train.data import read_splits
    from radview.train.versions import splits_path

    split = read_splits(splits_path("det"))
    by_event = {e: split[Path(p).name] for e, p in zip(sorted(events), boxes)}
    train = {e for e, s in by_event.items() if s == "train"}
    assert train and set(res.consumed) == train and pending == events - train
    assert len(ends) == 3 and all(math.isfinite(e.train_loss) for e in ends)
    assert ends[-1].train_loss < ends[0].train_loss  # the detector's losses go down
    assert {"kappa", "box_recall50", "box_precision50", "n_images"} <= set(res.metrics)
    assert res.metrics["n_images"] >= 2
    card = (Path(res.folder) / "MODEL_CARD.md").read_text()
    assert "box_recall50" in card and "boxes" in card
    from radview.models.registry import load_model

    assert load_model("det", "cpu").version == res.version
