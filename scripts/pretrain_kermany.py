#!/usr/bin/env python
"""Pretrain the RSNA detector's stride-32 blocks (Lite0 blocks 11-15) on the Kermany paediatric set.

    nice -n 10 .venv/bin/python scripts/pretrain_kermany.py --out /tmp/kermany_top \
        [--data ../shared/data/kermany-pediatric-cxr] [--per-class 1200] [--epochs 6]
    .venv/bin/python scripts/train_rsna.py --kinds fcos-top --init-top /tmp/kermany_top/top_blocks.pt ...

Same input pipeline as the detector (scripts/rsna_features.py: radview.io decode, gray, squashed to
--size, gray replicated, ImageNet normalisation) and the same frozen ImageNet body up to c4 (blocks
0-10, cached float16); blocks 11-15 (BatchNorm statistics frozen, as in the detector's fcos-top) and a
pooled linear head (c5 -> global average -> 320 -> 1) train on normal vs pneumonia.

Splits (Kermany's own; RSNA is never seen): its train folder is split BY PATIENT (file-name stem:
person123_..., IM-0115-..., NORMAL2-IM-1427-...), seeded, --val-frac of the patients are an inner
validation split that picks the epoch (max AUROC); a class-balanced subset of --per-class images per
class is drawn from each part (val: --val-per-class). Its test folder (all 624) is reported only.
Writes <out>/top_blocks.pt (state dict of `_blocks.11` ... `_blocks.15`, Lite0Body key names, loaded
with weights_only) and <out>/pretrain.json (figures, timings, load).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from radview.io.samples import shared_data_dir  # noqa: E402
from radview.models import recipe  # noqa: E402
from radview.models.detector import C4_BLOCK, top_forward  # noqa: E402
from radview.models.features import FeatureCache, Lite0Body  # noqa: E402
from rsna_features import cache_features  # noqa: E402  (scripts/rsna_features.py)

SHARED = shared_data_dir() or ROOT.parent / "shared" / "data"
CLASSES = ("NORMAL", "PNEUMONIA")


def patient_of(name: str) -> str:
    """person1000_bacteria_2931.jpeg -> person1000; IM-0115-0001.jpeg -> IM-0115;
    NORMAL2-IM-1427-0001.jpeg -> NORMAL2-IM-1427."""
    stem = Path(name).stem
    if stem.startswith("person"):
        return stem.split("_")[0]
    m = re.match(r"(.*?-?IM-\d+)", stem)
    return m.group(1) if m else stem


def listing(folder: Path) -> list[tuple[str, str, int]]:
    """(key, path, label) of <folder>/NORMAL|PNEUMONIA/*.jpeg, sorted."""
    out = []
    for y, c in enumerate(CLASSES):
        for p in sorted((folder / c).iterdir()):
            if p.suffix.lower() in (".jpeg", ".jpg", ".png"):
                out.append((f"kermany:{folder.name}/{c}/{p.name}", str(p), y))
    return out


def balanced(items, per_class: int, rng) -> list:
    out = []
    for y in range(len(CLASSES)):
        cls = [it for it in items if it[2] == y]
        take = rng.permutation(len(cls))[:per_class]
        out += [cls[i] for i in sorted(take)]
    return out


class PooledHead(torch.nn.Module):
    def __init__(self, c: int = 320):
        super().__init__()
        self.drop = torch.nn.Dropout(0.2)
        self.fc = torch.nn.Linear(c, 1)

    def forward(self, c5):
        return self.fc(self.drop(c5.mean((2, 3)))).squeeze(1)


def scores_of(body, head, keys, feats, bs=64) -> np.ndarray:
    body.eval()
    head.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(keys), bs):
            c4 = torch.stack([feats[(k, "orig")][0]["c4"] for k in keys[i:i + bs]]).float()
            out.append(torch.sigmoid(head(top_forward(body, c4))).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def figures(y, s) -> dict:
    y = np.asarray(y, bool)
    return {"n": int(len(y)), "positive": int(y.sum()), "auroc": round(recipe.roc_auc(y, s), 4),
            "accuracy_at_0.5": round(float(((s >= 0.5) == y).mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "kermany-pediatric-cxr")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--per-class", type=int, default=1200, help="training images per class (balanced subset)")
    ap.add_argument("--val-per-class", type=int, default=150)
    ap.add_argument("--val-frac", type=float, default=0.1, help="share of the train folder's patients held as inner val")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4, help="learning rate of blocks 11-15 (train_rsna's --top-lr)")
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--cache", default="/tmp/radview-features-kermany")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features-only", action="store_true")
    args = ap.parse_args(argv)
    t_start, load_start = time.time(), os.getloadavg()[0]
    torch.set_num_threads(args.threads)

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    missing = [str(args.data / part / c) for part in ("train", "test") for c in CLASSES
               if not (args.data / part / c).is_dir()]
    if missing:
        ap.error(f"{args.data}: not Kermany's layout (train|test/NORMAL|PNEUMONIA); missing {', '.join(missing)}")
    rng = np.random.default_rng(args.seed)
    train_all = listing(args.data / "train")
    pats = sorted({patient_of(Path(p).name) for _k, p, _y in train_all})
    val_pats = set(np.asarray(pats)[rng.permutation(len(pats))[: round(len(pats) * args.val_frac)]].tolist())
    fit = balanced([it for it in train_all if patient_of(Path(it[1]).name) not in val_pats], args.per_class, rng)
    val = balanced([it for it in train_all if patient_of(Path(it[1]).name) in val_pats], args.val_per_class, rng)
    test = listing(args.data / "test")
    parts = {"fit": fit, "val": val, "test": test}
    counts = {k: {"images": len(v), "pneumonia": int(sum(y for *_r, y in v))} for k, v in parts.items()}
    counts["train_folder"] = {"images": len(train_all), "patients": len(pats), "val_patients": len(val_pats)}
    log(f"splits {counts}")
    items = [(k, p, np.zeros((0, 4), np.float32)) for v in parts.values() for k, p, _y in v]
    feats = cache_features(items, {k: "val" for k, _p, _b in items}, args.size, 0, FeatureCache(args.cache),
                           args.seed, log, "cpu", flip=False)
    t_feat = time.time() - t_start
    if args.features_only:
        return 0
    torch.set_num_threads(args.train_threads)
    keys = {k: [key for key, _p, _y in v if (key, "orig") in feats] for k, v in parts.items()}
    ys = {k: np.asarray([y for key, _p, y in v if (key, "orig") in feats], np.float32) for k, v in parts.items()}

    torch.manual_seed(args.seed)
    body = Lite0Body(("c4", "c5"))
    body.load_imagenet()
    top = list(body._blocks)[C4_BLOCK + 1:]
    for p in body.parameters():
        p.requires_grad_(False)
    top_params = [p for b in top for p in b.parameters()]
    for p in top_params:
        p.requires_grad_(True)
    head = PooledHead(320)
    opt = torch.optim.AdamW([{"params": top_params, "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}],
                            weight_decay=1e-4)
    steps = args.epochs * -(-len(keys["fit"]) // args.bs)
    sched = recipe.one_cycle(opt, steps, [args.lr, args.head_lr], pct_start=0.2)
    lossf = torch.nn.BCEWithLogitsLoss()
    best, history, t0 = None, [], time.time()
    s0 = scores_of(body, head, keys["val"], feats)
    log(f"epoch 0 (ImageNet blocks, untrained head) val AUROC {recipe.roc_auc(ys['val'] > 0, s0):.4f}")
    for ep in range(args.epochs):
        body.eval()  # frozen BatchNorm statistics, no drop-connect (as the detector's fcos-top)
        head.train()
        order = rng.permutation(len(keys["fit"]))
        tot = 0.0
        for i in range(0, len(order), args.bs):
            idx = order[i:i + args.bs]
            c4 = torch.stack([feats[(keys["fit"][j], "orig")][0]["c4"] for j in idx]).float()
            loss = lossf(head(top_forward(body, c4)), torch.from_numpy(ys["fit"][idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
        sv = scores_of(body, head, keys["val"], feats)
        row = {"epoch": ep + 1, "train_loss": round(tot / len(order), 4), **{f"val_{k}": v for k, v in
               figures(ys["val"], sv).items() if k != "n" and k != "positive"}, "seconds": round(time.time() - t0, 1)}
        history.append(row)
        log(json.dumps(row))
        if best is None or row["val_auroc"] > best[0]:
            best = (row["val_auroc"], {k: v.detach().clone() for k, v in body.state_dict().items()},
                    {k: v.detach().clone() for k, v in head.state_dict().items()}, row)
    body.load_state_dict(best[1])
    head.load_state_dict(best[2])
    st = scores_of(body, head, keys["test"], feats)
    test_fig = figures(ys["test"], st)
    log(f"picked epoch {best[3]['epoch']} (val AUROC {best[0]}); Kermany test {test_fig}")
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in body.state_dict().items()
             if k.startswith("_blocks.") and int(k.split(".")[1]) > C4_BLOCK}
    torch.save(state, args.out / "top_blocks.pt")
    info = {"script": "scripts/pretrain_kermany.py", "args": {k: str(v) for k, v in vars(args).items()},
            "counts": counts, "history": history, "picked_epoch": best[3]["epoch"], "val": best[3],
            "test": test_fig, "seconds_features": round(t_feat, 1), "seconds_total": round(time.time() - t_start, 1),
            "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
            "blocks": sorted({int(k.split(".")[1]) for k in state})}
    (args.out / "pretrain.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"wrote {args.out / 'top_blocks.pt'} ({len(state)} tensors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
