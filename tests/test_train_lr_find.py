"""lr_find: a loss-vs-learning-rate curve and a suggestion; the model's weights are untouched."""
from __future__ import annotations

import math

import numpy as np
import pytest

from radview.models.manifest import manifest_from_dict
from radview.train import synthetic
from radview.train.config import TrainConfig
from radview.train.data import build_dataset


def test_lr_find_curve_and_suggestion(tmp_path):
    import torch

    from radview.models import arch
    from radview.train.dataset import ImageSet
    from radview.train.loop import LRFinderResult, lr_find
    from radview.train.run import state_digest

    root = tmp_path / "data"
    synthetic.stripes(root, n_h=12, n_v=12, n_checker=0, size=32)
    m = manifest_from_dict(synthetic.tiny_manifest())
    data = [p.payload for p in build_dataset(root, m, None, TrainConfig()) if p.payload is not None][-1]
    images = ImageSet(data.samples, m)
    train = [i for i, s in enumerate(data.samples) if s.split == "train"]
    torch.manual_seed(0)
    model = arch.build(m.arch, m.num_outputs, m.task, **m.arch_kwargs)
    before = state_digest(model)
    res = None
    n_progress = 0
    for p in lr_find(model, m.arch, m.task, images, train, TrainConfig(batch_size=8), torch.device("cpu"),
                     start_lr=1e-6, end_lr=10.0, num_it=40):
        n_progress += 1
        if isinstance(p.payload, LRFinderResult):
            res = p.payload
    assert res is not None and n_progress >= 10
    assert 10 <= len(res.lrs) == len(res.losses) <= 40
    lrs = np.asarray(res.lrs)
    assert np.all(np.diff(lrs) > 0) and lrs[0] == pytest.approx(1e-6)
    assert all(math.isfinite(v) for v in res.losses[:-1])
    for v in (res.suggestion, res.valley, res.steep, res.minimum):
        assert 1e-7 <= v <= 10.0
    assert res.suggestion == res.valley
    # the range test climbs to divergence or to end_lr: its end is far above its start
    assert lrs[-1] > 1e-2
    assert state_digest(model) == before  # weights restored
