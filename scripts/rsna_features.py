"""Backbone feature cache of the RSNA detector recipe (scripts/train_rsna.py): the frozen Lite0 body's
stride-16/32 outputs of every image and copy (original, box-aware augmented copies of training images,
mirror images of val/test for the hflip test-time augmentation), computed once and cached (float16),
and the detectors run on those cached features (inner val, held-out comparison)."""
from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from radview.io import ImageError, load_frame
from radview.models.detector import body_detect, fuse_flip, top_forward
from radview.models.features import FeatureCache, lite0_trunk, pyramid_features
from radview.models.preprocess import gray_image, resize_gray

MEAN = np.asarray([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.asarray([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
LEVELS = ("c4", "c5")


def find_image(images: Path, pid: str) -> Path | None:
    for suf in (".dcm", ".png", ".jpg", ".jpeg"):
        p = images / (pid + suf)
        if p.is_file():
            return p
    return None


def augment(gray: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Box-aware augmentation of an SxS image in [0,1] and its xyxy boxes (same pixels)."""
    from PIL import Image

    s = gray.shape[0]
    b = boxes.copy()
    img = gray
    if rng.random() < 0.5:
        img = img[:, ::-1]
        if len(b):
            b = np.stack([s - b[:, 2], b[:, 1], s - b[:, 0], b[:, 3]], 1)
    sc = float(rng.uniform(0.85, 1.15))
    tx, ty = (float(v) for v in rng.uniform(-0.08, 0.08, 2) * s)
    # output pixel u maps from input (u - c - t) / sc + c
    c = s / 2.0
    inv = (1 / sc, 0, c - (c + tx) / sc, 0, 1 / sc, c - (c + ty) / sc)
    pil = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F")
    img = np.asarray(pil.transform((s, s), Image.Transform.AFFINE, inv, resample=Image.Resampling.BILINEAR,
                                   fillcolor=0.0), dtype=np.float32)
    if len(b):
        area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        b = np.stack([(b[:, 0] - c) * sc + c + tx, (b[:, 1] - c) * sc + c + ty,
                      (b[:, 2] - c) * sc + c + tx, (b[:, 3] - c) * sc + c + ty], 1)
        area1 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        b = np.clip(b, 0, s)
        area2 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        keep = (area2 >= 0.4 * area1) & (b[:, 2] - b[:, 0] >= 4) & (b[:, 3] - b[:, 1] >= 4)
        b = b[keep]
        del area0
    img = np.clip(img, 0, 1) ** float(rng.uniform(0.8, 1.25))
    img = (img - 0.5) * float(rng.uniform(0.85, 1.15)) + 0.5 + float(rng.uniform(-0.08, 0.08))
    return np.clip(img, 0, 1).astype(np.float32), b.astype(np.float32)


def body_input(gray: np.ndarray) -> np.ndarray:
    """SxS gray in [0,1] -> the detector's normalised 3xSxS input (what its transform does)."""
    return ((np.repeat(gray[None], 3, 0) - MEAN) / STD).astype(np.float32)


def variants_of(split: str, n_aug: int, flip: bool) -> list[str]:
    """Cached copies of an image: the original; augmented copies of training images; the mirror
    image of validation and test images (hflip test-time augmentation)."""
    if split == "fit":
        return ["orig"] + [f"aug{k}" for k in range(n_aug)]
    return ["orig"] + (["flip"] if flip else [])


def cache_features(items, splits, size, n_aug, cache: FeatureCache, seed, log, device=None, flip=False) -> dict:
    """{(pid, variant): (feats dict fp16 tensors, boxes (K,4) in size pixels)}."""
    trunk = lite0_trunk().to(device or "cpu")
    out: dict = {}
    todo: list = []
    t0, done = time.time(), 0

    def flush():
        if not todo:
            return
        x = torch.from_numpy(np.stack([a for _, a, _ in todo])).to(next(trunk.parameters()).device)
        with torch.inference_mode():
            f = pyramid_features(trunk, x, LEVELS)
        for j, (k, _a, b) in enumerate(todo):
            arrs = {lv: f[lv][j].float().cpu().numpy() for lv in LEVELS}
            cache.put(f"rsna|{size}|{k[0]}|{k[1]}|{seed}", {**arrs, "boxes": b.reshape(-1)})
            out[k] = ({lv: torch.from_numpy(a.astype(np.float16)) for lv, a in arrs.items()}, b)
        todo.clear()

    for n, (pid, path, boxes_img) in enumerate(items):
        variants = variants_of(splits[pid], n_aug, flip)
        need = []
        for v in variants:
            hit = cache.get(f"rsna|{size}|{pid}|{v}|{seed}")
            if hit is not None:
                out[(pid, v)] = ({lv: torch.from_numpy(hit[lv].astype(np.float16)) for lv in LEVELS},
                                 hit["boxes"].reshape(-1, 4).astype(np.float32))
            else:
                need.append(v)
        if not need:
            continue
        try:
            gray0 = gray_image(load_frame(path))
        except ImageError as exc:
            log(f"skip {exc}")
            continue
        h, w = gray0.shape
        gray = resize_gray(gray0, (size, size))
        b0 = (boxes_img * np.asarray([size / w, size / h, size / w, size / h], dtype=np.float32)).reshape(-1, 4)
        for v in need:
            if v == "orig":
                g, b = gray, b0
            elif v == "flip":
                g = np.ascontiguousarray(gray[:, ::-1])
                b = np.stack([size - b0[:, 2], b0[:, 1], size - b0[:, 0], b0[:, 3]], 1) if len(b0) else b0
            else:
                g, b = augment(gray, b0, np.random.default_rng([seed, n, int(v[3:])]))
            todo.append(((pid, v), body_input(g), b))
        done += len(need)
        if len(todo) >= 16:
            flush()
            if (n // 16) % 5 == 0:
                log(f"features: {n + 1}/{len(items)} images, {done} computed, {time.time() - t0:.0f} s")
    flush()
    log(f"features: {done} computed in {time.time() - t0:.0f} s")
    return out


def batch_feats(keys, feats, device, model=None, tune=False):
    """Cached body outputs of a batch; with `tune`, c5 recomputed from c4 by the model's own
    (fine-tuned) stride-32 blocks."""
    if tune:
        c4 = torch.stack([feats[k][0]["c4"] for k in keys]).float().to(device)
        return OrderedDict((("c4", c4), ("c5", top_forward(model.backbone.body, c4))))
    return OrderedDict((lv, torch.stack([feats[k][0][lv] for k in keys]).float().to(device)) for lv in LEVELS)


def _mirror_np(b: np.ndarray, size: int) -> np.ndarray:
    return np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], 1) if len(b) else b.reshape(-1, 4)


def detect_cached(model, pids, feats, size, device, bs=32, tune=False, tta=""):
    """Detections of the cached originals; with tta='hflip' fused with those of the cached mirror
    images exactly as the shipped model's forward does (radview.models.detector.fuse_flip)."""
    model.eval()

    def run(variant):
        outs = []
        with torch.inference_mode():
            for i in range(0, len(pids), bs):
                keys = [(p, variant) for p in pids[i:i + bs]]
                for d in body_detect(model, batch_feats(keys, feats, device, model, tune), size):
                    outs.append((d["boxes"].float().cpu(), d["scores"].float().cpu()))
        return outs

    plain = run("orig")
    if tta != "hflip":
        return [(b.numpy(), s.numpy()) for b, s in plain]
    flipped = run("flip")
    outs = []
    for (ba, sa), (bb, sb) in zip(plain, flipped):
        bx, sc = fuse_flip(ba, sa, torch.from_numpy(_mirror_np(bb.numpy(), size)), sb,
                           top=model.detections_per_img)
        outs.append((bx.numpy(), sc.numpy()))
    return outs
