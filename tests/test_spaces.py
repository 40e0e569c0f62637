"""Label spaces: the rules that join a model with labels, label keys, and what io assigns."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from radview import spaces
from radview.models.manifest import ManifestError, load_manifest, manifest_from_dict

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def _m(**kw):
    d = {"name": "m", "task": "multiclass", "classes": ["abd", "chest"], "arch": "efficientnet_lite0"}
    d.update(kw)
    return manifest_from_dict(d)


def test_bundled_manifests_name_their_space():
    region = load_manifest(REPO / "resources" / "models" / "region")
    mura = load_manifest(REPO / "resources" / "models" / "mura-densenet169")
    rsna = load_manifest(REPO / "resources" / "models" / "rsna-pneumonia")
    assert spaces.model_space(region) == spaces.OPENI
    assert spaces.model_space(mura) == spaces.MURA
    assert spaces.model_space(rsna).positive == "pneumonia" and spaces.model_space(rsna).boxes
    # the issue: RSNA "normal" is never an "abd"
    ok, why = spaces.comparable(region, "rsna-pneumonia")
    assert not ok and "normal/pneumonia" in why and "abd/chest" in why
    assert spaces.comparable(rsna, "rsna-pneumonia") == (True, "")
    assert not spaces.comparable(mura, "rsna-pneumonia")[0]
    assert not spaces.comparable(rsna, "mura")[0]


def test_class_folder_rule_needs_exactly_the_models_classes():
    region = _m(label_space="openi-chest-abdomen")
    same = spaces.class_folder_space("openi", ["chest", "abd"])
    assert spaces.class_mapping(region, same) == ({"abd": "abd", "chest": "chest"}, "")
    upper = spaces.class_folder_space("upper", ["ABD", "Chest"])
    assert spaces.class_mapping(region, upper)[0] == {"ABD": "abd", "Chest": "chest"}
    subset = spaces.class_folder_space("only-chest", ["chest"])
    assert not spaces.comparable(region, subset)[0]
    more = spaces.class_folder_space("three", ["abd", "chest", "knee"])
    ok, why = spaces.comparable(region, more)
    assert not ok and "class sets differ" in why
    strict = _m(label_space={"name": "openi-chest-abdomen", "class_folders": False})
    assert not spaces.comparable(strict, same)[0]
    # a known space with the same class names is still another space for a manifest with a space
    other = spaces.register(spaces.LabelSpace("elsewhere", "multiclass", ("abd", "chest")))
    assert not spaces.comparable(region, other)[0]
    # ... but a manifest from before label spaces matches any space with exactly its classes
    legacy = _m()
    assert spaces.comparable(legacy, other)[0] and not spaces.comparable(legacy, "mura")[0]


def test_explicit_map_and_its_checks():
    det = _m(name="det", task="detection", classes=["background", "opacity"],
             label_space={"name": "rsna-pneumonia",
                          "map": {"normal": "background", "pneumonia": "opacity"}})
    assert spaces.class_mapping(det, "rsna-pneumonia")[0] == {"normal": "background",
                                                                "pneumonia": "opacity"}
    no_map = _m(name="det2", task="detection", classes=["background", "opacity"],
                label_space="rsna-pneumonia")
    ok, why = spaces.comparable(no_map, "rsna-pneumonia")
    assert not ok and "label_space.map" in why
    kermany = spaces.class_folder_space("kermany", ["NORMAL", "PNEUMONIA"])
    other = _m(name="k", task="binary", classes=["normal", "pneumonia"],
               label_space={"name": "rsna-pneumonia", "class_folders": False,
                            "map": {"folder:kermany": {"NORMAL": "normal", "PNEUMONIA": "pneumonia"}}})
    assert spaces.class_mapping(other, kermany)[0] == {"NORMAL": "normal", "PNEUMONIA": "pneumonia"}
    bad = _m(label_space={"name": "x", "map": {"folder:kermany": {"NORMAL": "nope"}}})
    ok, why = spaces.comparable(bad, kermany)
    assert not ok and "nope" in why
    with pytest.raises(ManifestError, match="label_space"):
        _m(label_space={"map": {}})
    assert _m(label_space="mura").to_dict()["label_space"] == {"name": "mura"}


def test_label_keys_follow_the_space():
    assert [(k.key, k.value) for k in spaces.label_keys(spaces.MURA)] == [("N", "normal"),
                                                                         ("A", "abnormal")]
    assert [(k.key, k.value) for k in spaces.label_keys("rsna-pneumonia")] == [("N", "normal"),
                                                                              ("P", "pneumonia")]
    sp = spaces.class_folder_space("keys", ["chest", "abd"])
    assert [(k.key, k.value) for k in spaces.label_keys(sp)] == [("1", "abd"), ("2", "chest")]
    assert spaces.label_keys(None) == []
    three = spaces.class_folder_space("three-keys", ["a", "b", "c"])
    assert spaces.main_metric(spaces.MURA) == "kappa" and spaces.main_metric(three) == "accuracy"
    from radview.train.config import DEFAULT_METRIC  # the agreed promotion metric per task

    assert DEFAULT_METRIC["binary"] == spaces.main_metric(sp) == "kappa"


def test_scan_assigns_spaces_to_class_folders_mura_and_csv(tmp_path):
    from radview.io import scan

    img = np.zeros((8, 8), np.uint8)
    for split, cls in (("train", "chest"), ("train", "abd"), ("val", "chest")):
        (tmp_path / "openi" / split / cls).mkdir(parents=True)
        Image.fromarray(img).save(tmp_path / "openi" / split / cls / "a.png")
    study = tmp_path / "mura" / "train" / "XR_WRIST" / "patient1" / "study1_positive"
    study.mkdir(parents=True)
    Image.fromarray(img).save(study / "image1.png")
    r = scan(tmp_path, use_index=False)
    by_layout = {}
    for s in r.studies:
        by_layout.setdefault(s.layout, set()).add(s.space)
    assert by_layout == {"class": {"folder:openi"}, "mura": {"mura"}}
    assert spaces.get_space("folder:openi").classes == ("abd", "chest")  # train and val together
    assert {s.name for s in spaces.spaces_in(r)} == {"folder:openi", "mura"}
    assert all(v.label.space == s.space for s in r.studies for v in s.views if v.label)
    csv = tmp_path / "flat"
    csv.mkdir()
    Image.fromarray(img).save(csv / "x.png")
    (csv / "labels.csv").write_text("path,label\nx.png,knee\n")
    [st] = scan(csv, use_index=False).studies
    assert st.space == "csv:labels" and spaces.get_space("csv:labels").classes == ("knee",)


def test_review_never_counts_rsna_normal_films_against_a_chest_abdomen_model():
    """No shared data needed: the join itself. (tests/test_review_cli.py runs it end to end on the
    real RSNA DICOMs beside Open-i.)"""
    from radview.review import Interpretation, build_review
    from radview.review.data import comparable_truths
    from radview.types import Label, StudyPrediction

    region = _m(name="region", label_space="openi-chest-abdomen")
    folder = spaces.class_folder_space("openi-review", ["abd", "chest"]).name
    truths = {f"rsna{i}": Label("normal", source="rsna-csv", space="rsna-pneumonia") for i in range(5)}
    truths.update({"o1": Label("chest", source="class-folder", space=folder),
                   "o2": Label("abd", source="class-folder", space=folder)})
    preds = [StudyPrediction(k, "region", "1", ("abd", "chest"), (0.1, 0.9), "chest") for k in truths]
    data = build_review(preds, truths, manifest=region)
    assert set(data.keys) == {"o1", "o2"} and data.space == "openi-chest-abdomen"
    assert {k for k, _ in data.not_comparable} == {f"rsna{i}" for i in range(5)}
    assert all("not comparable" in r for _, r in data.not_comparable)
    interp = Interpretation(data)
    assert interp.confusion_matrix().sum() == 2
    assert {t.study_key for t in interp.top_losses(10)} == {"o1", "o2"}
    # without the manifest the old name matching would have made "normal" an "abd"
    legacy = build_review(preds, truths)
    assert len(legacy) == 7
    ok, skipped = comparable_truths(truths, region)
    assert set(ok) == {"o1", "o2"} and len(skipped) == 5
