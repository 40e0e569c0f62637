"""Real data: a few corrected labels retrain the bundled region model on CPU, and the new card
records the before/after metrics on the locked test split (the data set's own val folder).
Skips where ../shared/data or the bundled region model (weights installed) is absent."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from radview.store import LabelStore
from radview.train.run import TrainResult, retrain

pytestmark = pytest.mark.shared


@pytest.fixture
def openi(shared_data):
    from radview.models.registry import ModelError, get_model_info

    data = shared_data / "openi-chest-abdomen"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    try:
        info = get_model_info("region")
    except ModelError:
        pytest.skip("the bundled region model is not there yet")
    if not info.installed:
        pytest.skip(f"region model: {info.status}")
    return data, info


def _corrections(store, data: Path):
    """Three readers' corrections on training images: two confirmed labels (one written at study
    level) and one image left out of training."""
    rows = [r.split(",") for r in (data / "index.csv").read_text().splitlines()[1:]]
    train = [(str(data / p), lab) for p, split, lab, _sha in rows if split == "train"]
    chest = [p for p, lab in train if lab == "chest"]
    abd = [p for p, lab in train if lab == "abd"]
    ids = [store.set_label(chest[0], "chest", level="image", reason="other", note="checked").id,
           store.set_label(abd[0], "abd", level="study", reason="other", note="checked").id,
           store.exclude(abd[1], level="image", reason="bad_image").id]
    return ids, abd[1]


def _check(res: TrainResult, info, ids):
    assert res.parent_version == info.version and res.version.startswith(info.version.split("+")[0] + "+r")
    for key in ("accuracy", "kappa", "n_images"):
        assert res.parent_metrics[key] is not None and res.metrics[key] is not None
    assert res.parent_metrics["n_images"] == res.metrics["n_images"] == 9  # the val folder, locked
    card = (Path(res.folder) / "MODEL_CARD.md").read_text()
    assert f"current ({info.version})" in card and f"new ({res.version})" in card
    row = next(line for line in card.splitlines() if line.startswith("| accuracy"))
    assert f"{res.parent_metrics['accuracy']:.4f}" in row and f"{res.metrics['accuracy']:.4f}" in row
    run = json.loads((Path(res.folder) / "run.json").read_text())
    assert set(ids) <= set(run["events"]) and run["n_excluded"] == 1
    assert run["split_source"] == "layout:val"
    assert set(res.consumed) == (set(run["events"]) if res.promoted else set())


def test_openi_region_quick_retrain(openi):
    """The suite's fast variant: a subset of the training split, head + batch norm only."""
    data, info = openi
    with LabelStore() as store:
        ids, excluded = _corrections(store, data)
        res = None
        for p in retrain("region", data, store=store, device="cpu", freeze_epochs=1, epochs=0, max_items=12,
                         batch_size=8):
            if isinstance(p.payload, TrainResult):
                res = p.payload
    assert res is not None
    _check(res, info, ids)


@pytest.mark.slow
def test_openi_region_full_retrain(openi):
    """The whole training split, 1 frozen + 2 unfrozen epochs (a few minutes on 2 CPU cores)."""
    data, info = openi
    with LabelStore() as store:
        ids, _excluded = _corrections(store, data)
        res = None
        for p in retrain("region", data, store=store, device="cpu", freeze_epochs=1, epochs=2):
            if isinstance(p.payload, TrainResult):
                res = p.payload
    assert res is not None
    _check(res, info, ids)
    print(f"\nregion {res.parent_version} -> {res.version}: {res.metric} {res.parent_metrics[res.metric]} -> "
          f"{res.metrics[res.metric]}, accuracy {res.parent_metrics['accuracy']} -> {res.metrics['accuracy']}, "
          f"promoted={res.promoted}, {res.seconds:.0f} s")
