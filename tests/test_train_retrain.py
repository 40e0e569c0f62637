"""Retraining end to end on a tiny model and a tiny generated data set (CPU, seconds):
corrections move predictions toward them, a broken run is not promoted, rollback restores the
previous predictions, a cancelled run leaves no version behind."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from radview import paths
from radview.models.manifest import manifest_from_dict, write_manifest
from radview.store import LabelStore
from radview.train import synthetic, versions
from radview.train.run import TrainResult, retrain

#: the tiny model's own recipe (manifest training.recipe): fast and decisive
RECIPE = {"lr": 1e-2, "lr_mult": 10, "batch_size": 8, "patience": 3, "epochs": 4, "freeze_epochs": 1,
          "bn_momentum": 0.3}


def _run(gen) -> TrainResult:
    res = None
    for p in gen:
        if isinstance(p.payload, TrainResult):
            res = p.payload
    assert res is not None
    return res


def _install_manifest(name="tiny", **extra):
    m = manifest_from_dict(synthetic.tiny_manifest(name, training={"recipe": RECIPE}, **extra))
    write_manifest(m, paths.user_models_dir() / name)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A data set and a tiny model trained on its source labels (checkerboards filed as abd),
    kept as a template user-models folder that each test copies into its own RADVIEW_HOME."""
    tmp = tmp_path_factory.mktemp("tiny_base")
    root = tmp / "data"
    # 160 images: the seeded 20 % locked test split holds >= 30 of them (the promotion minimum)
    files = synthetic.stripes(root, n_h=60, n_v=60, n_checker=40, size=48)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADVIEW_HOME", str(tmp / "home"))
        _install_manifest()
        res = _run(retrain("tiny", root, epochs=10, freeze_epochs=0, lr_mult=1, patience=20, bn_momentum=0.5,
                           use_store=False))
        assert res.promoted and res.metrics["kappa"] > 0.6, res.metrics
    return root, files, tmp / "home" / "models", res


@pytest.fixture
def tiny(base, radview_home):
    root, files, models, res = base
    dest = paths.user_models_dir()
    shutil.rmtree(dest)
    shutil.copytree(models, dest)
    from radview.models.registry import clear_cache

    clear_cache()
    return root, files, res


def _probs(paths_, version_check=None):
    from radview.models.engine import iter_predict
    from radview.models.registry import load_model

    model = load_model("tiny", "cpu")
    if version_check is not None:
        assert model.version == version_check
    preds = list(iter_predict([str(p) for p in paths_], model, gate=False))
    assert all(p.error is None for p in preds)
    return np.asarray([p.probs[1] for p in preds])


def test_corrections_move_predictions_toward_them(tiny):
    root, files, base_res = tiny
    before = _probs(files["c"], base_res.version)
    with LabelStore() as store:
        events = [store.set_label(str(p), "chest", level="image", reason="wrong_label").id for p in files["c"]]
        res = _run(retrain("tiny", root, store=store))
        pending = {e.id for e in store.pending()}
        consumed = set(store.consumed_by(res.run_id))
    assert res.version == "1.0.0+r2" and res.parent_version == base_res.version
    after = _probs(files["c"], res.version if res.promoted else None) if res.promoted else None
    if after is None:  # a candidate: measure its weights through a manual promotion
        versions.promote("tiny", res.version)
        after = _probs(files["c"], res.version)
    # every corrected image moved toward 'chest', and clearly on average
    assert (after > before).mean() >= 0.8, (before, after)
    assert after.mean() - before.mean() > 0.3, (before.mean(), after.mean())
    # the locked test split holds corrected checkerboards: the new version is better there
    assert res.metrics["kappa"] > res.parent_metrics["kappa"]
    assert res.promoted and versions.current_version("tiny") == res.version
    # only the training split's corrections are consumed; the val/test ones stay queued
    from radview.train.data import read_splits, relative_key

    split = read_splits(versions.splits_path("tiny"))
    keys = {e: store_key for e, store_key in zip(events, (str(p) for p in files["c"]))}
    train = {e for e, k in keys.items() if split[relative_key(k, str(root))] == "train"}
    assert train and train != set(events)
    assert set(res.consumed) == train == consumed and not (pending & train)
    assert set(events) - train <= pending
    assert res.comparison["ci_low"] >= 0 and "lower bound >= -0" in res.reason
    card = (Path(res.folder) / "MODEL_CARD.md").read_text()
    assert "Promoted to current" in card and res.data_hash in card and base_res.version in card
    manifest = json.loads((Path(res.folder) / "manifest.json").read_text())
    assert manifest["training"]["parent_version"] == base_res.version
    assert manifest["training"]["data_hash"] == res.data_hash
    assert manifest["metrics"]["locked_test"]["kappa"] == res.metrics["kappa"]
    assert manifest["metrics"]["parent_locked_test"]["kappa"] == res.parent_metrics["kappa"]


def test_broken_run_is_not_promoted(tiny):
    root, files, base_res = tiny
    from radview.train.data import read_splits, relative_key

    test_groups = {g for g, s in read_splits(versions.splits_path("tiny")).items() if s == "test"}
    assert test_groups
    with LabelStore() as store:
        flipped = 0
        for cls, kinds in (("abd", "hc"), ("chest", "v")):
            for k in kinds:
                for p in files[k]:
                    if relative_key(str(p), str(root)) not in test_groups:
                        store.set_label(str(p), "chest" if cls == "abd" else "abd", level="image")
                        flipped += 1
        n_pending = len(store.pending())
        res = _run(retrain("tiny", root, store=store))
        assert len(store.pending()) == n_pending == flipped  # nothing consumed by a candidate
    assert not res.promoted and "regression" in res.reason
    assert res.metrics["kappa"] < res.parent_metrics["kappa"]
    # the paired comparison refused it: the whole 95% interval of the difference is below 0
    assert res.comparison["n"] >= 30 and res.comparison["ci_high"] < 0, res.comparison
    assert versions.current_version("tiny") == base_res.version
    info = {v.version: v for v in versions.list_versions("tiny")}
    assert info[res.version].status == "candidate" and info[base_res.version].status == "current"
    card = (Path(res.folder) / "MODEL_CARD.md").read_text()
    assert "Kept as a candidate" in card and "paired bootstrap" in card and "McNemar" in card


def test_rollback_restores_previous_predictions(tiny):
    root, files, base_res = tiny
    some = files["h"][:4] + files["v"][:4] + files["c"][:4]
    before = _probs(some, base_res.version)
    res = _run(retrain("tiny", root, use_store=False, promote=False, epochs=1, freeze_epochs=0, lr=3e-2))
    assert not res.promoted and versions.current_version("tiny") == base_res.version
    versions.promote("tiny", res.version)
    changed = _probs(some, res.version)
    assert not np.allclose(changed, before)
    assert versions.rollback("tiny") == base_res.version
    np.testing.assert_array_equal(_probs(some, base_res.version), before)
    statuses = {v.version: v.status for v in versions.list_versions("tiny")}
    assert statuses[res.version] == "candidate" and statuses[base_res.version] == "current"


def test_cancel_mid_epoch_leaves_no_half_written_version(tiny):
    root, files, base_res = tiny
    from radview.train.loop import Step

    vroot = versions.versions_root("tiny")
    before = sorted(os.listdir(vroot))
    with LabelStore() as store:
        store.set_label(str(files["c"][0]), "chest", level="image")
        gen = retrain("tiny", root, store=store, epochs=3)
        for p in gen:
            if isinstance(p.payload, Step) and p.payload.epoch == 2 and p.payload.batch == 2:
                break
        gen.close()
        assert len(store.pending()) == 1
    assert sorted(os.listdir(vroot)) == before
    assert not list(vroot.glob(".stage-*"))
    assert versions.current_version("tiny") == base_res.version


def test_rollback_with_nothing_before_is_a_clear_error(radview_home, tmp_path):
    _install_manifest("lonely")
    with pytest.raises(versions.VersionError, match="nothing to roll back"):
        versions.rollback("lonely")


def test_feature_gate_is_refit_and_imported_weights_survive_rollback(tiny, tmp_path):
    """A parent with an out-of-domain feature gate (imported by hand, not made by a run): the new
    version carries class means of its own features; rollback returns to the imported weights."""
    import torch

    from radview.models import arch
    from radview.models.domain import FeatureGate
    from radview.models.engine import iter_predict
    from radview.models.manifest import DomainSpec
    from radview.models.recipe import save_model_folder
    from radview.models.registry import import_model, load_model

    root, files, base_res = tiny
    parent = load_model("tiny", "cpu")
    feats = []
    hook = arch.head_module(parent.module, "mobilenet_v3_small").register_forward_pre_hook(
        lambda _m, a: feats.append(a[0].flatten(1)))
    from radview.io import load_frame
    from radview.models.preprocess import prepare

    imgs = files["h"][:6] + files["v"][:6]
    x = torch.from_numpy(np.stack([prepare(load_frame(str(p)), parent.manifest.input)[0] for p in imgs]))
    with torch.inference_mode():
        parent.module(x)
    hook.remove()
    gate = FeatureGate.fit(torch.cat(feats).numpy(), np.asarray([0] * 6 + [1] * 6), 0.5, ("abd", "chest"))
    gated = parent.manifest.with_changes(domain=DomainSpec(gate_model="self"), gate={"threshold": 0.5})
    save_model_folder(parent.module, gated, tmp_path / "gated", gate=gate)
    import_model(tmp_path / "gated", force=True)
    imported = load_model("tiny", "cpu")
    assert imported.gate is not None
    ref_probs = _probs(files["c"][:4])

    res = _run(retrain("tiny", root, use_store=False, promote=False, epochs=2))
    versions.promote("tiny", res.version)
    new = load_model("tiny", "cpu")
    assert new.version == res.version and new.gate is not None
    assert not np.allclose(new.gate.class_means, imported.gate.class_means)
    assert new.manifest.gate["threshold"] == pytest.approx(new.gate.threshold)
    preds = list(iter_predict([str(p) for p in files["h"][:5] + files["v"][:5]], new, gate=True))
    assert all(p.in_domain for p in preds), [p.domain_reason for p in preds]
    assert "refit" in (Path(res.folder) / "MODEL_CARD.md").read_text()
    # one step back: the hand-imported, gated weights again
    versions.rollback("tiny")
    back = load_model("tiny", "cpu")
    assert back.gate is not None and np.allclose(back.gate.class_means, imported.gate.class_means)
    np.testing.assert_array_equal(_probs(files["c"][:4]), ref_probs)


def test_a_small_locked_test_split_refuses_promotion(radview_home, tmp_path):
    """Fewer than 30 locked test items: the run trains, but keeps the version as a candidate
    and says why (no point estimate on a handful of images decides)."""
    root = tmp_path / "small"
    synthetic.stripes(root, n_h=12, n_v=12, n_checker=4, size=32)
    _install_manifest("small")
    res = _run(retrain("small", root, use_store=False, epochs=1, freeze_epochs=0))
    assert not res.promoted and "promotion needs at least 30" in res.reason
    assert versions.current_version("small") == "1.0.0" != res.version  # the installed one stays


def test_rollback_returns_the_consumed_corrections_to_the_queue(tiny):
    root, files, base_res = tiny
    from radview.train.run import rollback_model

    with LabelStore() as store:
        for p in files["c"]:
            store.set_label(str(p), "chest", level="image")
        res = _run(retrain("tiny", root, store=store))
        assert res.promoted and res.consumed
        assert not set(res.consumed) & {e.id for e in store.pending()}
        now, back = rollback_model("tiny", store=store)
        assert now == base_res.version and back == len(res.consumed)
        assert set(res.consumed) <= {e.id for e in store.pending()}
