"""`radview review` end to end: real scan, real (tiny TorchScript) model through the engine, real
label store and prediction cache, site thresholds, JSON and the HTML/PNG report. The bundled
region model on ../shared's Open-i val split is the real-data test (skipped where absent)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radview.cli import main

torch = pytest.importorskip("torch")

# dark folder: 40, 60, 90 and one bright image (200) filed as dark: the worst loss
# bright folder: 220, 180, 150 and one darkish image (100) filed as bright
LEVELS = {"dark": (40, 60, 90, 200), "bright": (220, 180, 150, 100)}


def brightness_p(level: int) -> float:
    """What the test model answers for a PNG of this gray level (see make_model)."""
    return 1.0 / (1.0 + math.exp(-12.0 * (level / 255.0 - 0.5)))


class _Bright(torch.nn.Module):
    def forward(self, x):
        return (x.mean(dim=(1, 2, 3)) - 0.5).unsqueeze(1) * 12.0


def make_model(name: str = "brightness", threshold: float = 0.5) -> str:
    from radview import paths
    from radview.models.manifest import sha256_file

    folder = paths.user_models_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated upstream
        torch.jit.script(_Bright()).save(str(folder / "weights.pt"))
    manifest = {
        "format": 1, "name": name, "version": "1", "task": "binary",
        "classes": ["dark", "bright"], "arch": "resnet18",
        "input": {"size": [16, 16], "channels": 1, "mean": [0.0], "std": [1.0]},
        "weights": {"file": "weights.pt", "format": "torchscript",
                    "sha256": sha256_file(folder / "weights.pt")},
        "threshold": threshold,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return name


@pytest.fixture(autouse=True)
def _trust_the_test_models(monkeypatch):
    """The TorchScript test models below are written by these tests: trusted (the registry
    refuses TorchScript unless RADVIEW_ALLOW_TORCHSCRIPT=1)."""
    monkeypatch.setenv("RADVIEW_ALLOW_TORCHSCRIPT", "1")


def make_folder(tmp_path) -> Path:
    """A class-folder set under tmp_path/val: one gray PNG per level of LEVELS (img040.png ...)."""
    root = tmp_path / "val"
    for cls, levels in LEVELS.items():
        (root / cls).mkdir(parents=True)
        for v in levels:
            Image.fromarray(np.full((24, 20), v, np.uint8)).save(root / cls / f"img{v:03d}.png")
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path)


def coloured_in_first_thumbnail(png) -> int:
    """Coloured pixels inside the first view thumbnail of a top-loss grid (the test images are
    gray: only a CAM colours them). The first thumbnail sits at (6, 36), 180 px."""
    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)[50:200, 30:160]
    return int((np.abs(rgb[..., 0] - rgb[..., 2]) > 40).sum())


def review_json(capsys, *argv) -> dict:
    rc = main(["review", *map(str, argv), "--json", "--resamples", "200"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_review_json_from_class_folders(folder, capsys):
    make_model()
    d = review_json(capsys, folder, "--model", "brightness", "--top", "3")
    for key in ("kappa", "auroc", "accuracy", "confusion_matrix", "most_confused", "top_losses",
                "per_group", "sensitivity", "specificity", "kappa_ci", "auroc_ci"):
        assert key in d
    assert d["n_studies"] == 8 and d["n_predicted"] == 8 and d["n_cached"] == 0
    assert d["classes"] == ["dark", "bright"] and d["threshold"] == 0.5
    assert d["threshold_source"] == "model"
    # 6 right, 2 wrong: one each way
    assert d["confusion_matrix"] == [[3, 1], [1, 3]]
    assert d["accuracy"] == pytest.approx(0.75)
    assert d["kappa"] == pytest.approx(0.5)
    # AUROC from the known probabilities: sklearn as the oracle
    from sklearn.metrics import roc_auc_score
    y = [0] * 4 + [1] * 4
    s = [brightness_p(v) for v in LEVELS["dark"] + LEVELS["bright"]]
    assert d["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    top = d["top_losses"]
    assert [Path(t["study"]).name for t in top] == ["img200.png", "img100.png", "img150.png"]
    assert top[0]["actual"] == "dark" and top[0]["predicted"] == "bright"
    assert top[0]["probability"] == pytest.approx(1 - brightness_p(200), abs=1e-5)
    assert top[0]["loss"] == pytest.approx(-math.log(1 - brightness_p(200)), abs=1e-4)
    assert {(m["actual"], m["predicted"], m["count"]) for m in d["most_confused"]} == {
        ("dark", "bright", 1), ("bright", "dark", 1)}
    # second run: everything from the store's prediction cache
    d2 = review_json(capsys, folder, "--model", "brightness")
    assert d2["n_cached"] == 8 and d2["n_predicted"] == 0
    assert d2["kappa"] == pytest.approx(d["kappa"])


def test_corrections_in_the_store_win(folder, capsys):
    from radview.store import LabelStore

    make_model()
    worst = str(folder / "dark" / "img200.png")
    with LabelStore(reader="dr_ana") as store:
        store.set_label(worst, "bright", level="study", reason="wrong_label")
    d = review_json(capsys, folder, "--model", "brightness")
    assert d["n_corrected"] == 1
    assert d["confusion_matrix"] == [[3, 0], [1, 4]]
    assert Path(d["top_losses"][0]["study"]).name == "img100.png"
    fixed = next(t for t in d["top_losses"] if t["study"] == worst)
    assert fixed["actual"] == "bright" and fixed["corrected"] and fixed["reader"] == "dr_ana"


def test_labels_csv_relative_to_path_and_absolute(folder, tmp_path, capsys):
    make_model()
    csv = tmp_path / "labels.csv"
    # relabel everything by brightness except one image: only img090 stays wrong
    rows = ["path,label"]
    for cls, levels in LEVELS.items():
        for v in levels:
            truth = "bright" if v >= 128 else "dark"
            if v == 90:
                truth = "bright"
            p = f"{cls}/img{v:03d}.png"
            rows.append(f"{p if v != 60 else folder / p},{truth}")  # one absolute path
    csv.write_text("\n".join(rows) + "\n")
    d = review_json(capsys, folder, "--model", "brightness", "--labels", csv)
    assert d["confusion_matrix"] == [[3, 0], [1, 4]]
    assert Path(d["top_losses"][0]["study"]).name == "img090.png"


def test_text_output_site_threshold_and_report(folder, tmp_path, capsys):
    make_model()
    rc = main(["review", str(folder), "--model", "brightness", "--top", "2",
               "--resamples", "100", "--save-threshold", "0.8", "--report", str(tmp_path / "rep")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "kappa" in out.out and "confusion matrix" in out.out and "top 2 losses" in out.out
    assert "saved site threshold 0.800" in out.out
    for name in ("index.html", "confusion_matrix.png", "roc.png", "sweep.png", "top_losses.png",
                 "summary.json"):
        assert (tmp_path / "rep" / name).stat().st_size > 0, name
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "confusion_matrix.png" in html and "top_losses.png" in html and "roc.png" in html
    with Image.open(tmp_path / "rep" / "top_losses.png") as im:
        assert im.width > 300 and im.height > 200
    assert coloured_in_first_thumbnail(tmp_path / "rep" / "top_losses.png") == 0  # no CAM
    assert "no CAMs in the report" in out.err
    # the saved threshold is used next time, marked as the site's: 150 (p=0.74) becomes dark
    assert 0.7 < brightness_p(150) < 0.8 < brightness_p(180)
    d = review_json(capsys, folder, "--model", "brightness")
    assert d["threshold"] == 0.8 and d["threshold_source"] == "site"
    assert d["confusion_matrix"] == [[3, 1], [2, 2]]
    d = review_json(capsys, folder, "--model", "brightness", "--save-threshold", "youden")
    assert d["saved_threshold"]["criterion"] == "youden"
    assert d["best_threshold"]["youden"] == pytest.approx(d["saved_threshold"]["threshold"])


def test_report_draws_cams_with_an_eager_model(folder, tmp_path, capsys):
    """A real (random-weight) EfficientNet-Lite0 through engine and Grad-CAM: the top-loss grid
    shows the views with their CAM in colour over the gray image."""
    from radview import paths
    from radview.models import arch
    from radview.models.manifest import sha256_file

    mfolder = paths.user_models_dir() / "lite"
    mfolder.mkdir(parents=True)
    torch.manual_seed(0)
    module = arch.build("efficientnet_lite0", 1, "binary")
    head = arch.head_module(module, "efficientnet_lite0")
    torch.nn.init.normal_(head.weight, std=0.5)  # a fresh head may start at zero: no gradient
    torch.save(module.state_dict(), mfolder / "weights.pt")
    (mfolder / "manifest.json").write_text(json.dumps({
        "format": 1, "name": "lite", "version": "1", "task": "binary",
        "classes": ["dark", "bright"], "arch": "efficientnet_lite0",
        "input": {"size": [64, 64], "channels": 3},
        "weights": {"file": "weights.pt", "sha256": sha256_file(mfolder / "weights.pt")}}))
    rng = np.random.default_rng(0)
    for cls in ("dark", "bright"):  # structured images, so that the CAM is not flat
        for i in range(3):
            img = (rng.random((64, 56)) * 80 + (40 if cls == "dark" else 140)).astype(np.uint8)
            img[10 + 8 * i:30 + 8 * i, 12:40] = 255
            Image.fromarray(img).save(folder / cls / f"img{i:03d}.png")
    rep = tmp_path / "rep"
    rc = main(["review", str(folder), "--model", "lite", "--top", "3", "--resamples", "50",
               "--report", str(rep)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "no CAM" not in out.err
    assert coloured_in_first_thumbnail(rep / "top_losses.png") > 1000


def test_cli_errors(folder, tmp_path, capsys):
    assert main(["review", str(tmp_path / "nope"), "--model", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["review", str(folder), "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    make_model()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["review", str(empty), "--model", "brightness"]) == 2
    assert "no images" in capsys.readouterr().err
    # labels naming none of the model's classes: a clear error, not a crash
    other = tmp_path / "other"
    for cls in ("elbow", "knee"):
        (other / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(other / cls / "a.png")
    assert main(["review", str(other), "--model", "brightness"]) == 2
    err = capsys.readouterr().err
    assert "elbow" in err and "dark" in err


def test_bad_file_is_reported_and_the_rest_reviewed(folder, capsys):
    make_model()
    (folder / "dark" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    d = review_json(capsys, folder, "--model", "brightness")
    assert d["n_studies"] == 8


def test_aggregate_views_equals_engine_rule():
    from radview.models.engine import aggregate_study
    from radview.review.collect import aggregate_views
    from radview.types import ImageRef, Prediction

    cls = ("normal", "abnormal")
    views = [Prediction(ImageRef(f"/s/{i}.png"), "m", "1", cls, (1 - p, p), in_domain=i != 1,
                        domain_reason="odd" if i == 1 else "")
             for i, p in enumerate((0.2, 0.8, 0.5))]
    views.append(Prediction(ImageRef("/s/bad.png"), "m", "1", cls, (), error="bad"))
    for t in (0.5, 0.4, 0.6):
        assert aggregate_views("s", views, t) == aggregate_study("s", views, t)
    three = ("a", "b", "c")
    mc = [Prediction(ImageRef("/t/1.png"), "m", "1", three, (0.2, 0.5, 0.3)),
          Prediction(ImageRef("/t/2.png"), "m", "1", three, (0.6, 0.1, 0.3))]
    assert aggregate_views("t", mc) == aggregate_study("t", mc)


@pytest.mark.shared
def test_region_model_on_openi_val(shared_data, tmp_path, capsys):
    from radview.models.registry import get_model_info, ModelError

    try:
        info = get_model_info("region")
    except ModelError as exc:
        pytest.skip(f"bundled region model not available yet: {exc}")
    if not info.installed:
        pytest.skip(f"bundled region model not installed: {info.status}")
    val = shared_data / "openi-chest-abdomen" / "val"
    d = review_json(capsys, val, "--model", "region", "--top", "4", "--report", tmp_path / "rep")
    assert d["n_studies"] == 9
    assert np.array(d["confusion_matrix"]).sum() == 9
    assert d["accuracy"] >= 0.75
    assert len(d["top_losses"]) == 4
    assert (tmp_path / "rep" / "top_losses.png").stat().st_size > 10_000


def _mixed_folder(shared_data, root: Path) -> Path:
    """Open-i val (class folders abd/chest) beside the 10 RSNA challenge DICOMs with their CSV."""
    import shutil

    shutil.copytree(shared_data / "openi-chest-abdomen" / "val", root / "openi" / "val")
    rsna = shared_data / "rsna-pneumonia"
    shutil.copytree(rsna / "stage_2_train_images", root / "rsna" / "stage_2_train_images")
    (root / "rsna" / "stage_2_train_labels.csv").symlink_to(rsna / "stage_2_train_labels.csv")
    return root


@pytest.mark.shared
def test_rsna_normal_films_are_never_counted_against_the_region_model(shared_data, tmp_path,
                                                                     capsys):
    from radview.models.registry import ModelError, get_model_info

    try:
        info = get_model_info("region")
    except ModelError as exc:
        pytest.skip(f"bundled region model not available: {exc}")
    if not info.installed:
        pytest.skip(f"bundled region model not installed: {info.status}")
    mixed = _mixed_folder(shared_data, tmp_path / "mixed")
    d = review_json(capsys, mixed, "--model", "region", "--top", "20")
    # only the 9 Open-i studies are compared; the 10 RSNA studies are listed with the reason
    assert d["n_studies"] == 9 and np.array(d["confusion_matrix"]).sum() == 9
    assert d["label_space"] == "openi-chest-abdomen"
    rsna = [s for s in d["skipped"] if "rsna" in s["reason"]]
    assert len(rsna) == 10 and d["n_not_comparable"] == 10
    assert all("not comparable" in s["reason"] and "normal/pneumonia" in s["reason"]
               for s in rsna)
    assert all("/openi/" in t["views"][0]["ref"] for t in d["top_losses"])
    # the detector's own space is RSNA: there the Open-i studies are the ones left out
    from radview.review import build_review, truths_from_studies
    from radview.io import scan
    from radview.types import StudyPrediction

    studies = [s for s in scan(mixed).studies if s.views]
    truths = truths_from_studies(studies)
    fake = [StudyPrediction(s.key, "region", "1", ("abd", "chest"), (0.5, 0.5), "abd")
            for s in studies]
    data = build_review(fake, truths, manifest=info.manifest)
    assert len(data) == 9 and len(data.not_comparable) == 10
    assert {truths[k].label.value for k in data.keys} == {"abd", "chest"}
