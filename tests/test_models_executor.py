"""The Qt-free model executor (radview.models.executor) with the app's real backend and a real
tiny model: typed requests, batching across studies, generations, cancel keeping a model load,
CAMs with the prediction, exceptions as objects, a quick stop that leaves no child process."""
from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from radview.models import executor as x
from radview.types import ImageRef

TINY = "tiny-exec"


@pytest.fixture
def tiny_model(radview_home) -> str:
    import torch

    from radview import paths
    from radview.models import arch
    from radview.models.manifest import sha256_file

    folder = paths.user_models_dir() / TINY
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(arch.build("efficientnet_lite0", 1, "binary").state_dict(), folder / "weights.pt")
    (folder / "manifest.json").write_text(json.dumps({
        "format": 1, "name": TINY, "version": "1", "task": "binary", "classes": ["normal", "abnormal"],
        "arch": "efficientnet_lite0", "input": {"size": [64, 64], "channels": 3},
        "weights": {"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")},
        "threshold": 0.5, "label_space": "mura"}), encoding="utf-8")
    return TINY


@pytest.fixture
def images(tmp_path) -> list[ImageRef]:
    from PIL import Image

    refs = []
    for i in range(10):
        p = tmp_path / "img" / f"i{i}.png"
        p.parent.mkdir(exist_ok=True)
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(p)
        refs.append(ImageRef(str(p)))
    return refs


class CountingBackend:
    """The app's real Backend, counting its predict calls (batches)."""

    def __new__(cls):
        from radview.gui.inference import Backend

        class _B(Backend):
            calls: list[int] = []

            def iter_predict(self, refs, cancelled=lambda: False):
                self.calls.append(len(list(refs)))
                yield from super().iter_predict(refs, cancelled)
        _B.calls = []
        return _B(batch_size=4)


class Events:
    def __init__(self):
        self.items: list = []
        self.cond = threading.Condition()

    def __call__(self, ev):
        with self.cond:
            self.items.append(ev)
            self.cond.notify_all()

    def wait(self, pred, timeout=60.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; events: {[type(e).__name__ for e in self.items]}")
                self.cond.wait(left)

    def of(self, kind):
        return [e for e in self.items if isinstance(e, kind)]


def _executor(batch_images=4):
    ev = Events()
    ex = x.Executor(CountingBackend, ev, batch_images=batch_images)
    ex.start()
    ev.wait(lambda items: any(isinstance(e, x.Ready) for e in items))
    return ex, ev


def test_batches_across_studies_and_the_priority_study_first(tiny_model, images):
    ex, ev = _executor(batch_images=4)
    try:
        gen = ex.load_model(TINY)
        ev.wait(lambda items: any(isinstance(e, x.ModelLoaded) for e in items))
        studies = [(f"s{i}", (r,)) for i, r in enumerate(images)]
        ex.predict_studies(studies, priority="s7")
        ev.wait(lambda items: len([e for e in items if isinstance(e, x.StudyPredictionReady)]) == 10)
        sps = ev.of(x.StudyPredictionReady)
        assert sps[0].study_prediction.study_key == "s7"  # the visible study first
        assert all(e.gen == gen for e in sps)
        calls = ex.backend.calls
        assert calls[0] == 1 and sum(calls) == 10 and max(calls) == 4  # 1 + 4 + 4 + 1: across studies
        assert len(calls) == 4
        assert ev.of(x.ProgressEvent)[-1].done == 10
    finally:
        assert ex.stop(1.0)


def test_cams_come_with_the_prediction_and_requests_are_typed(tiny_model, images):
    ex, ev = _executor()
    try:
        ex.load_model(TINY)
        ev.wait(lambda items: bool(ev.of(x.ModelLoaded)))
        block = ev.of(x.ModelLoaded)[0].info.default_block
        ex.set_auto_cams(True, block)
        ex.predict_studies([("a", tuple(images[:2])), ("b", (images[2],))], priority="a")
        ev.wait(lambda items: len(ev.of(x.CamReady)) == 2)
        cams = ev.of(x.CamReady)
        assert {c.key for c in cams} == {(TINY, r.key, block or "") for r in images[:2]}
        assert cams[0].cam.data.shape == (40, 48)
        # a CAM asked for the same image now is not computed twice
        n = len(ev.of(x.CamReady))
        ex.request_cams([x.CamRequest(cams[0].key, images[0], None, block)])
        ex.call("after", lambda b: "done")
        ev.wait(lambda items: bool(ev.of(x.Called)))
        assert len(ev.of(x.CamReady)) == n
        # a model named like a request kind does not misroute anything: keys are opaque objects
        ex.request_cams([(("review", images[3].key), images[3], None, block)])
        ev.wait(lambda items: len(ev.of(x.CamReady)) == n + 1)
        assert ev.of(x.CamReady)[-1].key == ("review", images[3].key)
    finally:
        ex.stop(1.0)


def test_cancel_drops_work_but_never_a_model_load(tiny_model, images):
    ex, ev = _executor()
    try:
        ex.load_model(TINY)
        gen = ex.cancel()  # Esc while the model loads
        ev.wait(lambda items: bool(ev.of(x.ModelLoaded)))
        assert ev.of(x.ModelLoaded)[0].gen == gen  # delivered in the generation the GUI now has
        ex.predict_studies([(f"s{i}", (r,)) for i, r in enumerate(images)])
        ev.wait(lambda items: bool(ev.of(x.PredictionReady)))
        new = ex.next_generation()
        ex.call("mark", lambda b: None)
        ev.wait(lambda items: bool(ev.of(x.Called)))
        late = [e for e in ev.items[ev.items.index(ev.of(x.Called)[0]):] if isinstance(e, x.PredictionReady)]
        assert not late and ev.of(x.Called)[0].gen == new
    finally:
        ex.stop(1.0)


def test_errors_arrive_as_exception_objects(tiny_model):
    ex, ev = _executor()
    try:
        ex.load_model("no-such-model")
        ev.wait(lambda items: bool(ev.of(x.Failed)))
        failed = ev.of(x.Failed)[0]
        assert isinstance(failed.error, Exception) and "no-such-model" in str(failed.error)
        assert failed.where == "loading no-such-model"

        def boom(_b):
            raise ZeroDivisionError("deliberate")
        ex.call("boom", boom)
        ev.wait(lambda items: len(ev.of(x.Failed)) == 2)
        assert isinstance(ev.of(x.Failed)[1].error, ZeroDivisionError)
        ex.call("still alive", lambda b: 42)  # the loop carries on
        ev.wait(lambda items: bool(ev.of(x.Called)))
        assert ev.of(x.Called)[0].result == 42
    finally:
        ex.stop(1.0)


def test_stop_is_quick_and_leaves_no_child_process(tiny_model, images):
    ex, ev = _executor()
    ex.load_model(TINY)
    ev.wait(lambda items: bool(ev.of(x.ModelLoaded)))
    ex.predict_studies([(f"s{i}", (r,)) for i, r in enumerate(images * 20)])
    ev.wait(lambda items: bool(ev.of(x.PredictionReady)))
    t0 = time.monotonic()
    ended = ex.stop(0.6)
    assert time.monotonic() - t0 < 1.0 and ended
    assert multiprocessing.active_children() == []
    from multiprocessing import forkserver

    assert not getattr(forkserver._forkserver, "_forkserver_pid", None)
