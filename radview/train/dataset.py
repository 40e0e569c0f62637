"""Samples -> tensors: the same preprocessing as inference (radview.models.preprocess), an
in-memory cache of decoded inputs, batch augmentation and the distributed sampler.

- `ImageSet(samples, manifest)`: a torch Dataset; item i is (input CxHxW float32, target, i)
  with target a class index, or for detection a dict of boxes (xyxy in input pixels) and labels.
  Decoded images (gray, at input size) are cached in memory up to a budget, so small data sets
  are decoded once. A file that cannot be read yields None (the collate drops it) and is
  remembered in `errors` (path and reason); training carries on.
- `iter_warm(dataset)`: a generator of Progress that decodes everything once (fills the cache and
  finds unreadable files before the first epoch).
- `loader(dataset, indices, batch_size, shuffle, seed, rank, world, workers)`: a DataLoader over a
  subset, with torch's DistributedSampler (drop_last: ranks see disjoint data) under DDP.
- `augment_batch(x, target, task, config, generator)`: fastai-style flips, rotation, zoom and
  lighting (radview.models.recipe.augment); detectors get horizontal flips of images and boxes.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler, Subset

from radview.models.preprocess import gray_image, normalize, resize_gray
from radview.train.config import TrainConfig
from radview.train.data import Sample
from radview.types import Progress


class ImageSet(Dataset):
    def __init__(self, samples: Sequence[Sample], manifest: Any, cache_mb: int = 512):
        self.samples = tuple(samples)
        self.spec = manifest.input
        self.task = manifest.task
        h, w = self.spec.size
        self._cache_max = int(cache_mb * 1024 * 1024 // max(1, h * w * 4))
        self._cache: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        self._lock = threading.Lock()
        self.errors: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def gray(self, i: int) -> tuple[np.ndarray, tuple[int, int]] | None:
        """(gray HxW at input size, original (h, w)) or None when the file cannot be read."""
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        if i in self.errors:
            return None
        s = self.samples[i]
        from radview.io import ImageError, load_frame

        try:
            frame = load_frame(s.ref.path, s.ref.frame)
            g = gray_image(frame)
            out = (resize_gray(g, tuple(self.spec.size)), g.shape[:2])
        except ImageError as exc:
            self.errors[i] = str(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - one bad file never stops a run
            self.errors[i] = f"{s.ref.path}: {type(exc).__name__}: {exc}"
            return None
        with self._lock:
            if len(self._cache) < self._cache_max:
                self._cache[i] = out
        return out

    def target(self, i: int, image_hw: tuple[int, int]) -> Any:
        s = self.samples[i]
        if self.task != "detection":
            return int(s.target)
        h, w = self.spec.size
        sy, sx = h / image_hw[0], w / image_hw[1]
        boxes = [[b.x * sx, b.y * sy, (b.x + b.width) * sx, (b.y + b.height) * sy] for b, _c in s.boxes]
        return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor([c for _b, c in s.boxes], dtype=torch.int64)}

    def __getitem__(self, i: int):
        got = self.gray(i)
        if got is None:
            return None
        g, hw = got
        return torch.from_numpy(normalize(g, self.spec)), self.target(i, hw), i


def collate(items: list) -> tuple[torch.Tensor, Any, torch.Tensor] | None:
    items = [it for it in items if it is not None]
    if not items:
        return None
    x = torch.stack([it[0] for it in items])
    idx = torch.tensor([it[2] for it in items], dtype=torch.int64)
    if isinstance(items[0][1], dict):
        return x, [it[1] for it in items], idx
    return x, torch.tensor([it[1] for it in items], dtype=torch.int64), idx


def iter_warm(dataset: ImageSet, indices: Sequence[int] | None = None) -> Iterator[Progress]:
    """Decode every image once (Progress per 16); unreadable ones land in dataset.errors."""
    idx = list(range(len(dataset))) if indices is None else list(indices)
    if len(idx) > dataset._cache_max:  # too big to keep: decoding now would only double the work
        return
    for n, i in enumerate(idx):
        if n % 16 == 0:
            yield Progress(n, len(idx), f"decoding images ({n}/{len(idx)})")
        dataset.gray(i)
    yield Progress(len(idx), len(idx), f"decoded {len(idx)} images, {len(dataset.errors)} unreadable")


class _Shuffled(Sampler):
    """0..n-1 in a seeded order that changes with set_epoch (one process)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def loader(dataset: ImageSet, indices: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0,
           rank: int = 0, world: int = 1, workers: int = 0, drop_last: bool = True) -> DataLoader:
    """A DataLoader over `indices` (items keep their index in `dataset`). Under DDP (world > 1):
    training (shuffle) uses torch's DistributedSampler with drop_last, so each rank gets a
    disjoint, equal-length share reshuffled by set_epoch; evaluation takes every world-th item
    from rank on (no padding, no duplicates). `loader(...).sampler.set_epoch(e)` works alone too."""
    subset = Subset(dataset, list(indices))
    if world > 1 and shuffle:
        sampler: Sampler = DistributedSampler(subset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                              drop_last=drop_last)
    elif world > 1:
        subset = Subset(dataset, list(indices)[rank::world])
        sampler = SequentialSampler(subset)
    elif shuffle:
        sampler = _Shuffled(len(subset), seed)
    else:
        sampler = SequentialSampler(subset)
    return DataLoader(subset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=workers, persistent_workers=workers > 0)


def augment_batch(x: torch.Tensor, target: Any, task: str, config: TrainConfig,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, Any]:
    if task == "detection":
        if not config.flip:
            return x, target
        flip = torch.rand(len(x), generator=generator) < 0.5
        w = x.shape[-1]
        out_t = []
        for i, t in enumerate(target):
            if flip[i]:
                b = t["boxes"].clone()
                b[:, [0, 2]] = w - t["boxes"][:, [2, 0]]
                t = {**t, "boxes": b}
            out_t.append(t)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x, out_t
    from radview.models.recipe import augment

    if not (config.flip or config.max_rotate or config.scale != (1.0, 1.0) or config.max_lighting):
        return x, target
    return augment(x, flip=config.flip, max_rotate=config.max_rotate, scale=tuple(config.scale),
                   max_lighting=config.max_lighting, generator=generator), target
