"""radview.review: building a review from predictions + labels, top losses, confusion matrix,
most confused, per-group metrics, summaries and site thresholds."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from radview.review import (Interpretation, Truth, build_review, class_index, summarize,
                            summary_to_dict, truths_from_studies)
from radview.review import thresholds as T
from radview.review.synthetic import MURA_STUDY_TYPES, synthetic_studies
from radview.types import Box, ImageRef, Label, Prediction, Study, StudyPrediction, View

CLASSES = ("normal", "abnormal")


def study(key, p_views, classes=CLASSES, model="m"):
    views = tuple(Prediction(ImageRef(f"{key}/v{i}.png"), model, "1", classes,
                             (1 - p, p) if len(classes) == 2 else tuple(p))
                  for i, p in enumerate(p_views))
    probs = np.mean([v.probs for v in views], axis=0)
    return StudyPrediction(key, model, "1", classes, tuple(float(x) for x in probs),
                           classes[int(np.argmax(probs))], views)


def test_class_index_mapping():
    assert class_index(Label("abnormal"), CLASSES) == 1
    assert class_index(Label("Normal"), CLASSES) == 0
    assert class_index(Label("1"), CLASSES) == 1            # MURA CSV style
    assert class_index(Label("0"), CLASSES) == 0
    assert class_index(Label("abd"), ("abdomen", "chest")) == 0  # folder name prefix
    assert class_index(Label("chest"), ("abd", "chest")) == 1
    assert class_index(Label("positive"), ("no_pneumonia", "pneumonia")) == 1
    assert class_index(Label(None, boxes=(Box(1, 2, 3, 4),)), ("normal", "pneumonia")) == 1
    assert class_index(Label(None), CLASSES) is None
    assert class_index(Label("elbow"), CLASSES) is None
    assert class_index(Label("7"), CLASSES) is None


def test_study_loss_is_bce_of_mean_probability_mura_rule():
    # views 0.9 and 0.5 -> study p = 0.7; label normal -> loss = -log(0.3)
    data = build_review([study("s1", [0.9, 0.5]), study("s2", [0.2])],
                        {"s1": Label("normal"), "s2": Label("normal")})
    assert data.losses[0] == pytest.approx(-math.log(0.3))
    assert data.losses[1] == pytest.approx(-math.log(0.8))
    # image losses: each view against the study label
    assert data.image_losses.tolist() == pytest.approx([-math.log(0.1), -math.log(0.5),
                                                        -math.log(0.8)])
    # a certain miss is finite (clipped at 1e-7)
    hard = build_review([study("s", [1.0])], {"s": Label("normal")})
    assert hard.losses[0] == pytest.approx(-math.log(1e-7))


def test_multiclass_loss_is_cross_entropy():
    classes = ("a", "b", "c")
    sp = study("s", [(0.2, 0.5, 0.3), (0.4, 0.4, 0.2)], classes)
    data = build_review([sp], {"s": Label("c")})
    assert data.threshold is None and not data.is_binary
    assert data.losses[0] == pytest.approx(-math.log(0.25))
    assert data.y_pred.tolist() == [1]


def test_build_review_skips_with_reasons():
    bad = StudyPrediction("bad", "m", "1", CLASSES, (), None,
                          (Prediction(ImageRef("bad/x.dcm"), "m", "1", CLASSES, (),
                                      error="x.dcm: truncated file"),))
    data = build_review([study("ok", [0.7]), study("nolabel", [0.3]), study("other", [0.3]), bad],
                        {"ok": Label("abnormal"), "other": Label("elbow"), "bad": Label("normal")})
    assert data.keys == ("ok",)
    reasons = dict(data.skipped)
    assert reasons["nolabel"] == "no label"
    assert "elbow" in reasons["other"]
    assert "truncated file" in reasons["bad"]


def make_interp(y, p, types=None, readers=None, corrected=None):
    preds, truths = [], {}
    for i, (yi, pi) in enumerate(zip(y, p)):
        key = f"s{i:02d}"
        preds.append(study(key, [pi]))
        truths[key] = Truth(Label(CLASSES[yi]), types[i] if types else "",
                            bool(corrected[i]) if corrected else False,
                            readers[i] if readers else "")
    return Interpretation(build_review(preds, truths))


def test_top_losses_order_and_content():
    y = [0, 1, 0, 1, 0, 1]
    p = [0.9, 0.1, 0.2, 0.8, 0.6, 0.6]
    interp = make_interp(y, p)
    top = interp.top_losses(3)
    # losses: s00 -log .1, s01 -log .1, s04 -log .4, s05 -log .6, s02 -log .8, s03 -log .8
    assert [t.study_key for t in top] == ["s00", "s01", "s04"]   # tie broken by key
    assert [t.rank for t in top] == [1, 2, 3]
    assert top[0].actual == "normal" and top[0].predicted == "abnormal"
    assert top[0].probability == pytest.approx(0.1) and top[0].p_predicted == pytest.approx(0.9)
    assert top[0].loss == pytest.approx(-math.log(0.1))
    assert len(top[0].views) == 1 and top[0].views[0].ref == "s00/v0.png"
    full = interp.top_losses()
    assert [t.study_key for t in full] == ["s00", "s01", "s04", "s05", "s02", "s03"]
    losses = [t.loss for t in full]
    assert losses == sorted(losses, reverse=True)
    assert [t.study_key for t in interp.top_losses(2, largest=False)] == ["s02", "s03"]
    assert interp.top_losses(0) == ()


def test_top_losses_partial_selection_equals_full_sort():
    preds, truths = synthetic_studies(2000, seed=3)
    interp = Interpretation(build_review(preds, truths))
    losses = interp.losses
    order = np.lexsort((np.array(interp.data.keys), -losses))
    top = interp.top_losses(25)
    assert [t.study_key for t in top] == [interp.data.keys[i] for i in order[:25]]


def test_confusion_matrix_cases_and_most_confused():
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.9, 0.7, 0.1, 0.2, 0.3, 0.8, 0.9]
    interp = make_interp(y, p)
    cm = interp.confusion_matrix()
    assert cm.tolist() == [[1, 2], [2, 2]]
    # normal called abnormal: s00 (p .9, worst) then s01
    assert interp.cases("normal", "abnormal") == ("s00", "s01")
    assert interp.cases("abnormal", "normal") == ("s03", "s04")
    mc = interp.most_confused()
    assert [(m.actual, m.predicted, m.count) for m in mc] == [
        ("abnormal", "normal", 2), ("normal", "abnormal", 2)]
    assert interp.most_confused(min_count=3) == []


def test_most_confused_multiclass_orders_by_count():
    classes = ("a", "b", "c")
    pairs = [("a", "b")] * 3 + [("c", "a")] * 1 + [("b", "c")] * 2 + [("a", "a")] * 4
    preds, truths = [], {}
    for i, (act, called) in enumerate(pairs):
        probs = [0.1, 0.1, 0.1]
        probs[classes.index(called)] = 0.8
        preds.append(study(f"s{i}", [tuple(probs)], classes))
        truths[f"s{i}"] = Label(act)
    interp = Interpretation(build_review(preds, truths))
    mc = [(m.actual, m.predicted, m.count) for m in interp.most_confused()]
    assert mc == [("a", "b", 3), ("b", "c", 2), ("c", "a", 1)]
    assert [(m.actual, m.count) for m in interp.most_confused(2)] == [("a", 3), ("b", 2)]


def test_metrics_agree_with_sklearn_and_have_intervals():
    preds, truths = synthetic_studies(500, seed=1)
    interp = Interpretation(build_review(preds, truths, threshold=0.5))
    m = interp.metrics(n_resamples=300)
    y = interp.data.y_true
    p1 = interp.data.probs[:, 1]
    call = (p1 > 0.5).astype(int)
    assert m.n == 500
    assert m.kappa == pytest.approx(skm.cohen_kappa_score(y, call))
    assert m.auroc == pytest.approx(skm.roc_auc_score(y, p1))
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, call))
    assert m.sensitivity == pytest.approx(skm.recall_score(y, call))
    assert m.specificity == pytest.approx(skm.recall_score(1 - y, 1 - call))
    for name in ("kappa", "auroc", "accuracy", "sensitivity", "specificity"):
        lo, hi = m.ci[name].low, m.ci[name].high
        assert lo < getattr(m, name) < hi, name
        assert hi - lo < 0.2
    # a different threshold changes the calls and the metrics
    m2 = interp.with_threshold(0.8).metrics(ci=False)
    assert m2.threshold == 0.8 and m2.sensitivity < m.sensitivity and m2.specificity > m.specificity


def test_per_group_metrics_equal_metrics_of_the_subset():
    preds, truths = synthetic_studies(700, seed=2)
    interp = Interpretation(build_review(preds, truths))
    groups = interp.per_group(n_resamples=100)
    assert list(groups) == sorted(MURA_STUDY_TYPES)
    assert sum(g.n for g in groups.values()) == 700
    for name, g in groups.items():
        keys = [k for k in interp.data.keys if truths[k].study_type == name]
        y = np.array([CLASSES.index(truths[k].label.value) for k in keys])
        p1 = np.array([dict((sp.study_key, sp.probs[1]) for sp in preds)[k] for k in keys])
        assert g.n == len(keys)
        assert g.kappa == pytest.approx(skm.cohen_kappa_score(y, (p1 > 0.5).astype(int)))
        assert g.auroc == pytest.approx(skm.roc_auc_score(y, p1))
        assert g.ci["kappa"].low <= g.kappa <= g.ci["kappa"].high


def test_per_class_one_vs_rest():
    classes = ("a", "b", "c")
    preds, truths = synthetic_studies(300, classes=classes, seed=5, study_types=())
    interp = Interpretation(build_review(preds, truths))
    assert interp.per_group() == {}
    pc = interp.per_class()
    y, call = interp.data.y_true, interp.y_pred
    for c, name in enumerate(classes):
        assert pc[name].sensitivity == pytest.approx(skm.recall_score(y == c, call == c))
        assert pc[name].precision == pytest.approx(skm.precision_score(y == c, call == c))
        assert pc[name].auroc == pytest.approx(skm.roc_auc_score(y == c, interp.data.probs[:, c]))
    m = interp.metrics(n_resamples=100)
    assert m.threshold is None
    assert m.auroc == pytest.approx(skm.roc_auc_score(y, interp.data.probs, multi_class="ovr"))
    assert set(m.ci) == {"kappa", "auroc", "accuracy"}
    with pytest.raises(ValueError):
        interp.threshold_sweep()


def test_edge_cases_one_class_and_empty():
    one = make_interp([1, 1, 1], [0.9, 0.8, 0.2])
    m = one.metrics(n_resamples=50)
    assert np.isnan(m.auroc) and np.isnan(m.specificity)
    assert m.sensitivity == pytest.approx(2 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = skm.cohen_kappa_score([1, 1, 1], [1, 1, 0])
    assert (np.isnan(m.kappa) and np.isnan(ref)) or m.kappa == pytest.approx(ref)
    empty = Interpretation(build_review([], {}))
    assert len(empty) == 0 and empty.top_losses(5) == ()
    em = empty.metrics()
    assert em.n == 0 and np.isnan(em.kappa) and np.isnan(em.ci["kappa"].low)
    s = summary_to_dict(summarize(empty))
    assert s["kappa"] is None and s["top_losses"] == [] and s["n_studies"] == 0
    json.dumps(s, allow_nan=False)


def test_filters_and_label_changes():
    y = [0, 1, 0, 1]
    p = [0.9, 0.2, 0.1, 0.7]
    interp = make_interp(y, p, types=["XR_HAND", "XR_HAND", "XR_WRIST", "XR_WRIST"],
                         readers=["", "ana", "", "bo"], corrected=[0, 1, 0, 1])
    assert interp.filter(study_type="XR_HAND").data.keys == ("s00", "s01")
    assert interp.filter(corrected=True).data.keys == ("s01", "s03")
    assert interp.filter(reader="bo").data.keys == ("s03",)
    assert interp.filter(actual="abnormal", predicted="normal").data.keys == ("s01",)
    sub = interp.filter(keys=["s03", "s00"])
    assert sub.data.keys == ("s00", "s03") and sub.data.image_refs == ("s00/v0.png", "s03/v0.png")
    # correcting s00 to abnormal removes the worst loss and raises kappa
    before = interp.metrics(ci=False)
    after = Interpretation(interp.data.with_label("s00", Label("abnormal"), reader="ana"))
    assert after.top_losses(1)[0].study_key == "s01"
    assert after.metrics(ci=False).accuracy > before.accuracy
    assert after.data.corrected[0] and after.data.readers[0] == "ana"
    assert after.data.image_y_true[0] == 1
    with pytest.raises(ValueError):
        interp.data.with_label("s00", Label("elbow"))


def test_image_losses_each_view_against_its_label():
    preds = [study("s1", [0.9, 0.2, 0.6])]
    data = build_review(preds, {"s1": Truth(Label("normal"), image_labels={
        "s1/v1.png": Label("abnormal")})})
    interp = Interpretation(data)
    top = interp.image_top_losses()
    # v0: normal vs p(normal) .1; v1: its own label abnormal vs .2; v2: normal vs .4
    assert [v.ref for v in top] == ["s1/v0.png", "s1/v1.png", "s1/v2.png"]
    assert [v.loss for v in top] == pytest.approx([-math.log(0.1), -math.log(0.2), -math.log(0.4)])
    assert top[1].actual == "abnormal" and top[1].predicted == "normal"


def test_summary_dict_has_the_documented_keys():
    preds, truths = synthetic_studies(200, seed=9, corrected_fraction=0.1)
    data = build_review(preds, truths)
    s = summarize(data, top_k=5, n_resamples=100)
    d = summary_to_dict(s)
    for key in ("kappa", "auroc", "accuracy", "confusion_matrix", "most_confused", "top_losses",
                "per_group", "sensitivity", "specificity", "kappa_ci", "auroc_ci", "per_class",
                "image_level", "roc", "best_threshold", "threshold", "threshold_source"):
        assert key in d, key
    assert len(d["top_losses"]) == 5
    img = d["image_top_losses"]
    assert len(img) == 5 and [v["loss"] for v in img] == sorted([v["loss"] for v in img], reverse=True)
    assert img[0]["loss"] == pytest.approx(float(data.image_losses.max()))
    assert np.array(d["confusion_matrix"]).sum() == 200
    assert d["image_level"]["n"] == s.n_images > 200
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["per_group"]["XR_ELBOW"]["n"] > 0


def test_truths_from_studies_and_overrides():
    a = Study("/d/p1/s1", study_type="XR_HAND", label=Label("abnormal", source="mura-folder"),
              views=(View(ImageRef("/d/p1/s1/a.png")), View(ImageRef("/d/p1/s1/b.png"))))
    b = Study("/d/chest/x.png", views=(View(ImageRef("/d/chest/x.png"), Label("chest")),))
    c = Study("/d/none.png", views=(View(ImageRef("/d/none.png")),))
    t = truths_from_studies([a, b, c])
    assert t["/d/p1/s1"].label.value == "abnormal" and t["/d/p1/s1"].study_type == "XR_HAND"
    assert t["/d/chest/x.png"].label.value == "chest"
    assert "/d/none.png" not in t
    # overrides by study key and by view path win; corrected marks the reader
    t2 = truths_from_studies([a, b, c], overrides={"/d/p1/s1": Label("normal"),
                                                   "/d/none.png": Label("abd")},
                             corrected={"/d/p1/s1": "ana"})
    assert t2["/d/p1/s1"].label.value == "normal" and t2["/d/p1/s1"].corrected
    assert t2["/d/p1/s1"].reader == "ana"
    assert t2["/d/none.png"].label.value == "abd"


def test_site_threshold_roundtrip(radview_home):
    assert T.site_threshold("region") is None
    assert T.effective_threshold("region", 0.5) == (0.5, "model")
    entry = T.save_site_threshold("region", 0.37, model_version="2", criterion="youden",
                                  n_studies=120, chosen_by="ana")
    assert entry.source == "site"
    assert T.thresholds_path().parent == radview_home
    got = T.site_threshold("region")
    assert got.threshold == 0.37 and got.chosen_by == "ana" and got.criterion == "youden"
    assert T.effective_threshold("region", 0.5) == (0.37, "site")
    T.save_site_threshold("other", 0.6)
    assert [x.model for x in T.list_site_thresholds()] == ["other", "region"]
    assert T.clear_site_threshold("region") and not T.clear_site_threshold("region")
    assert T.effective_threshold("region", 0.5) == (0.5, "model")
    with pytest.raises(ValueError):
        T.save_site_threshold("x", 1.5)
    T.thresholds_path().write_text("{not json")
    with pytest.raises(ValueError, match="site_thresholds.json"):
        T.site_threshold("other")


def test_probability_equal_to_threshold_is_negative_like_the_engine():
    interp = make_interp([0, 1, 1], [0.5, 0.5, 0.51])
    assert interp.y_pred.tolist() == [0, 0, 1]
    sw = interp.threshold_sweep()
    assert sw.at(0.5)["tp"] == 1 and sw.at(0.5)["fp"] == 0


def test_core_imports_neither_qt_nor_torch():
    import subprocess
    import sys

    code = ("import sys, radview.review, radview.review.report, radview.review.collect, "
            "radview.review.text, radview.cli.review; "
            "bad = [m for m in ('torch', 'torchvision', 'PySide6', 'matplotlib', 'sklearn') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_store_overrides_corrections_readers_and_undo(tmp_path):
    from radview.review.collect import store_overrides
    from radview.store import LabelStore

    one = Study("/d/a.png", label=Label("normal", source="class-folder"),
                views=(View(ImageRef("/d/a.png"), Label("normal")),))
    multi = Study("XR_HAND/patient1/study1_negative", study_type="XR_HAND",
                  label=Label("normal", source="mura-folder"),
                  views=(View(ImageRef("/m/1.png")), View(ImageRef("/m/2.png"))))
    plain = Study("/d/b.png", label=Label("abnormal"), views=(View(ImageRef("/d/b.png")),))
    with LabelStore(tmp_path / "s.sqlite", reader="ana") as store:
        store.set_label("/d/a.png", "abnormal", level="study", reason="wrong_label")
        c = store.set_label("/m/2.png", "abnormal", level="image", reason="wrong_label")
        store.set_source_labels({"/d/b.png": Label("normal")}, level="study", source="import:csv")
        ov, corr = store_overrides(store, [one, multi, plain])
        assert ov["/d/a.png"].value == "abnormal"
        assert ov["/m/2.png"].value == "abnormal"
        assert ov["/d/b.png"].value == "normal"          # imported source label
        assert corr == {"/d/a.png": "ana", multi.key: "ana"}
        ov2, _ = store_overrides(store, [plain], include_source=False)
        assert "/d/b.png" not in ov2
        t = truths_from_studies([one, multi, plain], ov, corr)
        assert t["/d/a.png"].label.value == "abnormal" and t["/d/a.png"].corrected
        assert t[multi.key].label.value == "normal"      # the study label stands ...
        assert t[multi.key].image_labels["/m/2.png"].value == "abnormal"  # ... the view differs
        store.undo(c.id)
        _, corr = store_overrides(store, [one, multi, plain])
        assert corr == {"/d/a.png": "ana"}
