"""Inference engine on real PNGs and DICOMs, the out-of-domain gate, study aggregation."""
from __future__ import annotations

import dataclasses
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from radview.io import load_frame
from radview.models import registry
from radview.models.engine import aggregate_study, iter_predict, predict_frames, predicted_class
from radview.types import Box, ImageRef, Prediction


@pytest.fixture(scope="module")
def region():
    return registry.load_model("region", "cpu")


def test_region_model_on_real_val_pngs(region, shared_data):
    val = sorted((shared_data / "openi-chest-abdomen" / "val").glob("*/*.png"))
    assert len(val) == 9
    preds = list(iter_predict([str(p) for p in val], region, batch_size=4))
    same = list(iter_predict([str(p) for p in val], region, batch_size=3, decoder="thread"))
    assert np.allclose([p.probs for p in same], [p.probs for p in preds], atol=1e-6)
    assert [p.ref.path for p in preds] == [str(p) for p in val]  # input order
    right = sum(p.predicted == path.parent.name for p, path in zip(preds, val))
    assert right >= 8, [(p.ref.path, p.probs) for p in preds]
    assert all(p.in_domain and p.domain_reason == "" for p in preds)
    assert all(p.model == "region" and p.classes == ("abd", "chest") and abs(sum(p.probs) - 1) < 1e-6 for p in preds)


def test_real_chest_dicoms_are_in_domain_chest(shared_data):
    # the body-part model is the gate every chest model leans on. (The legacy 65-image `region` model
    # calls 2 of these 5 "abd" once 8-bit DICOMs get pixels/255 like their JPEG twins, instead of the
    # viewer's auto window that hid that weakness: its card says how little it saw.)
    files = sorted((shared_data / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm"))[:4]
    files.append(shared_data / "dicom" / "siim-chest-cr-jpeg-baseline.dcm")
    preds = list(iter_predict([str(f) for f in files], registry.load_model("body-part", "cpu")))
    assert all(p.error is None for p in preds)
    assert all(p.predicted == "chest" for p in preds), [(p.ref.path, p.probs) for p in preds]
    assert all(p.in_domain for p in preds), [(p.ref.path, p.domain_reason) for p in preds]


@pytest.mark.parametrize("name", ["RG3_UNCR.dcm", "CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm"])
def test_gate_flags_out_of_domain_inputs(region, testdata, name):
    frame = load_frame(testdata(name))
    (with_meta,) = predict_frames([frame], region)
    assert not with_meta.in_domain and with_meta.domain_reason
    # pixels alone (as if exported to PNG): the feature gate must still flag it
    (pixels_only,) = predict_frames([dataclasses.replace(frame, meta={})], region)
    assert not pixels_only.in_domain
    assert "unlike the training images (feature similarity" in pixels_only.domain_reason
    assert pixels_only.probability > 0.5  # softmax still answers confidently: why it is no gate


def test_metadata_reason_is_specific(region, testdata):
    (p,) = predict_frames([load_frame(testdata("CT_small.dcm"))], region)
    assert "Modality CT is not one of CR/DX/DR/RG" in p.domain_reason
    (p,) = predict_frames([load_frame(testdata("RG3_UNCR.dcm"))], region)
    assert "BodyPartExamined EXTREMITY" in p.domain_reason
    (p,) = predict_frames([load_frame(testdata("RG1_UNCR.dcm"))], region)
    assert p.in_domain and p.predicted == "chest"


def test_gate_off_and_noise(region, tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (200, 180), dtype=np.uint8)).save(tmp_path / "noise.png")
    (p,) = list(iter_predict([str(tmp_path / "noise.png")], region))
    assert not p.in_domain
    (q,) = list(iter_predict([str(tmp_path / "noise.png")], region, gate=False))
    assert q.in_domain and q.domain_reason == "" and q.probs == p.probs


@pytest.mark.parametrize("decoder", ["process", "thread"])
def test_bad_files_give_error_predictions_and_the_run_goes_on(region, tmp_path, radiographs, decoder):
    good = radiographs.series[:2]
    (tmp_path / "trunc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (tmp_path / "x.dcm").write_bytes(b"nonsense")
    refs = [str(good[0]), str(tmp_path / "trunc.png"), str(tmp_path / "missing.png"), str(tmp_path / "x.dcm"),
            str(good[1])]
    preds = list(iter_predict(refs, region, batch_size=2, decoder=decoder))
    assert [p.ref.path for p in preds] == refs
    assert [p.error is None for p in preds] == [True, False, False, False, True]
    for p in preds[1:4]:
        assert p.error.startswith(p.ref.path + ":") and p.probs == () and p.predicted is None
    assert "no such file" in preds[2].error.lower()


@pytest.mark.parametrize("decoder", ["process", "thread"])
def test_iter_predict_is_lazy_and_cancellable(region, radiographs, decoder):
    src = list(radiographs.series)
    pulled = []

    def refs():
        for p in src:
            pulled.append(p)
            yield ImageRef(str(p))

    interval = sys.getswitchinterval()
    gen = iter_predict(refs(), region, batch_size=2, decoder=decoder)
    first = next(gen)
    assert sys.getswitchinterval() <= 0.001  # while running (see engine doc)
    assert first.ref.path == str(src[0])
    assert len(pulled) <= 4  # this batch and the one being decoded ahead, not the whole folder
    gen.close()
    assert len(pulled) <= 4
    assert sys.getswitchinterval() == interval
    for t in threading.enumerate():
        if t.name.startswith("radview-decode"):
            t.join(timeout=5)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("radview-decode")]


def test_decoder_processes_never_import_torch_or_qt(region, radiographs):
    from radview.models import decoding

    val = [radiographs.chest]
    assert list(iter_predict([str(p) for p in val], region, decoder="process"))[0].error is None
    seen = decoding.process_pool().submit(decoding.loaded_modules, ["torch", "PySide6", "radview.io"]).result()
    assert seen == {"torch": False, "PySide6": False, "radview.io": True}


def _pred(path, probs, classes=("normal", "abnormal"), **kw):
    return Prediction(ImageRef(path), "m", "1", classes, probs, **kw)


def test_study_aggregation_binary_mura_rule():
    views = [_pred("a", (0.6, 0.4)), _pred("b", (0.2, 0.8)), _pred("c", (0.5, 0.5))]
    s = aggregate_study("XR_WRIST/p1/study1", views)
    assert s.probs == pytest.approx((0.4333333, 0.5666667))
    assert s.predicted == "abnormal" and s.in_domain and len(s.views) == 3
    assert aggregate_study("k", views, threshold=0.6).predicted == "normal"
    assert aggregate_study("k", [_pred("a", (0.5, 0.5))]).predicted == "normal"  # abnormal only if > threshold
    with_err = views + [Prediction(ImageRef("d"), "m", "1", ("normal", "abnormal"), (), error="d: bad")]
    assert aggregate_study("k", with_err).probs == s.probs  # unreadable views are left out
    assert aggregate_study("k", with_err[-1:]).predicted is None
    assert predicted_class(views[2], 0.5) == "normal" and predicted_class(views[1], 0.9) == "normal"


def test_study_aggregation_multiclass_detection_and_domain():
    cls = ("a", "b", "c")
    s = aggregate_study("k", [_pred("1", (0.5, 0.3, 0.2), cls), _pred("2", (0.1, 0.5, 0.4), cls),
                              _pred("3", (0.2, 0.4, 0.4), cls)])
    assert s.predicted == "b" and s.probs == pytest.approx((0.8 / 3, 0.4, 1.0 / 3))
    box = Box(1, 2, 3, 4, "opacity", 0.9)
    det = [_pred("1", (0.1, 0.9), ("normal", "pneumonia"), boxes=(box,)),
           _pred("2", (0.8, 0.2), ("normal", "pneumonia"), in_domain=False, domain_reason="Modality CT")]
    s = aggregate_study("k", det)
    assert s.views[0].boxes == (box,) and s.views[1].boxes == ()
    assert not s.in_domain and s.domain_reason == "1 of 2 views out of domain: Modality CT"
    assert s.predicted == "pneumonia"
