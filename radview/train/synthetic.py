"""Tiny generated data sets and model manifests for tests, benchmarks and demos (numpy + Pillow).

`stripes(root, ...)` writes class folders of small gray PNGs: horizontal stripes in `abd/`,
vertical stripes in `chest/`, and checkerboards filed (wrongly, on purpose) under `abd/` with
names starting with 'c', so that a test can "correct" them to chest. `boxes(root, ...)` writes
flat PNGs with bright squares and returns their boxes (for detection through box corrections).
`tiny_manifest(name, task)` is a manifest for a ~0.1 M-parameter mobilenet_v3_small (width 0.25)
at 32x32 input, trainable in seconds on one CPU core.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from radview.types import Box


def _pattern(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    period = max(2, size // 6)
    phase = int(rng.integers(0, 2 * period))
    if kind == "h":
        a = ((y + phase) // period) % 2
    elif kind == "v":
        a = ((x + phase) // period) % 2
    else:
        a = (((x + phase) // (period + 2)) + ((y + phase) // (period + 2))) % 2
    a = a * 0.6 + 0.2 + rng.normal(0, 0.08, a.shape)
    return (np.clip(a, 0, 1) * 255).astype(np.uint8)


def stripes(root: str | os.PathLike, n_h: int = 20, n_v: int = 20, n_checker: int = 12, size: int = 48,
            seed: int = 0, split: str | None = None) -> dict[str, list[Path]]:
    """Write the set; returns {'h': [...], 'v': [...], 'c': [...]} paths. split: put the class
    folders under root/<split>/ (train, val, test) instead of directly under root."""
    rng = np.random.default_rng(seed)
    base = Path(root) / split if split else Path(root)
    out: dict[str, list[Path]] = {"h": [], "v": [], "c": []}
    for cls, kinds in (("abd", ["h"] * n_h + ["c"] * n_checker), ("chest", ["v"] * n_v)):
        (base / cls).mkdir(parents=True, exist_ok=True)
        for i, k in enumerate(kinds):
            p = base / cls / f"{k}{seed}_{i:03d}.png"
            Image.fromarray(_pattern(k, size, rng)).save(p)
            out[k].append(p)
    return out


def boxes(root: str | os.PathLike, n_pos: int = 16, n_neg: int = 8, size: int = 64, seed: int = 0
          ) -> dict[Path, tuple[Box, ...]]:
    """Flat PNGs: positives hold one bright square (its Box returned), negatives none."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[Path, tuple[Box, ...]] = {}
    for i in range(n_pos + n_neg):
        a = rng.normal(0.3, 0.05, (size, size))
        bx: tuple[Box, ...] = ()
        if i < n_pos:
            w = int(rng.integers(size // 5, size // 3))
            x, y = (int(v) for v in rng.integers(2, size - w - 2, 2))
            a[y:y + w, x:x + w] = 0.9
            bx = (Box(float(x), float(y), float(w), float(w), "opacity"),)
        p = root / f"img{i:03d}.png"
        Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(p)
        out[p] = bx
    return out


def tiny_manifest(name: str = "tiny", task: str = "binary", classes: tuple[str, ...] = ("abd", "chest"),
                  size: int = 32, version: str = "1.0.0", **extra) -> dict:
    """A manifest mapping for a tiny model (write it with radview.models.manifest)."""
    if task == "detection":
        d = {"name": name, "version": version, "task": task, "classes": list(classes), "arch": "fasterrcnn_tiny",
             "arch_kwargs": {"size": size}, "threshold": 0.5,
             "input": {"size": [size, size], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}}
    else:
        d = {"name": name, "version": version, "task": task, "classes": list(classes), "arch": "mobilenet_v3_small",
             "arch_kwargs": {"width_mult": 0.25}, "input": {"size": [size, size]}, "threshold": 0.5}
    d.update(extra)
    return d


def mura(root: str | os.PathLike, patients: dict[str, int] | None = None, views: int = 2, size: int = 48,
         seed: int = 0) -> dict[str, list[Path]]:
    """A MURA-v1.1-style tree (`<split>/XR_<TYPE>/patientNNNNN/studyK_positive|negative/imageV.png`):
    abnormal studies hold vertical stripes, normal ones horizontal. patients: {study type: n per
    split}; splits train and valid. Returns {study folder: [view paths]}."""
    rng = np.random.default_rng(seed)
    patients = patients or {"XR_WRIST": 6, "XR_ELBOW": 4}
    out: dict[str, list[Path]] = {}
    pid = 10000
    for split in ("train", "valid"):
        for stype, n in patients.items():
            for i in range(n if split == "train" else max(2, n // 2)):
                pid += 1
                positive = (i % 3 == 0) if stype == "XR_WRIST" else (i % 2 == 0)
                study = Path(root) / split / stype / f"patient{pid}" / f"study1_{'positive' if positive else 'negative'}"
                study.mkdir(parents=True, exist_ok=True)
                out[str(study)] = []
                for v in range(views):
                    p = study / f"image{v + 1}.png"
                    Image.fromarray(_pattern("v" if positive else "h", size, rng)).save(p)
                    out[str(study)].append(p)
    return out
