"""radview.review.metrics and .bootstrap against scikit-learn (test-only oracle)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from radview.review import bootstrap as B
from radview.review import metrics as M


def sk_kappa(y1, y2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skm.cohen_kappa_score(y1, y2)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_kappa_matches_sklearn_random(seed, n_classes):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    y = rng.integers(0, n_classes, n)
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, n_classes, n))
    ours = M.cohen_kappa(y, p, n_classes)
    ref = sk_kappa(y, p)
    if np.isnan(ref):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("y, p", [
    ([1, 1, 1], [1, 1, 1]),          # one class in both: undefined
    ([0, 0, 0], [1, 1, 1]),          # disjoint single classes: 0
    ([0, 0, 1], [1, 1, 1]),          # call constant
    ([0, 1, 0, 1], [1, 0, 1, 0]),    # perfect disagreement: -1
    ([0, 1, 2], [0, 1, 2]),          # perfect: 1
    ([0], [0]),
])
def test_kappa_edge_cases(y, p):
    ref = sk_kappa(y, p)
    ours = M.cohen_kappa(y, p, 3)
    if np.isnan(ref):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(ref)


def test_kappa_empty_is_nan():
    assert np.isnan(M.cohen_kappa([], [], 2))
    assert np.isnan(M.kappa_from_confusion(np.zeros((2, 2), int)))


def test_kappa_vectorised_over_stacks():
    rng = np.random.default_rng(3)
    cms = rng.integers(0, 20, (5, 3, 3))
    stacked = M.kappa_from_confusion(cms)
    assert stacked.shape == (5,)
    for cm, k in zip(cms, stacked):
        y = np.repeat(np.repeat(np.arange(3), 3), cm.ravel())
        p = np.repeat(np.tile(np.arange(3), 3), cm.ravel())
        assert k == pytest.approx(sk_kappa(y, p))


@pytest.mark.parametrize("seed", range(10))
def test_auroc_matches_sklearn_random_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = rng.random(n) + 0.3 * y
    if seed % 2:  # heavy ties
        s = np.round(s, 1)
    assert M.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_auroc_edge_cases():
    assert np.isnan(M.auroc([1, 1, 1], [0.1, 0.5, 0.9]))   # one class only
    assert np.isnan(M.auroc([0, 0], [0.1, 0.5]))
    assert np.isnan(M.auroc([], []))                          # empty
    assert M.auroc([0, 1, 0, 1], [0.5] * 4) == 0.5            # all tied
    assert M.auroc([0, 1], [0.2, 0.8]) == 1.0
    assert M.auroc([0, 1], [0.8, 0.2]) == 0.0
    y, s = [0, 0, 1, 1, 1], [0.1, 0.4, 0.4, 0.4, 0.9]
    assert M.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s))


def test_auroc_ovr_matches_sklearn_macro():
    rng = np.random.default_rng(7)
    n, c = 300, 4
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    macro, per = M.auroc_ovr(y, probs)
    assert macro == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert per.shape == (c,)
    # a class absent from the truth: its AUROC is nan and the macro mean skips it
    y2 = np.where(y == 3, 0, y)
    macro2, per2 = M.auroc_ovr(y2, probs)
    assert np.isnan(per2[3]) and macro2 == pytest.approx(np.nanmean(per2[:3]))


def test_sensitivity_specificity_and_confusion():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([1, 1, 0, 0, 0, 1, 0])
    cm = M.confusion_matrix(y, p, 2)
    assert cm.tolist() == skm.confusion_matrix(y, p).tolist()
    sens, spec = M.sensitivity_specificity(cm, 1)
    assert sens == pytest.approx(2 / 3) and spec == pytest.approx(3 / 4)
    assert skm.recall_score(y, p) == pytest.approx(sens)
    s2, sp2 = M.sensitivity_specificity(M.confusion_matrix([0, 0], [0, 1], 2), 1)
    assert np.isnan(s2) and sp2 == 0.5
    with pytest.raises(ValueError):
        M.confusion_matrix([0, 2], [0, 1], 2)


@pytest.mark.parametrize("seed", range(5))
def test_threshold_sweep_matches_direct_computation(seed):
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, 2, n)
    s = np.round(rng.random(n) * 0.8 + 0.2 * y, 2)  # ties
    sw = M.threshold_sweep(y, s)
    assert sw.thresholds[-1] == -np.inf and np.all(np.diff(sw.thresholds) < 0)
    assert sw.tp[0] == 0 and sw.fp[0] == 0 and sw.tn[-1] == 0 and sw.fn[-1] == 0
    assert len(sw) == np.unique(s).size + 1
    for i in range(len(sw)):
        t = sw.thresholds[i]
        call = (s > t).astype(int)
        cm = M.confusion_matrix(y, call, 2)
        assert (sw.tp[i], sw.fp[i], sw.fn[i], sw.tn[i]) == (cm[1, 1], cm[0, 1], cm[1, 0], cm[0, 0])
        sens, spec = M.sensitivity_specificity(cm, 1)
        assert sw.sensitivity[i] == pytest.approx(sens)
        assert sw.specificity[i] == pytest.approx(spec)
        ref = sk_kappa(y, call)
        assert (np.isnan(sw.kappa[i]) and np.isnan(ref)) or sw.kappa[i] == pytest.approx(ref)
    # arbitrary thresholds look up the right point
    for t in (-1.0, 0.0, 0.1234, 0.5, 0.55, 0.999, 2.0, s[3]):
        got = sw.at(t)
        call = M.binary_call(s, t)
        assert call.tolist() == (s > t).astype(int).tolist()
        assert got["tp"] == int(((call == 1) & (y == 1)).sum())
        assert got["fp"] == int(((call == 1) & (y == 0)).sum())
    # ROC agrees with scikit-learn's (it drops collinear points; ours keeps every threshold)
    fpr, tpr, _ = M.roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(skm.roc_auc_score(y, s))


def test_threshold_sweep_best_and_empty():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    sw = M.threshold_sweep(y, s)
    best = sw.best("youden")
    assert 0.3 <= best < 0.6  # separates perfectly (positive if p > best)
    assert best == pytest.approx(0.45)
    assert sw.at(best)["sensitivity"] == 1.0 and sw.at(best)["specificity"] == 1.0
    assert sw.best("kappa") == best
    empty = M.threshold_sweep(np.zeros(0), np.zeros(0))
    assert len(empty) == 1 and np.isnan(empty.best())
    d = sw.as_dict()
    assert d["thresholds"][-1] is None and len(d["kappa"]) == len(sw)
    # the extremes: nothing positive at the highest score, everything below the lowest
    assert sw.at(0.8)["tp"] == 0 and sw.at(0.0999)["tn"] == 0
    y2 = np.array([1, 1, 0])
    assert M.threshold_sweep(y2, np.array([0.9, 0.8, 0.1])).best("kappa") == pytest.approx(0.45)
    assert M.threshold_sweep(np.array([0, 0, 1]), np.array([0.9, 0.8, 0.1])).best("accuracy") \
        == pytest.approx(0.9)  # best is calling nothing positive


def naive_bootstrap(y, p, s, n_classes, n_resamples, seed):
    """The obvious loop, as the oracle for the vectorised one (same resampling stream)."""
    rng = np.random.default_rng(seed)
    n = y.size
    ks, aucs = [], []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=(1, n), dtype=np.int64)[0]
        ks.append(M.cohen_kappa(y[idx], p[idx], n_classes))
        aucs.append(M.auroc(y[idx] == 1, s[idx]))
    return np.array(ks), np.array(aucs)


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_matches_naive_loop(ties):
    rng = np.random.default_rng(11)
    n = 150
    y = rng.integers(0, 2, n)
    s = np.clip(rng.random(n) * 0.8 + 0.25 * y, 0, 1)
    if ties:
        s = np.round(s, 1)
    p = (s > 0.5).astype(int)
    res = B.bootstrap_metrics(y, p, s, 2, n_resamples=200, seed=5, block_cells=n * 200)
    ks, aucs = naive_bootstrap(y, p, s, 2, 200, 5)
    assert res["kappa"].low == pytest.approx(np.quantile(ks[~np.isnan(ks)], 0.025))
    assert res["kappa"].high == pytest.approx(np.quantile(ks[~np.isnan(ks)], 0.975))
    assert res["auroc"].low == pytest.approx(np.quantile(aucs, 0.025))
    assert res["auroc"].high == pytest.approx(np.quantile(aucs, 0.975))
    # the point estimate lies inside its interval
    assert res["kappa"].low <= M.cohen_kappa(y, p, 2) <= res["kappa"].high
    assert res["auroc"].low <= M.auroc(y, s) <= res["auroc"].high


def test_bootstrap_generic_path_agrees_with_binary_fast_path():
    rng = np.random.default_rng(2)
    n = 300
    y = rng.integers(0, 2, n)
    s = np.round(rng.random(n) * 0.7 + 0.3 * y, 2)
    p = (s > 0.5).astype(int)
    fast = B.bootstrap_metrics(y, p, s, 2, n_resamples=300, seed=1)
    out = {m: np.empty(300) for m in B.METRICS}
    B._generic_blocks(np.random.default_rng(1), y, p, s, 2, 1, out, 300_000)
    for m in B.METRICS:
        lo, hi = np.quantile(out[m][~np.isnan(out[m])], [0.025, 0.975])
        assert fast[m].low == pytest.approx(lo) and fast[m].high == pytest.approx(hi), m


def test_bootstrap_multiclass_and_edge_cases():
    rng = np.random.default_rng(4)
    n, c = 200, 3
    y = rng.integers(0, c, n)
    probs = rng.dirichlet(np.ones(c), n)
    probs[np.arange(n), y] += 0.5
    probs /= probs.sum(1, keepdims=True)
    p = probs.argmax(1)
    res = B.bootstrap_metrics(y, p, probs, c, positive=0, n_resamples=100, seed=0)
    macro, _ = M.auroc_ovr(y, probs)
    assert res["auroc"].low < macro < res["auroc"].high
    # one class only: kappa and AUROC undefined in every resample
    one = B.bootstrap_metrics(np.ones(20, int), np.ones(20, int), np.linspace(0, 1, 20), 2,
                              n_resamples=50)
    assert np.isnan(one["kappa"].low) and np.isnan(one["auroc"].high)
    assert one["kappa"].n_defined == 0 and one["accuracy"].low == 1.0
    # empty
    empty = B.bootstrap_metrics(np.zeros(0, int), np.zeros(0, int), np.zeros(0), 2)
    assert all(np.isnan(v.low) for v in empty.values())
    # a rare positive class: some resamples draw none and are left out of AUROC's interval
    y = np.zeros(30, int)
    y[0] = 1
    rare = B.bootstrap_metrics(y, y, np.linspace(0, 1, 30)[::-1], 2, n_resamples=400, seed=0)
    assert 0 < rare["auroc"].n_defined < 400
