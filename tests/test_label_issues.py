"""Out-of-fold label issues (radview.review.label_issues) and `radview review --label-issues`.

The checks the issue asks for: labels flipped on purpose in a real labelled set (Open-i, where
../shared exists) and in a phantom set (generated images whose class is visible, everywhere)
rank at the top of the label-issue list, and in-sample top losses (a head fitted on all labels,
as the model whose top losses the review shows was fitted on them) find fewer of them."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radview.review import label_issues as li
from radview.types import Box

# --------------------------------------------------------------------------- pure parts


def test_head_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=300) > 0).astype(int)
    y[x[:, 2] > 1.0] = 2  # three classes
    l2 = 0.05
    head = li.fit_head(x, y, 3, l2=l2, max_iter=3000, tol=1e-9)
    ref = sk.LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-10, max_iter=5000).fit(x, y)
    np.testing.assert_allclose(head.predict_proba(x), ref.predict_proba(x), atol=2e-3)


def test_group_folds_keep_patients_together_and_stratify():
    groups = [f"p{i // 3}" for i in range(60)]  # 20 patients with 3 studies each
    y = np.asarray([(i // 3) % 2 for i in range(60)])
    folds = li.group_folds(groups, y, 5, seed=1)
    for g in set(groups):
        assert len({folds[i] for i in range(60) if groups[i] == g}) == 1
    for f in range(5):
        assert set(y[folds == f]) == {0, 1}  # every fold holds both classes
    assert sorted(np.bincount(folds)) == [12] * 5
    assert (li.group_folds(groups, y, 5, seed=1) == folds).all()


def test_confident_joint_by_hand():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8],  # labelled 0; the third looks like 1
                  [0.1, 0.9], [0.3, 0.7], [0.6, 0.4]])  # labelled 1; the last looks like 0
    y = np.array([0, 0, 0, 1, 1, 1])
    t = li.per_class_thresholds(p, y)
    np.testing.assert_allclose(t, [(0.9 + 0.8 + 0.2) / 3, (0.9 + 0.7 + 0.4) / 3])
    cj = li.confident_joint(p, y, t, calibrate=False)
    # p0 >= 0.633: rows 0, 1; p1 >= 0.667: rows 2, 3, 4; row 5 is confident in neither
    np.testing.assert_array_equal(cj, [[2, 1], [0, 2]])
    cal = li.confident_joint(p, y, t)
    np.testing.assert_allclose(cal.sum(axis=1), [3, 3])
    mask = li.find_issue_mask(p, y)
    assert mask.tolist() == [False, False, True, False, False, False]
    assert li.find_issue_mask(p, y, "confident_joint").tolist() == mask.tolist()


def _clusters(n=120, d=200, nflip=12, seed=0, views=1):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    centre = rng.normal(size=(2, d)) * 0.6
    x = np.repeat(centre[y], views, axis=0) + rng.normal(size=(n * views, d))
    flip = rng.choice(n, nflip, replace=False)
    given = np.asarray(["cat", "dog"], dtype=object)[y]
    given[flip] = np.where(y[flip] == 0, "dog", "cat")
    return x, np.repeat(np.arange(n), views), list(given), set(flip.tolist())


def test_flipped_labels_rank_first_and_memorised_in_sample_losses_miss_them():
    x, owner, given, flipped = _clusters()
    keys = [f"s{i}" for i in range(len(given))]
    rep = li.find_label_issues(x, owner, given, keys)
    top = {int(r.key[1:]) for r in rep.ranked[:len(flipped)]}
    assert len(top & flipped) >= 0.8 * len(flipped)
    assert len({int(r.key[1:]) for r in rep.issues} & flipped) >= 0.8 * len(flipped)
    assert rep.issues and all(r.flagged and r.given != r.suggested for r in rep.issues)
    assert [r.score for r in rep.ranked] == sorted((r.score for r in rep.ranked), reverse=True)
    y = np.asarray([rep.classes.index(g) for g in given])
    n = len(y)
    z = li.reduce_features(x, n - 1, whiten=True)  # a head that can fit its labels
    pin = li.in_sample_probs(z, owner, y, 2, l2=1e-6, max_iter=3000)
    assert (pin.argmax(axis=1) == y).mean() == 1.0  # it memorised the flipped labels
    loss = -np.log(pin[np.arange(n), y])
    in_top = set(np.argsort(-loss)[:len(flipped)].tolist())
    assert len(in_top & flipped) < len(top & flipped)
    # the regularised default head in-sample is no better than out of fold either
    reg = li.in_sample_probs(li.reduce_features(x), owner, y, 2, l2=0.1)
    reg_top = set(np.argsort(reg[np.arange(n), y])[:len(flipped)].tolist())
    assert len(reg_top & flipped) <= len(top & flipped)


def test_multi_view_studies_and_reasons():
    x, owner, given, flipped = _clusters(n=80, nflip=8, views=3, seed=2)
    keys = [f"study{i}" for i in range(80)]
    rep = li.find_label_issues(x, owner, given, keys, groups=[f"p{i // 2}" for i in range(80)],
                               paths=[f"/data/{k}" for k in keys])
    assert rep.n_images == 240 and rep.n_studies == 80
    first = rep.issues[0]
    assert int(first.key[5:]) in flipped
    assert first.n_views == 3 and 0 <= first.views_agreeing <= 3
    assert f"of 3 views call {first.suggested!r}" in first.reason
    assert first.path == f"/data/{first.key}"
    d = li.issues_to_dict(rep)
    assert d["label_issues"][0]["given"] == first.given
    assert {"path", "given", "suggested", "score", "reason"} <= set(d["label_issues"][0])
    assert d["n_flagged"] == len(rep.issues)
    json.dumps(d)


def test_three_classes_and_bad_input():
    rng = np.random.default_rng(3)
    y = np.arange(90) % 3
    x = rng.normal(size=(3, 50))[y] * 1.5 + rng.normal(size=(90, 50))
    given = [("a", "b", "c")[v] for v in y]
    given[5] = "a" if given[5] != "a" else "b"
    rep = li.find_label_issues(x, np.arange(90), given, [str(i) for i in range(90)])
    assert rep.ranked[0].key == "5"
    assert rep.confident_joint.shape == (3, 3)
    with pytest.raises(ValueError, match="at least two classes"):
        li.find_label_issues(x[:4], np.arange(4), ["a"] * 4, list("wxyz"))
    with pytest.raises(ValueError, match="not classes"):
        li.find_label_issues(x[:4], np.arange(4), list("abab"), list("wxyz"), classes=("a",))
    with pytest.raises(ValueError, match="unknown method"):
        li.find_label_issues(x[:4], np.arange(4), list("abab"), list("wxyz"), method="x")
    with pytest.raises(ValueError, match="at least one feature row"):
        li.find_label_issues(x[:3], [0, 0, 1], list("abab"), list("wxyz"))


def test_box_issues_missed_and_spurious():
    gt = Box(10, 10, 20, 20)
    preds = {
        "a": [Box(11, 11, 20, 20, score=0.9)],  # agrees with the label box
        "b": [Box(50, 50, 10, 10, score=0.95), Box(0, 0, 5, 5, score=0.2)],  # a missed box
        "c": [],  # the label box on c has no support: spurious
        "d": [Box(10, 10, 20, 20, score=0.8)],  # negative image, confident box: missed
    }
    labels = {"a": [gt], "b": [gt], "c": [gt], "d": []}
    out = li.box_issues(preds, labels, score_threshold=0.5, iou_threshold=0.3,
                        paths={"b": "/x/b.dcm"})
    kinds = {(b.key, b.kind) for b in out}
    assert kinds == {("b", "missed"), ("b", "spurious"), ("c", "spurious"), ("d", "missed")}
    assert [b.score for b in out] == sorted((b.score for b in out), reverse=True)
    b_missed = next(b for b in out if b.key == "b" and b.kind == "missed")
    assert b_missed.path == "/x/b.dcm" and b_missed.score == pytest.approx(0.95)
    assert "no label box" in b_missed.reason
    c = next(b for b in out if b.key == "c")
    assert c.score == 1.0 and "nothing was predicted" in c.reason
    assert "the image has no label box" in next(b for b in out if b.key == "d").reason
    # a weak prediction over a label box: spurious when it is below the support threshold
    weak = {"e": [Box(10, 10, 20, 20, score=0.15)]}
    got = li.box_issues(weak, {"e": [gt]}, support_threshold=0.2)
    assert [(b.kind, round(b.score, 2)) for b in got] == [("spurious", 0.85)]
    assert "score at most 0.15" in got[0].reason
    assert li.box_issues(weak, {"e": [gt]}, support_threshold=0.1) == []
    # an image without predictions is not judged
    assert li.box_issues({}, labels) == []


# --------------------------------------------------------------------------- CLI, phantom set


def phantom(cls: str, i: int, size: int = 96) -> np.ndarray:
    """A noisy image whose class is visible: a bright disc or a bright horizontal bar."""
    rng = np.random.default_rng(i * 7 + (0 if cls == "disc" else 1))
    img = rng.normal(90, 25, (size, size))
    yy, xx = np.mgrid[:size, :size]
    cx, cy = rng.integers(30, 66, 2)
    if cls == "disc":
        r = rng.integers(12, 22)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 120
    else:
        h = rng.integers(6, 12)
        img[cy - h // 2:cy + h // 2, 10:86] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def region_or_skip():
    from radview.models.registry import ModelError, get_model_info

    try:
        info = get_model_info("region")
    except ModelError as exc:
        pytest.skip(f"bundled region model unavailable: {exc}")
    if not info.installed:
        pytest.skip(f"bundled region model not installed: {info.status}")


@pytest.fixture
def phantom_folder(tmp_path) -> tuple[Path, set[str]]:
    """30 discs and 30 bars in class folders; 5 of each filed in the wrong folder."""
    root = tmp_path / "phantoms"
    wrong = set()
    for cls, other in (("disc", "bar"), ("bar", "disc")):
        for i in range(30):
            folder = other if i % 6 == 0 else cls
            (root / folder).mkdir(parents=True, exist_ok=True)
            p = root / folder / f"{cls}{i:02d}.png"
            Image.fromarray(phantom(cls, i)).save(p)
            if folder != cls:
                wrong.add(str(p))
    return root, wrong


def run_json(capsys, *argv) -> dict:
    from radview.cli import main

    rc = main(["review", *map(str, argv), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_cli_label_issues_find_misfiled_phantoms(phantom_folder, capsys):
    region_or_skip()
    root, wrong = phantom_folder
    d = run_json(capsys, root, "--model", "region", "--label-issues")
    issues = d["label_issues"]
    paths = [it["path"] for it in issues]
    assert len(set(paths[:len(wrong)]) & wrong) >= 8  # of 10 misfiled
    for it in issues:
        assert {it["given"], it["suggested"]} == {"disc", "bar"}
        assert 0.5 < it["score"] <= 1.0 and it["reason"]
    hit = next(it for it in issues if it["path"] in wrong)
    assert Path(hit["path"]).name.startswith(hit["suggested"])  # disc07.png filed as bar
    assert d["label_spaces"][0]["n_studies"] == 60
    # the features are cached: a second run computes none
    from radview.cli import main

    assert main(["review", str(root), "--model", "region", "--label-issues"]) == 0
    out = capsys.readouterr()
    assert "features: 60 cached, 0 computed" in out.err
    assert "label issues" in out.out and "->" in out.out


def test_cli_label_issues_errors(phantom_folder, tmp_path, capsys):
    from radview.cli import main

    root, _ = phantom_folder
    assert main(["review", str(tmp_path / "nope"), "--model", "region", "--label-issues"]) == 2
    assert "no such file" in capsys.readouterr().err
    one = tmp_path / "one" / "disc"
    one.mkdir(parents=True)
    Image.fromarray(phantom("disc", 1)).save(one / "a.png")
    Image.fromarray(phantom("disc", 2)).save(one / "b.png")
    region_or_skip()
    assert main(["review", str(one.parent), "--model", "region", "--label-issues"]) == 2
    assert "no study has a class label" in capsys.readouterr().err
    lab = tmp_path / "one.csv"
    lab.write_text(f"path,label\n{one / 'a.png'},disc\n{one / 'b.png'},disc\n")
    assert main(["review", str(one.parent), "--model", "region", "--label-issues",
                 "--labels", str(lab)]) == 2
    assert "two classes" in capsys.readouterr().err
    (root / "bar" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    d = run_json(capsys, root, "--model", "region", "--label-issues")
    assert d["label_spaces"][0]["n_studies"] == 60  # the broken file is left out, named


# --------------------------------------------------------------------------- real data


def test_openi_flipped_labels_found_out_of_fold(shared_data, tmp_path, capsys):
    """10 Open-i labels flipped through a --labels CSV: the out-of-fold list puts them first;
    in-sample losses of a head fitted on the flipped labels do not."""
    region_or_skip()
    root = shared_data / "openi-chest-abdomen"
    rows = list(csv.DictReader(open(root / "index.csv", newline="")))
    rng = np.random.default_rng(0)
    flip = set(rng.choice(len(rows), 10, replace=False).tolist())
    labels = tmp_path / "flipped.csv"
    flipped_paths = set()
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for i, r in enumerate(rows):
            lab = r["label"]
            if i in flip:
                lab = "abd" if lab == "chest" else "chest"
                flipped_paths.add(str(root / r["path"]))
            w.writerow([str(root / r["path"]), lab])
    d = run_json(capsys, root, "--model", "region", "--label-issues", "--labels", labels)
    top = [it["path"] for it in d["label_issues"][:10]]
    found = len(set(top) & flipped_paths)
    assert found >= 8, d["label_issues"][:12]

    from radview.io import scan
    from radview.models.model_features import model_features

    studies = [s for s in scan(root, labels=str(labels)).studies if s.views]
    given = {str(root / r["path"]): ("abd" if r["label"] == "chest" else "chest")
             if i in flip else r["label"] for i, r in enumerate(rows)}
    feats = model_features([s.views[0].ref for s in studies], "region")  # cached by the CLI
    assert feats.n_computed == 0
    keys = [s.views[0].ref.key for s in studies]
    x = feats.matrix[[feats.row(k) for k in keys]]
    y = np.asarray([("abd", "chest").index(given[s.views[0].ref.path]) for s in studies])
    z = li.reduce_features(x, len(y) - 1, whiten=True)
    pin = li.in_sample_probs(z, np.arange(len(y)), y, 2, l2=1e-6, max_iter=3000)
    in_top = {keys[i] for i in np.argsort(pin[np.arange(len(y)), y])[:10]}
    assert len(in_top & flipped_paths) < found


def test_cli_box_issues_for_a_detector(tmp_path, capsys):
    """A real (random-weight) tiny Faster R-CNN through the engine; label boxes from the store.
    The CLI's box issues are exactly box_issues() over the model's boxes and the label boxes."""
    torch = pytest.importorskip("torch")
    from radview import paths
    from radview.models import arch
    from radview.models.manifest import manifest_from_dict, sha256_file, write_manifest
    from radview.store import LabelStore
    from radview.train import synthetic

    root = tmp_path / "det"
    boxes = synthetic.boxes(root, n_pos=4, n_neg=2, size=64)
    folder = paths.user_models_dir() / "det"
    torch.manual_seed(0)
    torch.save(arch.build("fasterrcnn_tiny", 2, "detection", size=64).state_dict(),
               tmp_path / "w.pt")
    m = synthetic.tiny_manifest("det", task="detection", classes=("background", "opacity"),
                                size=64, threshold=0.05)
    folder.mkdir(parents=True)
    (folder / "weights.pt").write_bytes((tmp_path / "w.pt").read_bytes())
    m["weights"] = {"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")}
    write_manifest(manifest_from_dict(m), folder)
    with LabelStore() as store:
        for p, b in boxes.items():
            store.set_boxes(str(p), b)
    d = run_json(capsys, root, "--model", "det", "--label-issues")
    assert d["box_issues"] and d["label_issues"] == [] and "out-of-fold" in d["note"]
    from radview.cli import main

    assert main(["predict", str(root), "--model", "det", "--all-boxes",
                 "--out", str(tmp_path / "p.json")]) == 0
    capsys.readouterr()
    pj = json.loads((tmp_path / "p.json").read_text())
    rows = pj["images"] if isinstance(pj, dict) and "images" in pj else pj
    preds = {}
    for r in rows:
        if r.get("path") and "boxes" in r:
            preds[r["path"]] = [Box(*b["xywh"] if "xywh" in b else
                                    (b["x"], b["y"], b["width"], b["height"]),
                                    score=b["score"]) for b in r["boxes"]]
    if not preds:
        pytest.skip("predict output has no per-image boxes to compare with")
    want = li.box_issues(preds, {str(p): b for p, b in boxes.items()}, score_threshold=0.05,
                         support_threshold=0.025)
    assert sorted((b.key, b.kind) for b in want) == sorted((b["key"], b["kind"])
                                                          for b in d["box_issues"])
    n_spurious = sum(b["kind"] == "spurious" for b in d["box_issues"])
    assert n_spurious <= 4 and all(b["reason"] for b in d["box_issues"])


@pytest.mark.slow
def test_kermany_flipped_labels_in_a_space_no_model_predicts(shared_data, tmp_path, capsys):
    """Kermany paediatric test split (624 real images, NORMAL/PNEUMONIA: no bundled model
    predicts it; the region model only gives features), 31 labels (5%) flipped through a
    --labels CSV: most rank in the top 31 of the out-of-fold list; a head fitted to its
    labels in-sample finds fewer."""
    region_or_skip()
    root = shared_data / "kermany-pediatric-cxr" / "test"
    files = sorted(p for p in root.glob("*/*.jpeg"))
    rng = np.random.default_rng(0)
    flip = set(rng.choice(len(files), 31, replace=False).tolist())
    labels = tmp_path / "flipped.csv"
    flipped, given = set(), {}
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for i, p in enumerate(files):
            lab = p.parent.name
            if i in flip:
                lab = "NORMAL" if lab == "PNEUMONIA" else "PNEUMONIA"
                flipped.add(str(p))
            given[str(p)] = lab
            w.writerow([str(p), lab])
    d = run_json(capsys, root, "--model", "region", "--label-issues", "--labels", labels)
    top = [it["path"] for it in d["label_issues"][:31]]
    found = len(set(top) & flipped)
    assert found >= 20, found
    from radview.models.model_features import model_features

    feats = model_features([str(p) for p in files], "region")
    assert feats.n_computed == 0
    x = feats.matrix[[feats.row(str(p)) for p in files]]
    y = np.asarray([("NORMAL", "PNEUMONIA").index(given[str(p)]) for p in files])
    z = li.reduce_features(x, 256, whiten=True)
    pin = li.in_sample_probs(z, np.arange(len(y)), y, 2, l2=1e-6, max_iter=3000)
    in_top = {str(files[i]) for i in np.argsort(pin[np.arange(len(y)), y])[:31]}
    assert len(in_top & flipped) < found
    print(f"kermany: {found}/31 flipped in the out-of-fold top 31, "
          f"{len(in_top & flipped)}/31 in the in-sample top 31")
