"""The bundled RSNA opacity detector, its metrics and its CLI paths.

Real data where ../shared exists: the 10 challenge DICOMs (external to the jpeg-512 training set:
no patientId in common), their 512 px JPEG twins made here the way jpeg-512 was made (Lanczos,
quality 93), `radview predict` and `radview review`. Phantom tests of the metric definitions and
of the box geometry run everywhere.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radview.models import registry
from radview.models.engine import iter_predict
from radview.review import detection as dm

POSITIVE = ("00436515", "00704310", "00aecb01")


def _detector():
    info = registry.get_model_info("rsna-pneumonia")
    if not info.installed:
        pytest.skip(f"rsna-pneumonia: {info.status}")
    return registry.load_model("rsna-pneumonia", "cpu")


def _truth(shared: Path) -> dict[str, np.ndarray]:
    ids = {p.stem for p in (shared / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm")}
    out: dict[str, list] = {i: [] for i in ids}
    with open(shared / "rsna-pneumonia" / "stage_2_train_labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["patientId"] in ids and row["Target"] == "1":
                x, y, w, h = (float(row[k]) for k in ("x", "y", "width", "height"))
                out[row["patientId"]].append([x, y, x + w, y + h])
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in out.items()}


def _kept(pred, thr):
    return np.asarray([b.as_xyxy() for b in pred.boxes if b.score >= thr], dtype=np.float64).reshape(-1, 4)


def test_bundled_detector_manifest_card_and_size():
    info = registry.get_model_info("rsna-pneumonia")
    if not info.installed:
        pytest.skip(info.status)
    m = info.manifest
    assert m.classes == ("normal", "pneumonia") and m.task == "detection"
    assert m.domain.gate_model == "body-part" and m.domain.gate_classes == ("chest",)
    assert m.weights_path.stat().st_size <= 20e6 and m.weights.dtype == "float16"
    h = m.metrics["held_out"]
    card = m.card_path.read_text()
    assert f"| image AUROC (best box score) | {h['auroc']:.3f} |" in card
    assert f"| challenge metric | {h['challenge_score']:.3f} |" in card
    c = m.metrics["split"]["counts"]
    assert c["test"]["images"] + c["val"]["images"] + c["fit"]["images"] == 1286


def test_card_candidates_and_the_promotion_rule():
    """Runs trained to replace the bundled model: each listed in the card with its measured figures,
    and each fell short of the bundled held-out AUROC or challenge metric (the rule: promoted only if
    both are not worse); a bundled model that replaced a previous one is not worse on either."""
    info = registry.get_model_info("rsna-pneumonia")
    if not info.installed:
        pytest.skip(info.status)
    mt, card = info.manifest.metrics, info.manifest.card_path.read_text()
    h = mt["held_out"]
    for c in mt.get("candidates_not_promoted") or []:
        assert c["auroc"] < h["auroc"] or c["challenge_score"] < h["challenge_score"], c
        init = "Kermany" if c.get("init_top") else "ImageNet"  # where its stride-32 blocks started
        assert (f"| {c['variant']} | {init} | {c['size']} px | {c['tta'] or 'none'} | {c['epochs']} ({c['best_epoch']}) | "
                f"{c['val_challenge']:.3f} | {c['val_auroc']:.3f} | {c['challenge_score']:.3f} | {c['auroc']:.3f} | "
                f"{c['dicom_hits']}/3 | {c['dicom_clean']}/7 |") in card, c
    if info.manifest.training.get("init_top"):  # Kermany-pretrained blocks: the card says whether that helped
        assert "This model: Kermany pretraining of blocks 11-15" in card
        assert "It helped on inner val" in card or "It did not help on inner val" in card
    prev = mt.get("previous") or {}
    if prev.get("auroc") is not None:
        assert h["auroc"] >= prev["auroc"] and h["challenge_score"] >= prev["challenge_score"], prev


def test_detector_on_the_challenge_dicoms_matches_the_card(shared_data):
    model = _detector()
    truth = _truth(shared_data)
    files = sorted((shared_data / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm"))
    preds = list(iter_predict([str(f) for f in files], model))
    thr = model.manifest.threshold
    hits = clean = 0
    for f, p in zip(files, preds):
        assert p.error is None and p.in_domain, (f.name, p.error, p.domain_reason)
        kept = _kept(p, thr)
        if len(truth[f.stem]):
            hits += int(len(kept) > 0 and dm.box_iou(kept, truth[f.stem]).max() >= 0.4)
        else:
            clean += int(len(kept) == 0)
    want = model.manifest.metrics["challenge_dicoms"]
    assert (hits, clean) == (want["positives_with_box_iou40"], want["negatives_without_box"])
    assert want["positives"] == 3 and want["negatives"] == 7


def test_detector_on_most_challenge_dicoms(shared_data):
    """The issue's bar on the 10 real fixtures: a box at IoU >= 0.4 on most of the 3 positives and
    none above the threshold on most of the 7 negatives. The figures are the card's, which
    test_detector_on_the_challenge_dicoms_matches_the_card measures again through the engine."""
    want = _detector().manifest.metrics["challenge_dicoms"]
    hits, clean = want["positives_with_box_iou40"], want["negatives_without_box"]
    assert clean > want["negatives"] / 2, f"boxes above the threshold on {want['negatives'] - clean} of 7 negatives"
    best = [r["best_iou"] for r in want["images"] if r["truth_boxes"]]
    assert hits > want["positives"] / 2, f"a box at IoU >= 0.4 on only {hits} of 3 positives (best IoU each: {best})"


def _twin(dcm: Path, out: Path) -> Path:
    """The 512 px JPEG twin of a 1024 px challenge DICOM, made like jpeg-512 (Lanczos, quality 93)."""
    import pydicom

    px = pydicom.dcmread(str(dcm)).pixel_array
    Image.fromarray(px.astype(np.uint8)).resize((512, 512), Image.Resampling.LANCZOS).save(out, quality=93)
    return out


def test_dicom_and_its_512_jpeg_twin_agree_after_scaling(shared_data, tmp_path):
    model = _detector()
    dcms = [p for p in sorted((shared_data / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm"))
            if p.name.startswith(POSITIVE)]
    jpgs = [_twin(d, tmp_path / f"{d.stem}.jpg") for d in dcms]
    pd = list(iter_predict([str(p) for p in dcms], model))
    pj = list(iter_predict([str(p) for p in jpgs], model))
    for a, b in zip(pd, pj):
        assert abs(a.probs[1] - b.probs[1]) < 0.05, (a.probs, b.probs)
        assert len(a.boxes) >= 2 and len(b.boxes) >= 2
        ba = np.asarray([x.as_xyxy() for x in a.boxes[:2]])  # the two best boxes (two lungs)
        bb = np.asarray([x.as_xyxy() for x in b.boxes]) * 2.0  # 512 px file -> 1024 px pixels
        assert ba.max() > 600, ba  # boxes are in the DICOM's 1024 px frame
        assert (dm.box_iou(ba, bb).max(1) >= 0.7).all(), (ba, bb)


def test_cli_predict_writes_boxes_in_each_files_pixels(shared_data, tmp_path):
    from radview.cli import main

    _detector()
    src = shared_data / "rsna-pneumonia" / "stage_2_train_images"
    dcm = next(p for p in sorted(src.glob("*.dcm")) if p.name.startswith(POSITIVE[0]))
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / dcm.name).symlink_to(dcm)
    _twin(dcm, folder / "twin.jpg")
    out = tmp_path / "p.json"
    assert main(["predict", str(folder), "--model", "rsna-pneumonia", "--out", str(out), "--all-boxes"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(out.read_text()) if r["level"] == "image"}
    d, j = rows[dcm.name], rows["twin.jpg"]
    assert d["boxes"] and j["boxes"]
    assert max(b["x"] + b["width"] for b in d["boxes"]) <= 1024.5 and max(b["x"] + b["width"] for b in j["boxes"]) <= 512.5
    assert abs(d["probability" if d["predicted"] == "pneumonia" else "p_pneumonia"] - d["p_pneumonia"]) < 1e-9
    assert d["p_pneumonia"] == pytest.approx(j["p_pneumonia"], abs=0.05)
    assert d["in_domain"] is True and d["domain_reason"].startswith("in domain: body-part")


def test_cli_review_of_the_detector_on_the_challenge_layout(shared_data, tmp_path, capsys):
    from radview.cli import main

    _detector()
    root = tmp_path / "rsna"
    (root / "stage_2_train_images").mkdir(parents=True)
    truth = _truth(shared_data)
    for p in sorted((shared_data / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm")):
        (root / "stage_2_train_images" / p.name).symlink_to(p)
    with open(root / "stage_2_train_labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patientId", "x", "y", "width", "height", "Target"])
        for pid, boxes in sorted(truth.items()):
            for x0, y0, x1, y1 in boxes:
                w.writerow([pid, x0, y0, x1 - x0, y1 - y0, 1])
            if not len(boxes):
                w.writerow([pid, "", "", "", "", 0])
    assert main(["review", str(root), "--model", "rsna-pneumonia", "--json", "--no-store", "--resamples", "200"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["images"] == 10 and d["positive_images"] == 3 and d["truth_boxes"] == 6
    assert [p["fp_per_image"] for p in d["froc"]] == [0.5, 1.0, 2.0]
    lo, hi = d["challenge_score_ci95"]
    assert lo is None or lo <= d["challenge_score"] <= hi
    assert all(r["why"] for r in d["top_losses"] if r["loss"] > 0)
    assert main(["review", str(root), "--model", "rsna-pneumonia", "--no-store", "--resamples", "50",
                 "--report", str(tmp_path / "rep")]) == 0
    text = capsys.readouterr().out
    assert "challenge metric:" in text and "FROC:" in text
    assert (tmp_path / "rep" / "index.html").is_file()


# --------------------------------------------------------------------------- phantoms (always run)


def _o(*boxes_scores):
    b = np.asarray([bs[0] for bs in boxes_scores], dtype=np.float64).reshape(-1, 4)
    s = np.asarray([bs[1] for bs in boxes_scores], dtype=np.float64)
    return b, s


def test_challenge_metric_definition():
    gt = np.asarray([[0, 0, 10, 10]], dtype=np.float64)
    assert dm.image_score(np.asarray([[0, 0, 10, 10]], float), gt) == 1.0
    assert np.isnan(dm.image_score(np.zeros((0, 4)), np.zeros((0, 4))))  # excluded, as on Kaggle
    assert dm.image_score(np.asarray([[0, 0, 5, 5]], float), np.zeros((0, 4))) == 0.0  # false box on a negative
    assert dm.image_score(np.zeros((0, 4)), gt) == 0.0
    # IoU 0.5 (box shifted by a third): TP at thresholds 0.40 and 0.45 only -> 2/8 of the thresholds
    half = np.asarray([[0, 0, 10, 15]], float)  # IoU = 100/150 = 0.667: TP at 0.40..0.65 -> 6/8
    assert dm.image_score(half, gt) == pytest.approx(6 / 8)
    two = np.asarray([[0, 0, 10, 10], [20, 20, 30, 30]], float)  # one TP + one FP every threshold -> 1/2
    assert dm.image_score(two, gt) == pytest.approx(0.5)
    outs = [_o(([0, 0, 10, 10], 0.9)), _o(([0, 0, 5, 5], 0.2)), _o()]
    truths = [gt, np.zeros((0, 4)), np.zeros((0, 4))]
    assert dm.challenge_score(outs, truths, 0.5) == 1.0  # low box dropped -> 2 images excluded
    assert dm.challenge_score(outs, truths, 0.1) == pytest.approx(0.5)


def test_froc_recall_reliability_and_losses_say_why():
    gt = [np.asarray([[0, 0, 10, 10]], float), np.asarray([[50, 50, 70, 70]], float), np.zeros((0, 4))]
    outs = [_o(([0, 0, 10, 10], 0.9)), _o(([55, 52, 90, 90], 0.8), ([0, 0, 4, 4], 0.3)), _o(([5, 5, 9, 9], 0.7))]
    assert dm.box_recall(outs, gt, 0.5) == (1, 2)
    f = {p["fp_per_image"]: p["sensitivity"] for p in dm.froc(outs, gt)}
    assert f[0.5] == 0.5 and f[2.0] == 0.5
    rel = dm.reliability_bins(np.asarray([0.1, 0.15, 0.9]), np.asarray([0, 1, 1]), 5)
    assert [b["n"] for b in rel] == [2, 0, 0, 0, 1] and rel[0]["observed"] == 0.5
    losses = {r["index"]: r for r in dm.image_losses(outs, gt, 0.5)}
    assert losses[0]["loss"] == 0.0 and losses[0]["why"] == ""
    assert "poorly placed box" in losses[1]["why"]
    assert "false box" in losses[2]["why"]
    missed = dm.image_losses([_o()], [gt[0]], 0.5)[0]
    assert missed["why"] == "missed box x1" and missed["loss"] == 1.0
    d = dm.detection_review(["a", "b", "c"], outs, gt, 0.5, n_boot=50)
    assert d["auroc"] == 1.0 and d["images_scored"] == 3 and len(d["froc"]) == 3
    assert "challenge metric" in dm.format_detection_review(d)


def test_detector_boxes_come_back_in_the_input_files_pixels(tmp_path):
    """An untrained Lite0 RetinaNet (score floor 0) through the registry and engine: boxes for a
    1024 px and a 512 px copy of one image agree after scaling (no ../shared needed)."""
    from radview.models import arch, recipe
    from radview.models.manifest import DomainSpec, InputSpec, Manifest

    import torch

    torch.manual_seed(0)  # an untrained net: its best box depends on the init (unseeded it failed ~1 run in 4)
    net = arch.build("retinanet_lite0_fpn", 2, "detection", size=128, score_thresh=0.0)
    m = Manifest(name="tiny-det", version="0", task="detection", classes=("normal", "pneumonia"),
                 arch="retinanet_lite0_fpn", arch_kwargs={"size": 128, "score_thresh": 0.0},
                 input=InputSpec(size=(128, 128), mean=(0.0,) * 3, std=(1.0,) * 3), cam_layer="backbone.body",
                 domain=DomainSpec())
    recipe.save_model_folder(net, m, tmp_path / "tiny-det", fp16=True)
    model = registry.load_model_folder(tmp_path / "tiny-det", "cpu")
    rng = np.random.default_rng(0)
    big = (rng.random((1024, 1024)) * 80).astype(np.uint8)
    big[300:600, 200:500] += 150
    Image.fromarray(big).save(tmp_path / "big.png")
    Image.fromarray(big).resize((512, 512), Image.Resampling.BILINEAR).save(tmp_path / "small.png")
    pb, ps = iter_predict([str(tmp_path / "big.png"), str(tmp_path / "small.png")], model, decoder="thread")
    assert pb.boxes and ps.boxes and pb.probs[1] == pytest.approx(ps.probs[1], abs=0.02)
    a = np.asarray(pb.boxes[0].as_xyxy())
    b = np.asarray(ps.boxes[0].as_xyxy()) * 2
    assert dm.box_iou(a[None], b[None])[0, 0] > 0.8
    from radview.models.cam import grad_cam

    cam = grad_cam(model, str(tmp_path / "big.png"))
    assert cam.data.shape == (1024, 1024) and cam.target.startswith("box 0") and cam.method == "hirescam"


def test_challenge_dicoms_model_input_matches_their_jpeg_twins(shared_data, tmp_path):
    """The DICOM path (1024 px, 8-bit, no window) and the JPEG path the detector was trained on
    (512 px, Lanczos, quality 93) give the same model input up to JPEG noise: no windowing
    mismatch (the viewer's percentile auto window once shifted these inputs by up to 0.3)."""
    from radview.io import load_frame
    from radview.models.preprocess import prepare

    spec = _detector().manifest.input
    for dcm in sorted((shared_data / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm")):
        a = prepare(load_frame(str(dcm)), spec)[0]
        b = prepare(load_frame(str(_twin(dcm, tmp_path / f"{dcm.stem}.jpg"))), spec)[0]
        assert abs(float(a.mean() - b.mean())) < 0.002 and float(np.abs(a - b).mean()) < 0.005, dcm.name
