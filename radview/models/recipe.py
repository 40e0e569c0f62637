"""Pieces of the training recipes (scripts/train_*.py) that other code may reuse.

- `augment(x, flip=True, max_rotate=10, scale=(0.9, 1.1), max_lighting=0.2, generator=None)`:
  fastai-style batch augmentation on normalised NCHW tensors: horizontal flip, rotation, zoom
  and small shifts through one affine warp (reflection padding), then brightness/contrast.
- `one_cycle(optimizer, total_steps, max_lr, pct_start=0.25, div=25.0, div_final=1e5)`:
  torch's OneCycleLR with fastai's defaults (cosine, momentum 0.95 -> 0.85 -> 0.95).
- `layer_groups_lite0(model)`: stem+early blocks / late blocks+head conv / classifier, for
  discriminative learning rates (fastai's slice(lo, hi): geometric spacing).
- `set_bn_momentum(model, m)`: the converted EfficientNet-Lite0 weights carry momentum 0.01
  (TensorFlow's 0.99); with a few hundred steps the running statistics would lag the training
  batches. scripts/train_region.py freezes batch norm instead (measured: better feature gate).
- `save_model_folder(module, manifest, folder, gate=None, fp16=False) -> Manifest`: writes the
  weights (state_dict, optionally float16 storage, plus the gate's class means), fills in the
  sha256 and writes manifest.json. The card is written by the caller.
- `roc_auc(y, score)`: AUROC by ranks (ties averaged), no scikit-learn needed.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radview.models.manifest import Manifest, WeightsSpec, sha256_file, write_manifest


def augment(x: torch.Tensor, flip: bool = True, max_rotate: float = 10.0, scale: tuple[float, float] = (0.9, 1.1),
            max_shift: float = 0.05, max_lighting: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    n = x.shape[0]
    g = generator

    def u(lo, hi):
        return torch.rand(n, generator=g) * (hi - lo) + lo

    ang = u(-max_rotate, max_rotate) * math.pi / 180
    zoom = torch.exp(u(math.log(scale[0]), math.log(scale[1])))
    sx = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    tx, ty = u(-max_shift, max_shift) * 2, u(-max_shift, max_shift) * 2
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    theta = torch.stack([torch.stack([cos * sx, -sin, tx], 1), torch.stack([sin * sx, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if max_lighting:
        b = u(-max_lighting, max_lighting).view(n, 1, 1, 1)  # in normalised units (~std)
        c = torch.exp(u(math.log(1 - max_lighting), -math.log(1 - max_lighting))).view(n, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * c + mean + b
    return out


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, max_lr, pct_start: float = 0.25,
              div: float = 25.0, div_final: float = 1e5):
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=max(1, total_steps), pct_start=pct_start,
        anneal_strategy="cos", div_factor=div, final_div_factor=div_final / div,
        cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)


def layer_groups_lite0(model: nn.Module) -> list[list[nn.Parameter]]:
    blocks = list(model._blocks)
    half = len(blocks) // 2
    g0 = list(model._conv_stem.parameters()) + list(model._bn0.parameters())
    for b in blocks[:half]:
        g0 += list(b.parameters())
    g1 = [p for b in blocks[half:] for p in b.parameters()]
    g1 += list(model._conv_head.parameters()) + list(model._bn1.parameters())
    g2 = list(model._fc.parameters())
    return [g0, g1, g2]


def lr_slice(lo: float, hi: float, n: int) -> list[float]:
    """fastai's slice(lo, hi) over n groups: geometric from lo to hi."""
    if n == 1:
        return [hi]
    return [float(lo * (hi / lo) ** (i / (n - 1))) for i in range(n)]


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def freeze_body(model: nn.Module, head: nn.Module, train_bn: bool = True) -> None:
    """Only the head (and, fastai's train_bn, every batch-norm layer) trains."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    if train_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                for p in m.parameters():
                    p.requires_grad_(True)


def unfreeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


def save_model_folder(module: nn.Module, manifest: Manifest, folder: str | Path, gate=None,
                      fp16: bool = False, weights_file: str = "weights.pt") -> Manifest:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {}
    for k, v in module.state_dict().items():
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        sd[k] = v.clone()
    obj: dict = {"state_dict": sd}
    if gate is not None:
        obj["gate"] = {"class_means": torch.from_numpy(np.asarray(gate.class_means, dtype=np.float32)),
                       "threshold": float(gate.threshold), "classes": list(gate.classes)}
    path = folder / weights_file
    torch.save(obj, path)
    m = manifest.with_changes(weights=WeightsSpec(file=weights_file, sha256=sha256_file(path), format="state_dict",
                                                  dtype="float16" if fp16 else "float32"),
                              folder=str(folder))
    write_manifest(m, folder)
    return m


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))
