#!/usr/bin/env python
"""Train the MURA abnormality model (densenet169, one output) on the MURA-v1.1 dataset.

    .venv/bin/python scripts/train_mura.py --data /path/to/MURA-v1.1 [--init-weights densenet169_imagenet.pth]
        [--out DIR] [--epochs 10] [--threads N]

The recipe of the MURA paper (Rajpurkar et al. 2017): densenet169 with a 1-output head, 320x320
inputs (gray replicated, ImageNet normalisation), lateral flips and rotations up to 30 degrees,
per-study-type weighted binary cross-entropy (w1 = N_T / (A_T + N_T), w0 = A_T / (A_T + N_T),
A_T / N_T the abnormal / normal training images of study type T), Adam lr 1e-4,
ReduceLROnPlateau (factor 0.1) on the validation loss, batch 8, the epoch with the lowest
validation loss kept. Study probability = mean of the view probabilities (radview's
aggregate_study); metrics on the valid split: study-level accuracy, Cohen's kappa, AUROC,
sensitivity, specificity, per study type.

Layout read: `<data>/{train,valid}_image_paths.csv` and `{train,valid}_labeled_studies.csv`
(MURA-v1.1 as distributed), or without CSVs every image under `<data>/{train,valid}/XR_*/...`
labelled by its study folder name (`study1_positive`). Images are decoded by radview.io and
preprocessed by radview.models.preprocess, exactly as at inference.

It writes a model folder (weights, manifest with the measured metrics, MODEL_CARD.md) to --out,
by default the user models folder under the bundled manifest's name, so `radview models list`
shows it installed. ImageNet initialisation needs a local torchvision densenet169 state_dict
(--init-weights); without it training starts from random init (much weaker; the card says so).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radview.io import load_frame  # noqa: E402
from radview.io.labels import MURA_POSITIVE, mura_study_key, read_mura_csv  # noqa: E402
from radview.models import arch as archmod  # noqa: E402
from radview.models import recipe  # noqa: E402
from radview.models.manifest import InputSpec, load_manifest, write_manifest  # noqa: E402
from radview.models.preprocess import gray_image, prepare_gray  # noqa: E402

TEMPLATE = ROOT / "resources" / "models" / "mura-densenet169"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


def list_split(data: Path, split: str) -> list[tuple[str, str, int]]:
    """[(image path, study key, label 0/1)] of one split."""
    labels: dict[str, int] = {}
    lab_csv = data / f"{split}_labeled_studies.csv"
    if lab_csv.is_file():
        labels = {k: int(v.value == MURA_POSITIVE) for k, v in read_mura_csv(lab_csv).items()}
    paths_csv = data / f"{split}_image_paths.csv"
    if paths_csv.is_file():
        with open(paths_csv, newline="") as fh:
            rel = [row[0].strip() for row in csv.reader(fh) if row and row[0].strip()]
        files = [(data.parent / r) if not (data / r).exists() else (data / r) for r in rel]
    else:
        files = sorted(p for p in (data / split).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    out = []
    for f in files:
        key = mura_study_key(str(f))
        if key is None:
            continue
        y = labels.get(key, int(key.endswith("_positive")))
        out.append((str(f), key, y))
    return out


class Images(torch.utils.data.Dataset):
    def __init__(self, items, spec: InputSpec):
        self.items, self.spec = items, spec

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, _key, y = self.items[i]
        x = prepare_gray(gray_image(load_frame(path)), self.spec)
        return torch.from_numpy(x), torch.tensor(float(y)), i


def type_weights(items) -> dict[str, tuple[float, float]]:
    """study type -> (w0, w1) of the paper's weighted BCE."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _p, key, y in items:
        counts[key.split("/")[0]][y] += 1
    out = {}
    for t, (n, a) in counts.items():
        tot = max(a + n, 1)
        out[t] = (a / tot, n / tot)
    return out


def weighted_bce(logits, y, w0, w1):
    w = torch.where(y > 0.5, w1, w0)
    return (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * w).mean()


def kappa(y: np.ndarray, p: np.ndarray) -> float:
    po = float((y == p).mean())
    pe = float(y.mean() * p.mean() + (1 - y.mean()) * (1 - p.mean()))
    return (po - pe) / (1 - pe) if pe < 1 else 1.0


def study_metrics(items, probs: np.ndarray, threshold: float = 0.5) -> dict:
    from radview.models.engine import aggregate_study
    from radview.types import ImageRef, Prediction

    by_study: dict[str, list] = defaultdict(list)
    truth: dict[str, int] = {}
    for (path, key, y), p in zip(items, probs):
        by_study[key].append(Prediction(ImageRef(path), "mura", "", ("normal", "abnormal"), (1 - p, p)))
        truth[key] = y
    keys = sorted(by_study)
    sp = [aggregate_study(k, by_study[k], threshold) for k in keys]
    ps = np.array([s.probs[1] for s in sp])
    ys = np.array([truth[k] for k in keys])
    pred = (ps > threshold).astype(int)
    res = {"studies": len(keys), "images": len(items),
           "accuracy": round(float((pred == ys).mean()), 4), "kappa": round(kappa(ys, pred), 4),
           "auroc": round(recipe.roc_auc(ys, ps), 4),
           "sensitivity": round(float(pred[ys == 1].mean()) if (ys == 1).any() else float("nan"), 4),
           "specificity": round(float(1 - pred[ys == 0].mean()) if (ys == 0).any() else float("nan"), 4)}
    per_type = {}
    for t in sorted({k.split("/")[0] for k in keys}):
        sel = np.array([k.startswith(t + "/") for k in keys])
        per_type[t] = {"studies": int(sel.sum()), "accuracy": round(float((pred[sel] == ys[sel]).mean()), 4),
                       "kappa": round(kappa(ys[sel], pred[sel]), 4)}
    res["per_study_type"] = per_type
    return res


def predict(model, loader, device) -> np.ndarray:
    model.eval()
    out = np.zeros(len(loader.dataset))
    with torch.inference_mode():
        for x, _y, idx in loader:
            out[idx.numpy()] = torch.sigmoid(model(x.to(device)).reshape(-1)).cpu().numpy()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data", type=Path, required=True, help="the MURA-v1.1 folder")
    ap.add_argument("--out", type=Path, help="model folder to write (default: user models/<name>)")
    ap.add_argument("--name", default="mura-densenet169")
    ap.add_argument("--arch", default="densenet169")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--init-weights", type=Path, help="local ImageNet state_dict of the architecture")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--limit", type=int, help="use at most this many training images (quick runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    from radview import paths
    from radview.models.registry import select_device

    device = select_device(args.device)
    train_items = list_split(args.data, "train")
    valid_items = list_split(args.data, "valid")
    if args.limit:
        rng = np.random.default_rng(args.seed)
        train_items = [train_items[i] for i in sorted(rng.permutation(len(train_items))[:args.limit])]
    if not train_items or not valid_items:
        print(f"{args.data}: no MURA train/valid images found", file=sys.stderr)
        return 2
    template = load_manifest(TEMPLATE)
    spec = InputSpec(size=(args.size, args.size), channels=3, mean=template.input.mean, std=template.input.std)
    weights = type_weights(train_items)
    print(f"train {len(train_items)} images, valid {len(valid_items)}; weights {weights}", flush=True)

    model = archmod.build(args.arch, 1, "binary")
    if args.init_weights:
        sd = torch.load(args.init_weights, map_location="cpu", weights_only=True)
        head = archmod._HEADS.get(args.arch, "")
        sd = {k: v for k, v in sd.items() if not k.startswith(head + ".")}
        model.load_state_dict(sd, strict=False)
    model.to(device)
    gen = torch.Generator().manual_seed(args.seed)
    dl_train = torch.utils.data.DataLoader(Images(train_items, spec), batch_size=args.bs, shuffle=True,
                                           num_workers=args.workers, generator=gen, drop_last=len(train_items) > args.bs)
    dl_valid = torch.utils.data.DataLoader(Images(valid_items, spec), batch_size=args.bs * 2, num_workers=args.workers)
    w_of = lambda idxs, items: [weights.get(items[int(i)][1].split("/")[0], (0.5, 0.5)) for i in idxs]  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=1)
    best = (math.inf, None, -1)
    history = []
    for ep in range(args.epochs):
        model.train()
        tot, n = 0.0, 0
        for x, y, idx in dl_train:
            x = recipe.augment(x, flip=True, max_rotate=30, scale=(1.0, 1.0), max_shift=0.0, max_lighting=0.0,
                               generator=gen).to(device)
            w = torch.tensor(w_of(idx, train_items), dtype=torch.float32, device=device)
            loss = weighted_bce(model(x).reshape(-1), y.to(device), w[:, 0], w[:, 1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(y)
            n += len(y)
        pv = predict(model, dl_valid, device)
        yv = torch.tensor([y for _p, _k, y in valid_items], dtype=torch.float32)
        wv = torch.tensor(w_of(range(len(valid_items)), valid_items), dtype=torch.float32)
        lv = float(weighted_bce(torch.logit(torch.from_numpy(pv).float().clamp(1e-6, 1 - 1e-6)), yv, wv[:, 0], wv[:, 1]))
        plateau.step(lv)
        sm = study_metrics(valid_items, pv)
        history.append({"epoch": ep + 1, "train_loss": round(tot / max(n, 1), 4), "valid_loss": round(lv, 4),
                        "study_accuracy": sm["accuracy"], "study_kappa": sm["kappa"]})
        print(json.dumps(history[-1]), flush=True)
        if lv < best[0]:
            best = (lv, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, ep + 1)
    model.load_state_dict(best[1])
    pv = predict(model, dl_valid, device)
    metrics = {"valid_study": study_metrics(valid_items, pv), "valid_image_auroc": round(
        recipe.roc_auc(np.array([y for *_r, y in valid_items]), pv), 4), "best_epoch": best[2], "history": history,
        "init": "ImageNet (" + args.init_weights.name + ")" if args.init_weights else "random"}
    out = args.out or (paths.user_models_dir() / args.name)
    manifest = template.with_changes(
        name=args.name, version=time.strftime("1.0.%Y%m%d"), arch=args.arch, input=spec,
        cam_layer=archmod.default_cam_layer(args.arch),
        training=dict(template.training, args={k: str(v) for k, v in vars(args).items()},
                      seconds=round(time.time() - t0, 1)))
    saved = recipe.save_model_folder(model.cpu(), manifest, out)
    saved = saved.with_changes(metrics=metrics)
    write_manifest(saved, out)
    s = metrics["valid_study"]
    (out / "MODEL_CARD.md").write_text(
        f"# {args.name}: abnormality of upper-extremity radiographs ({args.arch})\n\n"
        f"*Generated by scripts/train_mura.py from this run; figures measured on {args.data} valid.*\n\n"
        f"Training: {len(train_items)} images, init {metrics['init']}, {args.epochs} epochs, best epoch {best[2]}, "
        f"input {args.size}px, per-study-type weighted BCE, Adam {args.lr}, ReduceLROnPlateau.\n\n"
        f"Valid (study level, n={s['studies']}): accuracy {s['accuracy']}, Cohen's kappa {s['kappa']}, AUROC {s['auroc']}, "
        f"sensitivity {s['sensitivity']}, specificity {s['specificity']}; image AUROC {metrics['valid_image_auroc']}.\n\n"
        f"Per study type: {json.dumps(s['per_study_type'])}\n\n"
        "Intended use: research. Domain: upper-extremity radiographs; gate: DICOM metadata only.\n",
        encoding="utf-8")
    print(f"wrote {out}: {json.dumps(metrics['valid_study'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
