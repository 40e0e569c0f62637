"""The MURA and RSNA paths end to end, with tiny models trained here on generated phantoms.

The real recipes (scripts/train_mura.py, scripts/train_rsna.py) run on phantom data laid out like
the real datasets, with small architectures and inputs; the models they write are then listed,
loaded, run and aggregated through the registry and engine exactly like installed models.
Nothing here is ever written to resources/.
"""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radview.models import registry
from radview.models.engine import aggregate_study, iter_predict

from dicom_factory import write_dicom

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()  # the scripts set their own (--threads)
    yield
    torch.set_num_threads(n)


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bone(rng, abnormal: bool, size: int = 64) -> np.ndarray:
    """A bright vertical 'bone' on soft tissue; abnormal studies carry a bright round lesion."""
    img = rng.normal(60, 8, (size, size))
    x0 = int(rng.integers(size // 3, size // 2))
    img[:, x0:x0 + size // 6] += 90
    if abnormal:
        cy, cx = rng.integers(12, size - 12, 2)
        yy, xx = np.mgrid[0:size, 0:size]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 250
    return np.clip(img, 0, 255).astype(np.uint8)


def make_mura(root: Path, rng, n_train: int = 8, n_valid: int = 3) -> dict[str, int]:
    """MURA-v1.1 layout with *_labeled_studies.csv and *_image_paths.csv; returns valid truth."""
    truth = {}
    for split, n in (("train", n_train), ("valid", n_valid)):
        studies, images = [], []
        for t in ("XR_WRIST", "XR_ELBOW"):
            for i in range(n):
                y = i % 2
                rel = f"MURA-v1.1/{split}/{t}/patient{i:05d}/study1_{'positive' if y else 'negative'}/"
                d = root / rel
                d.mkdir(parents=True)
                for v in range(2):
                    Image.fromarray(bone(rng, bool(y))).save(d / f"image{v + 1}.png")
                    images.append([rel + f"image{v + 1}.png"])
                studies.append([rel, y])
                if split == "valid":
                    truth[f"{t}/patient{i:05d}/study1_{'positive' if y else 'negative'}"] = y
        with open(root / "MURA-v1.1" / f"{split}_labeled_studies.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(studies)
        with open(root / "MURA-v1.1" / f"{split}_image_paths.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(images)
    return truth


def test_mura_recipe_trains_and_calls_phantom_studies_right(tmp_path):
    rng = np.random.default_rng(0)
    truth = make_mura(tmp_path, rng)
    mura = script("train_mura")
    rc = mura.main(["--data", str(tmp_path / "MURA-v1.1"), "--arch", "resnet18", "--size", "64", "--epochs", "6",
                    "--lr", "1e-3", "--workers", "0", "--threads", "2", "--device", "cpu"])
    assert rc == 0
    info = registry.get_model_info("mura-densenet169")  # the bundled name, now a user model
    assert info.installed and info.source == "user" and info.arch == "resnet18"
    m = info.manifest
    assert m.metrics["valid_study"]["studies"] == 6 and "per_study_type" in m.metrics["valid_study"]
    assert (Path(info.folder) / "MODEL_CARD.md").read_text().startswith("# mura-densenet169")
    model = registry.load_model("mura-densenet169", "cpu")
    valid = sorted((tmp_path / "MURA-v1.1" / "valid").rglob("*.png"))
    preds = list(iter_predict([str(p) for p in valid], model))
    by_study: dict[str, list] = {}
    for p in preds:
        key = "/".join(Path(p.ref.path).parent.parts[-3:])
        by_study.setdefault(key, []).append(p)
    called = {k: aggregate_study(k, v, m.threshold).predicted for k, v in by_study.items()}
    assert called == {k: ("abnormal" if y else "normal") for k, y in truth.items()}


def lungs(rng, boxes: list[tuple[int, int, int, int]], size: int = 128) -> np.ndarray:
    img = rng.normal(500, 40, (size, size))
    yy, xx = np.mgrid[0:size, 0:size]
    for cx in (size * 0.3, size * 0.7):  # two dark lung fields
        img[((xx - cx) / (size * 0.17)) ** 2 + ((yy - size / 2) / (size * 0.33)) ** 2 < 1] -= 250
    for x, y, w, h in boxes:
        img[y:y + h, x:x + w] += 450
    return np.clip(img, 0, 4095).astype(np.uint16)


def test_rsna_recipe_trains_a_detector_that_finds_the_phantom_box(tmp_path):
    rng = np.random.default_rng(1)
    img_dir = tmp_path / "stage_2_train_images"
    rows, held_out = [], []
    for i in range(44):
        pid = f"{i:08x}-phantom"
        boxes = []
        if i % 4 != 3:
            w, h = (int(v) for v in rng.integers(18, 30, 2))
            boxes.append((int(rng.integers(6, 128 - w - 6)), int(rng.integers(6, 128 - h - 6)), w, h))
        write_dicom(img_dir / f"{pid}.dcm", lungs(rng, boxes), bits_stored=12, body_part="CHEST")
        if i >= 40:
            held_out.append((img_dir / f"{pid}.dcm", boxes))
            continue
        rows += [[pid, x, y, w, h, 1] for x, y, w, h in boxes] or [[pid, "", "", "", "", 0]]
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["patientId", "x", "y", "width", "height", "Target"]] + rows)
    rsna = script("train_rsna")
    # --val-frac 0.3: an inner val of 10 phantoms (9 positive), not 5. The recipe keeps the FIRST epoch with the best
    # inner-val score and the HIGHEST tied threshold; 5 phantoms saturate (challenge 1.0, AUROC 1.0) by epoch ~9-10,
    # so an under-trained epoch was shipped with the grid's top threshold 0.9 and held-out boxes scored 0.88 (phantom
    # seed 1, deterministic) or 0.66-0.76 (seed 3). With 10 the pick lands on a trained epoch (seeds 1-5: held-out
    # boxes >= 0.92 at thresholds 0.875-0.9, IoU >= 0.71).
    rc = rsna.main(["--images", str(img_dir), "--labels", str(tmp_path / "labels.csv"), "--size", "256",
                    "--anchors", "32,64,128,256", "--kinds", "retinanet", "--epochs", "40", "--bs", "8", "--lr", "5e-3",
                    "--aug", "1", "--baseline-epochs", "3", "--threads", "2", "--device", "cpu", "--val-frac", "0.3",
                    "--cache", str(tmp_path / "cache")])
    assert rc == 0
    info = registry.get_model_info("rsna-pneumonia")
    assert info.installed and info.source == "user" and info.arch == "retinanet_lite0_fpn"
    mt = info.manifest.metrics
    assert "challenge_score" in mt["held_out"] and "challenge_score" in mt["baseline_one_box"]
    assert mt["split"]["counts"]["test"]["images"] == 6  # 15 % of the 40 labelled phantoms
    model = registry.load_model("rsna-pneumonia", "cpu")
    preds = list(iter_predict([str(p) for p, _ in held_out], model))
    for pred, (_p, truth) in zip(preds, held_out):
        assert pred.error is None and pred.classes == ("normal", "pneumonia")
        if truth:
            (x, y, w, h) = truth[0]
            best = pred.boxes[0]
            assert best.label == "opacity" and best.score >= model.manifest.threshold
            ix = max(0, min(x + w, best.x + best.width) - max(x, best.x))
            iy = max(0, min(y + h, best.y + best.height) - max(y, best.y))
            iou = ix * iy / (w * h + best.width * best.height - ix * iy)
            assert iou > 0.5, (truth, best)
            assert pred.predicted == "pneumonia"
        # phantoms are not radiographs: the body-part model gates the chest detector
        assert not pred.in_domain and pred.domain_reason.startswith("body-part")
    # the CAM of a detector targets the best box's score (HiResCAM by default), in image coordinates
    from radview.models.cam import grad_cam

    for path, truth in ((p, t) for p, t in held_out if t):
        cam = grad_cam(model, str(path))
        assert cam.data.shape == (128, 128) and cam.target.startswith("box 0") and cam.method == "hirescam"
        x, y, w, h = truth[0]
        assert cam.data[y:y + h, x:x + w].mean() > 2 * cam.data.mean()
    study = aggregate_study("s", preds)
    thr = model.manifest.threshold
    assert [any(b.score >= thr for b in v.boxes) for v in study.views] == [bool(t) for _p, t in held_out]


def test_detector_architectures_of_the_bundled_manifest_build_offline():
    m = registry.get_model_info("rsna-pneumonia").manifest
    from radview.models import arch as archmod

    net = archmod.build(m.arch, m.num_outputs, m.task, **m.arch_kwargs).eval()
    with torch.inference_mode():
        out = net([torch.rand(3, 512, 512)])
    assert set(out[0]) == {"boxes", "labels", "scores"}
    assert archmod.get_module(net, m.cam_layer) is net.backbone.body


def test_kermany_pretraining_inputs_are_checked_first_naming_the_file(tmp_path, capsys):
    """A wrong --data folder, a missing --init-top file and an unreadable one each stop at once
    with the path and the reason (before minutes of feature caching)."""
    with pytest.raises(SystemExit) as e:
        script("pretrain_kermany").main(["--out", str(tmp_path / "out"), "--data", str(tmp_path)])
    assert e.value.code == 2 and f"{tmp_path / 'train' / 'NORMAL'}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        script("train_rsna").main(["--init-top", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "none.pt: no such file" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_text("not a state dict")
    from radview.models import arch

    net = arch.build("fcos_lite0_fpn", 2, "detection", size=128)
    with pytest.raises(SystemExit, match="junk.pt: cannot read the stride-32 blocks' state dict"):
        script("train_rsna").load_init_top(net, tmp_path / "junk.pt")
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
