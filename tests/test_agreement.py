"""Inter-reader agreement (issue 16): Cohen's kappa against scikit-learn, Fleiss' kappa against
Fleiss' published example, bootstrap CIs, and agreement from a real label store's reads."""
from __future__ import annotations

import numpy as np
import pytest

from radview.review.agreement import (cohen_kappa, fleiss_kappa, reads_agreement,
                                      reads_from_store, store_agreement)
from radview.store import LabelStore

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_equals_scikit_learn(weights):
    rng = np.random.default_rng(3)
    for trial in range(20):
        k = int(rng.integers(2, 5))
        a = rng.integers(0, k, size=int(rng.integers(5, 200)))
        noise = rng.random(a.size) < rng.random()
        b = np.where(noise, rng.integers(0, k, size=a.size), a)
        labels = [f"c{i}" for i in range(k)]
        ours = cohen_kappa([labels[i] for i in a], [labels[i] for i in b], categories=labels,
                           weights=weights, n_boot=0)
        ref = sklearn_metrics.cohen_kappa_score(a, b, labels=list(range(k)), weights=weights)
        assert ours.value == pytest.approx(ref, abs=1e-12), (trial, weights)


def test_cohen_bootstrap_ci_brackets_the_value_and_narrows_with_more_items():
    rng = np.random.default_rng(0)

    def pair(n):
        a = rng.integers(0, 2, size=n)
        b = np.where(rng.random(n) < 0.8, a, 1 - a)
        return a.tolist(), b.tolist()
    small = cohen_kappa(*pair(40), n_boot=500, seed=1)
    large = cohen_kappa(*pair(2000), n_boot=500, seed=1)
    for k in (small, large):
        assert k.low <= k.value <= k.high
    assert (large.high - large.low) < (small.high - small.low) / 3
    assert large.value == pytest.approx(0.6, abs=0.06)     # 80% agreement on balanced classes
    again = cohen_kappa(*pair(40), n_boot=500, seed=1)
    assert cohen_kappa(["x", "y"] * 5, ["x", "y"] * 5).value == 1.0
    assert again.n_items == 40
    with pytest.raises(ValueError, match="different numbers"):
        cohen_kappa([1, 2], [1])


def test_fleiss_kappa_of_fleiss_1971_example():
    # Wikipedia's worked example (10 subjects, 14 raters, 5 categories): kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    k = fleiss_kappa(table, counts=True, n_boot=300)
    assert k.value == pytest.approx(0.20993, abs=1e-4)
    assert k.low < k.value < k.high and k.n_items == 10
    # the same from per-item label lists, and two raters reduce to Scott's pi
    ratings = [[c for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(ratings, n_boot=0).value == pytest.approx(k.value)
    with pytest.raises(ValueError, match="fewer than two ratings"):
        fleiss_kappa([["a", "b"], ["a"]])


def test_agreement_from_a_store_uses_each_readers_active_reads(tmp_path):
    with LabelStore(tmp_path / "team.sqlite") as s:
        truth = ["normal", "abnormal"] * 15
        for i, t in enumerate(truth):
            key = f"XR/s{i}"
            s.set_label(key, t, level="study", reader="alice", space="mura")
            s.set_label(key, t if i % 5 else ("normal" if t == "abnormal" else "abnormal"),
                        level="study", reader="bob", space="mura")
            s.set_label(key, t if i % 3 else "normal", level="study", reader="carol", space="mura")
        wrong = s.set_label("XR/s0", "abnormal", level="study", reader="alice", space="mura")
        s.undo(wrong.id, reader="alice")   # an undone read does not count
        reads = reads_from_store(s, level="study", space="mura")
        assert reads["alice"]["XR/s0"] == "normal" and len(reads["bob"]) == 30
        report = store_agreement(s, level="study", space="mura", n_boot=200)
    assert report.readers == ("alice", "bob", "carol")
    ab = report.pairs[("alice", "bob")]
    ref = sklearn_metrics.cohen_kappa_score([reads["alice"][k] for k in sorted(reads["alice"])],
                                            [reads["bob"][k] for k in sorted(reads["alice"])])
    assert ab.value == pytest.approx(ref) and ab.n_items == 30 and ab.low <= ab.value <= ab.high
    assert report.fleiss is not None and report.fleiss.n_items == 30
    assert report.fleiss.value < 1 and "Fleiss' kappa" in report.fleiss.text


def test_readers_without_common_items_are_reported_not_guessed():
    report = reads_agreement({"a": {"k1": "x", "k2": "y"}, "b": {"k3": "x"}}, n_boot=0)
    assert report.pairs == {} and report.skipped[0][0] == "a vs b"
