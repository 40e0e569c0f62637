"""Active learning: uncertainty orderings, the app's next study, a pool simulation where
uncertainty sampling beats the random baseline, and `radview review --next`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from radview.review import active
from radview.review.label_issues import fit_head


def test_uncertainty_values():
    p = np.array([[0.5, 0.5], [0.99, 0.01], [0.7, 0.3]])
    e = active.uncertainty(p, "entropy")
    assert e[0] == pytest.approx(1.0) and e[1] < 0.1 and e[1] < e[2] < e[0]
    m = active.uncertainty(p, "margin")
    np.testing.assert_allclose(m, [1.0, 0.02, 0.6])
    least = active.uncertainty(p, "least")
    np.testing.assert_allclose(least, [1.0, 0.02, 0.6])
    aug = np.array([[[0.9, 0.1], [0.1, 0.9]], [[0.6, 0.4], [0.6, 0.4]]])  # (2 studies, 2 augs, 2)
    t = active.uncertainty(aug, "tta")
    assert t[0] == pytest.approx((0.16 + 0.16) / 0.25) or t[0] == 1.0
    assert t[1] == 0.0
    with pytest.raises(ValueError, match="unknown strategy"):
        active.uncertainty(p, "nope")


def test_orders_and_next_study():
    keys = ["a", "b", "c", "d"]
    p = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.99, 0.01]])
    order = active.order_studies(keys, p, "entropy", classes=("n", "p"))
    assert [o.key for o in order] == ["b", "c", "a", "d"]
    assert order[0].predicted in ("n", "p") and "entropy" in order[0].reason
    assert [o.key for o in active.order_studies(keys, p, "margin")] == ["b", "c", "a", "d"]
    assert [o.key for o in active.order_studies(keys, None, "first")] == keys
    r1 = [o.key for o in active.order_studies(keys, None, "random", seed=3)]
    assert sorted(r1) == keys and r1 == [o.key for o in active.order_studies(keys, None,
                                                                               "random", seed=3)]
    with pytest.raises(ValueError, match="needs probabilities"):
        active.order_studies(keys, None, "entropy")
    assert active.next_study(order, labelled={"b"}) == "c"
    assert active.next_study(order, labelled=set(), current="c") == "a"
    assert active.next_study(order, labelled={"b"}, current="d") == "c"  # wraps round
    assert active.next_study(order, labelled=set(keys)) is None
    d = active.orders_to_dict(order, "entropy", top=2)
    assert d["n_unlabelled"] == 4 and [x["key"] for x in d["next"]] == ["b", "c"]
    json.dumps(d)


def phantom(cls: str, i: int, size: int = 96) -> np.ndarray:
    """A noisy image whose class is visible: a bright disc or a bright horizontal bar."""
    rng = np.random.default_rng(i * 7 + (0 if cls == "disc" else 1))
    img = rng.normal(90, 25, (size, size))
    yy, xx = np.mgrid[:size, :size]
    cx, cy = rng.integers(30, 66, 2)
    if cls == "disc":
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(12, 22) ** 2] += 120
    else:
        h = rng.integers(6, 12)
        img[cy - h // 2:cy + h // 2, 10:86] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def _pool(seed):
    rng = np.random.default_rng(seed)
    n, dim = 1200, 10
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, dim))
    x[:, 0] += np.where(y == 1, 1.2, -1.2)
    return x, y


@pytest.mark.parametrize("strategy", ["entropy", "margin"])
def test_uncertainty_sampling_beats_random_on_a_pool(strategy):
    """Start from 10 labels, label 10 more per round for 6 rounds, picking the next studies by
    `strategy` or at random; accuracy on a held-out set after the rounds (mean of 5 pools)."""
    def run(strat, seed):
        x, y = _pool(seed)
        test = np.arange(800, 1200)
        labelled = list(range(10))
        for _ in range(6):
            head = fit_head(x[labelled], y[labelled], 2, l2=0.1)
            pool = np.setdiff1d(np.arange(800), labelled)
            order = active.order_studies([str(i) for i in pool], head.predict_proba(x[pool]),
                                         strat, seed=seed)
            labelled += [int(o.key) for o in order[:10]]
        head = fit_head(x[labelled], y[labelled], 2, l2=0.1)
        return float((head.predict_proba(x[test]).argmax(1) == y[test]).mean())

    acc = np.mean([run(strategy, s) for s in range(5)])
    base = np.mean([run("random", s) for s in range(5)])
    assert acc > base


def test_cli_next_orders_the_unlabelled(tmp_path, capsys):
    """Bundled region model on generated images: half labelled (disc/bar, a label space the
    model does not predict) through --labels; the others ordered by a head on the model's
    features; the random and first baselines; every unlabelled study listed once."""
    from radview.cli import main
    from radview.models.registry import ModelError, get_model_info

    try:
        if not get_model_info("region").installed:
            pytest.skip("bundled region model not installed")
    except ModelError as exc:
        pytest.skip(str(exc))
    root = tmp_path / "f"
    root.mkdir()
    rows = ["path,label"]
    unl = []
    for cls in ("disc", "bar"):
        for i in range(14):
            p = root / f"{cls}{i:02d}.png"
            Image.fromarray(phantom(cls, i)).save(p)
            if i < 8:
                rows.append(f"{p},{cls}")
            else:
                unl.append(str(p))
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    args = ["review", str(root), "--model", "region", "--labels", str(tmp_path / "labels.csv"),
            "--next", "--json"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    keys = [x["key"] for x in d["next"]]
    assert sorted(keys) == sorted(unl)
    assert d["active_learning"]["source"].startswith("head")
    scores = [x["score"] for x in d["next"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert {x["predicted"] for x in d["next"]} <= {"disc", "bar"}
    assert main(args + ["--strategy", "first"]) == 0
    assert [x["key"] for x in json.loads(capsys.readouterr().out)["next"]] == sorted(unl)
    assert main(args + ["--strategy", "tta", "--tta", "3"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert sorted(x["key"] for x in d["next"]) == sorted(unl)
    assert "augmentation" in d["next"][0]["reason"]
    assert main(args + ["--strategy", "mc-dropout", "--tta", "4"]) == 0  # region has dropout
    d = json.loads(capsys.readouterr().out)
    assert sorted(x["key"] for x in d["next"]) == sorted(unl)
    assert "dropout" in d["next"][0]["reason"] and d["next"][0]["score"] > 0
    from radview.models.registry import load_model

    m = load_model("region")
    assert not any(x.training for x in m.module.modules())  # dropout back in eval mode
    assert main(args[:-1] + ["--strategy", "margin", "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "next studies to read (margin" in text and "... 9 more" in text
