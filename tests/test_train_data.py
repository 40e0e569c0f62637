"""The training set: corrections win, exclusions leave, splits are seeded, stored and locked,
the data hash follows labels and files, MURA's study-type weights. No model training here."""
from __future__ import annotations

import json

import pytest

from radview.models.manifest import manifest_from_dict
from radview.store import LabelStore
from radview.train import synthetic
from radview.train.config import TrainConfig
from radview.train.data import DataError, assign_splits, build_dataset, read_splits, write_splits
from radview.types import Progress


def _build(root, store=None, splits=None, config=TrainConfig(), task="binary", classes=("abd", "chest")):
    m = manifest_from_dict(synthetic.tiny_manifest(task=task, classes=classes))
    out = None
    for p in build_dataset(root, m, store, config, splits_file=splits):
        assert isinstance(p, Progress)
        out = p.payload if p.payload is not None else out
    return out


@pytest.fixture
def stripes(tmp_path):
    root = tmp_path / "data"
    return root, synthetic.stripes(root, n_h=12, n_v=12, n_checker=6, size=16)


def test_source_labels_splits_and_counts(stripes):
    root, files = stripes
    d = _build(root)
    assert len(d.samples) == 30
    by_path = {s.ref.path: s for s in d.samples}
    assert all(by_path[str(p)].target == 0 for p in files["h"] + files["c"])
    assert all(by_path[str(p)].target == 1 for p in files["v"])
    counts = d.counts()
    assert sum(sum(c.values()) for c in counts.values()) == 30
    # stratified: both classes in the locked test split, ~20 % of the groups
    assert set(counts["test"]) == {"abd", "chest"}
    assert 4 <= len(d.split("test")) <= 8
    assert d.split_source == "seeded"
    assert len(d.data_hash) == 64 and d.used_events == ()


def test_corrections_win_and_exclusions_leave(stripes):
    root, files = stripes
    with LabelStore() as store:
        fixes = [store.set_label(str(p), "chest", level="image", reason="wrong_label") for p in files["c"]]
        ex = store.exclude(str(files["h"][0]), level="image")
        # a study-level correction on a one-file study, later than the image one, wins
        later = store.set_label(str(files["c"][0]), "abd", level="study", reason="ambiguous")
        d = _build(root, store)
        pending = {e.id for e in store.pending()}
    by_path = {s.ref.path: s for s in d.samples}
    assert str(files["h"][0]) not in by_path and d.n_excluded == 1
    assert by_path[str(files["c"][0])].target == 0  # the later study-level event
    assert all(by_path[str(p)].target == 1 and by_path[str(p)].corrected for p in files["c"][1:])
    assert d.n_corrected == len(files["c"])
    used = set(d.used_events)
    # only corrections of training-split items (and the exclusion, applied) are consumed; those of
    # validation and locked-test items are truth there, never learnt: they stay in the queue
    train = {k for smp in d.split("train") for k in (smp.ref.key, smp.study)}
    events = [*fixes, later]
    assert used == {e.id for e in events if e.key in train} | {ex.id} and used <= pending
    assert any(e.key not in train for e in events)  # the test can fail: some were not training


def test_the_models_queue_holds_only_its_label_space(stripes):
    """A correction in another label space (RSNA's normal/pneumonia) on an item of the data set
    is neither a training label nor an event the run consumes."""
    root, files = stripes
    d0 = _build(root)
    train_paths = [smp.ref.path for smp in d0.split("train")]
    with LabelStore() as store:
        own = store.set_label(train_paths[0], "chest", level="image", space="folder:data")
        other = store.set_label(train_paths[1], "pneumonia", level="image", space="rsna-pneumonia")
        d = _build(root, store)
    assert own.id in d.used_events and other.id not in d.used_events
    assert train_paths[1] not in {smp.ref.path for smp in d.samples}
    assert any(train_paths[1] in x and "not comparable" in x for x in d.dropped)


def test_unknown_labels_are_reported_and_dropped(stripes):
    root, files = stripes
    with LabelStore() as store:
        store.set_label(str(files["v"][0]), "elbow", level="image")
        d = _build(root, store)
    assert str(files["v"][0]) not in {s.ref.path for s in d.samples}
    assert any("elbow" in x and str(files["v"][0]) in x for x in d.dropped)


def test_splits_are_stored_and_the_test_split_stays_locked(stripes, tmp_path):
    root, _files = stripes
    splits = tmp_path / "splits.json"
    d1 = _build(root, splits=splits)
    write_splits(splits, d1.stats["assignment"], 0, d1.split_source)
    test1 = {s.ref.path for s in d1.split("test")}
    # more data arrives, and a different seed is asked for: stored items keep their split
    synthetic.stripes(root, n_h=10, n_v=10, n_checker=0, size=16, seed=1)
    d2 = _build(root, splits=splits, config=TrainConfig(seed=7))
    test2 = {s.ref.path for s in d2.split("test")}
    assert test1 <= test2
    old = {s.ref.path: s.split for s in d1.samples}
    assert all(s.split == old[s.ref.path] for s in d2.samples if s.ref.path in old)
    assert len(d2.samples) == 50 and d2.data_hash != d1.data_hash
    stored = read_splits(splits)
    assert stored and set(stored.values()) <= {"train", "val", "test"}


def test_same_data_same_hash_and_a_label_change_changes_it(stripes):
    root, files = stripes
    assert _build(root).data_hash == _build(root).data_hash
    with LabelStore() as store:
        store.set_label(str(files["v"][3]), "abd", level="image")
        assert _build(root, store).data_hash != _build(root).data_hash


def test_layout_heldout_folder_is_the_locked_test_split(tmp_path):
    root = tmp_path / "data"
    synthetic.stripes(root, n_h=8, n_v=8, n_checker=0, size=16, split="train")
    held = synthetic.stripes(root, n_h=3, n_v=3, n_checker=0, size=16, split="val", seed=3)
    d = _build(root)
    assert d.split_source == "layout:val"
    assert {s.ref.path for s in d.split("test")} == {str(p) for v in held.values() for p in v}
    assert d.split("val")  # early-stopping split carved from train


def test_assign_splits_groups_never_straddle():
    groups = {f"patient:{i}": ("", i % 2) for i in range(40)}
    a, source = assign_splits(groups, TrainConfig(seed=3))
    assert source == "seeded" and set(a) == set(groups)
    assert sum(v == "test" for v in a.values()) == 8
    b, _ = assign_splits(groups, TrainConfig(seed=3))
    assert a == b
    c, _ = assign_splits(groups, TrainConfig(seed=4))
    assert c != a


def test_one_class_only_is_a_clear_error(tmp_path):
    root = tmp_path / "data"
    synthetic.stripes(root, n_h=6, n_v=6, n_checker=0, size=16)
    with pytest.raises(DataError, match="no labelled image"):
        _build(root, classes=("cat", "dog"))


def test_mura_study_type_weights():
    from radview.train.data import Sample
    from radview.train.loop import StudyTypeWeights
    from radview.types import ImageRef

    def s(i, stype, y, study=None):
        return Sample(ImageRef(f"/x/{i}.png"), study or f"{stype}/s{i}", stype, f"g{i}", "train", y)

    # wrist: 3 abnormal, 1 normal study (the abnormal one has two views); elbow: 1 and 1
    samples = [s(0, "XR_WRIST", 1, "w0"), s(1, "XR_WRIST", 1, "w0"), s(2, "XR_WRIST", 1), s(3, "XR_WRIST", 1),
               s(4, "XR_WRIST", 0), s(5, "XR_ELBOW", 1), s(6, "XR_ELBOW", 0)]
    w = StudyTypeWeights(samples, range(len(samples)))
    # w1 = N/(A+N), w0 = A/(A+N), counted over studies
    assert w.table["XR_WRIST"] == pytest.approx((3 / 4, 1 / 4))
    assert w.table["XR_ELBOW"] == pytest.approx((0.5, 0.5))
    import torch

    got = w.for_indices(torch.tensor([4, 0, 5]), torch.tensor([0, 1, 1]))
    assert got.tolist() == pytest.approx([0.75, 0.25, 0.5])
    assert json.loads(json.dumps(w.to_dict()))["XR_WRIST"] == [0.75, 0.25]
