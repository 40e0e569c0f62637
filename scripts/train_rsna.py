#!/usr/bin/env python
"""Train the RSNA pneumonia detector (torchvision Faster R-CNN) on the challenge's stage 2 data.

    .venv/bin/python scripts/train_rsna.py --images /path/to/stage_2_train_images
        --labels /path/to/stage_2_train_labels.csv [--out DIR] [--epochs 8] [--backbone-weights W.pth]

Images: `<images>/<patientId>.dcm` (or .png), decoded by radview.io (MONOCHROME1 inverted) and
preprocessed by radview.models.preprocess as at inference (squash to --size, gray replicated; the
detector normalises inside). Labels: the challenge CSV (one row per box; 1-4 boxes per positive
image, read by radview.io.labels.read_rsna_csv). Every box of an image is a target; negatives
train as background. Split: patients at random, --val-frac for validation (seeded). Augmentation:
horizontal flips. SGD (momentum 0.9, weight decay 1e-4) with a one-cycle schedule.
No download ever: the backbone starts from --backbone-weights (a local ImageNet state_dict of
mobilenet_v3_large) or random init.

Validation metrics: the challenge score (mean over images of TP / (TP + FP + FN) averaged over IoU
thresholds 0.40-0.75, boxes with score >= the manifest threshold; images with neither truth nor
prediction skipped) and the image-level AUROC of the best box score. It writes a model folder
(weights, manifest with these metrics, MODEL_CARD.md) to --out, by default the user models
folder under the bundled manifest's name.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radview.train.evaluate import box_iou  # noqa: E402
from radview.io import load_frame  # noqa: E402
from radview.io.labels import read_rsna_csv  # noqa: E402
from radview.models import arch as archmod  # noqa: E402
from radview.models import recipe  # noqa: E402
from radview.models.manifest import InputSpec, load_manifest, write_manifest  # noqa: E402
from radview.models.preprocess import gray_image, prepare_gray  # noqa: E402

TEMPLATE = ROOT / "resources" / "models" / "rsna-pneumonia"


def find_image(images: Path, pid: str) -> Path | None:
    for suf in (".dcm", ".png", ".jpg"):
        p = images / (pid + suf)
        if p.is_file():
            return p
    return None


class Detections(torch.utils.data.Dataset):
    """(CxSxS tensor, target dict with boxes in input pixels) per image."""

    def __init__(self, items, spec: InputSpec, flip: bool = False, seed: int = 0):
        self.items, self.spec, self.flip = items, spec, flip
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        gray = gray_image(load_frame(path))
        h, w = gray.shape
        x = torch.from_numpy(prepare_gray(gray, self.spec))
        sh, sw = self.spec.size
        b = torch.tensor([[bx.x * sw / w, bx.y * sh / h, (bx.x + bx.width) * sw / w, (bx.y + bx.height) * sh / h]
                          for bx in label.boxes], dtype=torch.float32).reshape(-1, 4)
        if self.flip and self.rng.random() < 0.5:
            x = x.flip(-1)
            b = torch.stack([sw - b[:, 2], b[:, 1], sw - b[:, 0], b[:, 3]], 1) if len(b) else b
        return x, {"boxes": b, "labels": torch.ones(len(b), dtype=torch.int64)}, i


def collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch]


def challenge_score(preds: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray]) -> float:
    """RSNA metric: mean over images of mean over IoU thresholds of TP/(TP+FP+FN)."""
    scores = []
    for (boxes, conf), gt in zip(preds, truths):
        if len(boxes) == 0 and len(gt) == 0:
            continue
        if len(gt) == 0 or len(boxes) == 0:
            scores.append(0.0)
            continue
        order = np.argsort(-conf)
        m = box_iou(boxes[order], gt)
        per_t = []
        for t in np.arange(0.4, 0.76, 0.05):
            used, tp = set(), 0
            for i in range(len(order)):
                cand = [(m[i, j], j) for j in range(len(gt)) if j not in used and m[i, j] > t]
                if cand:
                    used.add(max(cand)[1])
                    tp += 1
            fp, fn = len(order) - tp, len(gt) - tp
            per_t.append(tp / (tp + fp + fn))
        scores.append(float(np.mean(per_t)))
    return float(np.mean(scores)) if scores else float("nan")


def evaluate(model, ds, threshold: float, device) -> dict:
    model.eval()
    preds, truths, best, ys = [], [], [], []
    with torch.inference_mode():
        for i in range(len(ds)):
            x, t, _ = ds[i]
            o = model([x.to(device)])[0]
            s = o["scores"].cpu().numpy()
            keep = s >= threshold
            preds.append((o["boxes"].cpu().numpy()[keep], s[keep]))
            truths.append(t["boxes"].numpy())
            best.append(float(s.max()) if len(s) else 0.0)
            ys.append(int(len(t["boxes"]) > 0))
    return {"images": len(ds), "positives": int(sum(ys)), "challenge_score": round(challenge_score(preds, truths), 4),
            "image_auroc": round(recipe.roc_auc(np.array(ys), np.array(best)), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--name", default="rsna-pneumonia")
    ap.add_argument("--arch", default=None, help="default: the bundled manifest's")
    ap.add_argument("--arch-kwargs", default=None, help="JSON, default: the bundled manifest's")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--backbone-weights", type=Path)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int)
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
    template = load_manifest(TEMPLATE)
    arch = args.arch or template.arch
    kw = json.loads(args.arch_kwargs) if args.arch_kwargs else (dict(template.arch_kwargs) if not args.arch else {})
    size = args.size or template.input.size[0]
    spec = InputSpec(size=(size, size), channels=3, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    labels = read_rsna_csv(args.labels)
    items = [(str(p), lab) for pid, lab in sorted(labels.items()) if (p := find_image(args.images, pid))]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(items))
    n_val = max(1, int(round(len(items) * args.val_frac)))
    val = [items[i] for i in sorted(order[:n_val])]
    train = [items[i] for i in sorted(order[n_val:])]
    if args.limit:
        train = train[:args.limit]
    if not train:
        print(f"{args.images}: no images of {args.labels} found", file=sys.stderr)
        return 2
    print(f"train {len(train)} images ({sum(bool(lab.boxes) for _, lab in train)} with boxes), val {len(val)}",
          flush=True)
    model = archmod.build(arch, len(template.classes), "detection", **kw)
    if args.backbone_weights:
        sd = torch.load(args.backbone_weights, map_location="cpu", weights_only=True)
        model.backbone.body.load_state_dict({k.replace("features.", ""): v for k, v in sd.items()}, strict=False)
    model.to(device)
    gen = torch.Generator().manual_seed(args.seed)
    dl = torch.utils.data.DataLoader(Detections(train, spec, flip=True, seed=args.seed), batch_size=args.bs,
                                     shuffle=True, num_workers=args.workers, collate_fn=collate, generator=gen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    sched = recipe.one_cycle(opt, args.epochs * math.ceil(len(train) / args.bs), args.lr, pct_start=0.25)
    history = []
    for ep in range(args.epochs):
        model.train()
        tot, n = 0.0, 0
        for xs, ts, _ in dl:
            losses = model([x.to(device) for x in xs], [{k: v.to(device) for k, v in t.items()} for t in ts])
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(xs)
            n += len(xs)
        history.append({"epoch": ep + 1, "train_loss": round(tot / max(n, 1), 4)})
        print(json.dumps(history[-1]), flush=True)
    metrics = {"val": evaluate(model, Detections(val, spec), template.threshold, device), "history": history,
               "train_images": len(train), "backbone_init": str(args.backbone_weights or "random")}
    print(json.dumps(metrics["val"]), flush=True)
    out = args.out or (paths.user_models_dir() / args.name)
    manifest = template.with_changes(
        name=args.name, version=time.strftime("1.0.%Y%m%d"), arch=arch, arch_kwargs=kw, input=spec,
        cam_layer=archmod.default_cam_layer(arch),
        training=dict(template.training, args={k: str(v) for k, v in vars(args).items()},
                      seconds=round(time.time() - t0, 1)))
    saved = recipe.save_model_folder(model.cpu(), manifest, out)
    write_manifest(saved.with_changes(metrics=metrics), out)
    v = metrics["val"]
    (out / "MODEL_CARD.md").write_text(
        f"# {args.name}: lung opacity boxes ({arch})\n\n"
        f"*Generated by scripts/train_rsna.py from this run; figures measured on the validation split.*\n\n"
        f"Training: {len(train)} images of {args.labels}, {args.epochs} epochs, input {size}px, backbone "
        f"{metrics['backbone_init']}.\n\nValidation ({v['images']} images, {v['positives']} positive): challenge score "
        f"{v['challenge_score']}, image AUROC {v['image_auroc']}.\n\nIntended use: research; boxes are suggestions.\n",
        encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
