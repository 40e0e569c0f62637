"""Issue 13: the model the user picked (the heatmap/classifier model) is routed by body part like
the side models: a chest model is not run on a hand, in the model executor (the app's real
Backend, real bundled body-part gate) and in `radview predict` (a `skipped` row with the reason),
unless asked for ("Run on this study" / --all-studies). Phantom images (generated DICOMs whose
headers state the body part), a tiny chest-gated model: no ../shared needed."""
from __future__ import annotations

import csv
import io
import json
import threading
import time

import numpy as np
import pytest

from radview.models import executor as x
from radview.models import routing

TINY_CHEST = "tiny-chest-routed"


@pytest.fixture
def tiny_chest(radview_home) -> str:
    """A chest classifier (Lite0, random weights, 64 px) whose domain is the body-part model's
    `chest`: what routing reads from any chest model's manifest."""
    import torch

    from radview import paths
    from radview.models import arch
    from radview.models.manifest import sha256_file

    folder = paths.user_models_dir() / TINY_CHEST
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(arch.build("efficientnet_lite0", 1, "binary").state_dict(), folder / "weights.pt")
    (folder / "manifest.json").write_text(json.dumps({
        "format": 1, "name": TINY_CHEST, "version": "1", "task": "binary", "classes": ["normal", "abnormal"],
        "arch": "efficientnet_lite0", "input": {"size": [64, 64], "channels": 3},
        "weights": {"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")}, "threshold": 0.5,
        "domain": {"modalities": ["CR", "DX"], "gate_model": "body-part", "gate_classes": ["chest"]}}),
        encoding="utf-8")
    return TINY_CHEST


@pytest.fixture
def body_part_installed():
    from radview.models import registry

    if not registry.get_model_info("body-part").installed:
        pytest.skip("bundled body-part weights are not installed")


def _image(seed: int, size=(96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, xx = np.mgrid[0:size[0], 0:size[1]]
    return np.clip(1000 + 800 * np.sin(xx / 7.0) * np.cos(y / 9.0) + rng.normal(0, 40, size), 0, 4095).astype(np.uint16)


@pytest.fixture
def folder(tmp_path):
    """A chest, a hand and a CT whose DICOM headers say so (one study each)."""
    from dicom_factory import write_dicom

    root = tmp_path / "mixed"
    write_dicom(root / "chest.dcm", _image(1), body_part="CHEST", patient_id="P1", bits_stored=12)
    write_dicom(root / "hand.dcm", _image(2), body_part="HAND", patient_id="P2", bits_stored=12)
    write_dicom(root / "ct.dcm", _image(3), body_part="CHEST", modality="CT", patient_id="P3", bits_stored=12)
    return root


def test_plan_studies_header_first_and_the_body_part_model_only_where_it_is_silent(folder, tiny_chest):
    from radview.io import scan
    from radview.models import registry

    studies = scan(str(folder)).studies
    asked: list = []

    def predictor(refs):
        asked.extend(refs)
        return []

    plan = {p.study.views[0].ref.path.rsplit("/", 1)[-1]: p
            for p in routing.plan_studies(studies, registry.get_model_info(tiny_chest).manifest, predictor)}
    assert not asked  # every header states a part: the body-part model is not needed
    assert plan["chest.dcm"].route.run and plan["chest.dcm"].verdict.source == "dicom"
    assert not plan["hand.dcm"].route.run and "musculoskeletal" in plan["hand.dcm"].route.reason
    assert not plan["ct.dcm"].route.run and "Modality CT" in plan["ct.dcm"].route.reason


class _Events:
    def __init__(self):
        self.items: list = []
        self.cond = threading.Condition()

    def __call__(self, ev):
        with self.cond:
            self.items.append(ev)
            self.cond.notify_all()

    def wait(self, pred, timeout=120.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; events: {[type(e).__name__ for e in self.items]}")
                self.cond.wait(left)

    def of(self, kind):
        with self.cond:
            return [e for e in self.items if isinstance(e, kind)]


def test_executor_routes_the_primary_model_and_runs_it_when_asked(folder, tiny_chest, body_part_installed):
    from radview.gui.inference import Backend
    from radview.io import scan

    studies = {s.views[0].ref.path.rsplit("/", 1)[-1]: s for s in scan(str(folder)).studies}
    ev = _Events()
    ex = x.Executor(lambda: Backend(batch_size=4), ev, batch_images=8)
    ex.start()
    try:
        ev.wait(lambda items: any(isinstance(e, x.Ready) for e in items))
        gen = ex.load_model(tiny_chest, "cpu")
        ev.wait(lambda items: any(isinstance(e, x.ModelLoaded) for e in items))
        ex.set_routing("body-part", ())
        ex.predict_studies([(s.key, tuple(v.ref for v in s.views), routing.study_metas(s)) for s in studies.values()])
        chest, hand, ct = studies["chest.dcm"], studies["hand.dcm"], studies["ct.dcm"]

        def settled(items):
            done = {e.study_key for e in items if isinstance(e, x.Skipped)}
            done |= {e.study_prediction.study_key for e in items if isinstance(e, x.StudyPredictionReady)}
            return {chest.key, hand.key, ct.key} <= done

        ev.wait(settled)
        skipped = {e.study_key: e for e in ev.of(x.Skipped)}
        assert set(skipped) == {hand.key, ct.key}
        assert all(e.model == tiny_chest and e.gen == gen for e in skipped.values())
        assert "musculoskeletal" in skipped[hand.key].reason and "chest" in skipped[hand.key].reason
        assert "Modality CT" in skipped[ct.key].reason
        ran = {e.pred.ref.path.rsplit("/", 1)[-1] for e in ev.of(x.PredictionReady)}
        assert ran == {"chest.dcm"}  # the primary saw the chest only
        progress = ev.of(x.ProgressEvent)
        assert progress[-1].done == progress[-1].total == 3  # skipped studies count as done
        # the user asks for it on the hand: it runs there, and its gate flags the answer
        ex.run_anyway(hand.key, tuple(v.ref for v in hand.views), tiny_chest, routing.study_metas(hand))
        ev.wait(lambda items: any(isinstance(e, x.StudyPredictionReady) and e.study_prediction.study_key == hand.key
                                  for e in items))
        sp = next(e.study_prediction for e in ev.of(x.StudyPredictionReady) if e.study_prediction.study_key == hand.key)
        assert sp.model == tiny_chest and not sp.in_domain and sp.domain_reason
    finally:
        ex.stop(timeout=2.0)


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_cli_predict_skips_studies_outside_the_domain_with_the_reason(folder, tiny_chest, tmp_path, capsys):
    from radview.cli import main

    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), "--model", tiny_chest, "--device", "cpu", "--out", str(out)]) == 0
    rows = _rows(out.read_text())
    err = capsys.readouterr().err
    skipped = {r["path"].rsplit("/", 1)[-1]: r for r in rows if r["level"] == "skipped"}
    assert set(skipped) == {"hand.dcm", "ct.dcm"}
    assert skipped["hand.dcm"]["domain_reason"].startswith("not run: study is musculoskeletal")
    assert "Modality CT" in skipped["ct.dcm"]["domain_reason"] and skipped["ct.dcm"]["in_domain"] == "false"
    images = [r for r in rows if r["level"] == "image"]
    assert [r["path"].rsplit("/", 1)[-1] for r in images] == ["chest.dcm"]
    assert "2 studies skipped" in err and "musculoskeletal: 1" in err and "other: 1" in err
    # --all-studies: every study runs; the gate flags what is not a chest
    out2 = tmp_path / "all.json"
    assert main(["predict", str(folder), "--model", tiny_chest, "--device", "cpu", "--out", str(out2),
                 "--all-studies"]) == 0
    rows2 = json.loads(out2.read_text())
    assert not [r for r in rows2 if r["level"] == "skipped"]
    imgs = {r["path"].rsplit("/", 1)[-1]: r for r in rows2 if r["level"] == "image"}
    assert set(imgs) == {"chest.dcm", "hand.dcm", "ct.dcm"}
    assert imgs["hand.dcm"]["in_domain"] is False and imgs["ct.dcm"]["in_domain"] is False
