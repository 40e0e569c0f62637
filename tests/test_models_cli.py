"""`radview models ...`, `radview predict` and the overlay functions behind `radview render`."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from radview.cli import main
from radview.io import load_frame
from radview.io.display import display_image
from radview.models.overlay import blend_cam, colormap_lut, draw_boxes, render_overlay
from radview.types import Box

REGION_COLS = ["level", "path", "study", "predicted", "probability", "p_abd", "p_chest", "boxes", "in_domain",
               "domain_reason", "calibration", "error"]


def test_models_list_one_line_per_model_starting_with_its_name(capsys):
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [ln.split()[0] for ln in lines]
    assert names == sorted(names) and {"region", "body-part", "mura-densenet169", "rsna-pneumonia"} <= set(names)
    by = dict(zip(names, lines))
    assert by["region"].rstrip().endswith("installed") and "efficientnet_lite0" in by["region"]
    assert "weights not installed" in by["mura-densenet169"] and "densenet169" in by["mura-densenet169"]
    assert main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    installed = {d["name"]: d["installed"] for d in data}
    assert installed["rsna-pneumonia"] is True and installed["body-part"] is True  # bundled weights (issues 12, 13)
    assert installed["mura-densenet169"] is False


def test_models_show_and_import_errors(capsys, tmp_path):
    assert main(["models", "show", "region"]) == 0
    out = capsys.readouterr().out
    assert "status:    installed" in out and "classes: abd, chest" in out and "MODEL_CARD.md" in out
    assert main(["models", "show", "nope"]) == 2
    assert "no such model" in capsys.readouterr().err
    (tmp_path / "w.pt").write_bytes(b"junk")
    assert main(["models", "import", str(tmp_path / "w.pt"), "--name", "mura-densenet169"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("radview models: error: model mura-densenet169: cannot read weights")


def test_models_list_subprocess_does_not_import_torch():
    code = ("import sys; from radview.cli import main; main(['models','list']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH"


@pytest.fixture
def folder(tmp_path, shared_data):
    """A class-folder dataset of real PNGs plus one broken file."""
    root = tmp_path / "data"
    for cls in ("chest", "abd"):
        (root / "val" / cls).mkdir(parents=True)
        for p in sorted((shared_data / "openi-chest-abdomen" / "val" / cls).glob("*.png"))[:2]:
            (root / "val" / cls / p.name).write_bytes(p.read_bytes())
    (root / "val" / "chest" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    return root


def test_predict_csv_columns_rows_and_errors(folder, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    cams = tmp_path / "cams"
    assert main(["predict", str(folder), "--model", "region", "--device", "cpu", "--out", str(out),
                 "--cam-dir", str(cams)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0].keys()) == REGION_COLS
    images = [r for r in rows if r["level"] == "image"]
    studies = [r for r in rows if r["level"] == "study"]
    assert len(images) == 5
    bad = [r for r in images if r["error"]]
    assert len(bad) == 1 and bad[0]["path"].endswith("broken.png") and bad[0]["predicted"] == ""
    for r in images:
        if r["error"]:
            continue
        assert r["predicted"] == r["path"].split("/")[-2]
        p = {c: float(r[f"p_{c}"]) for c in ("abd", "chest")}
        assert float(r["probability"]) == pytest.approx(p[r["predicted"]]) and sum(p.values()) == pytest.approx(1)
        assert r["in_domain"] == "true" and r["domain_reason"] == "" and r["boxes"] == ""
        assert r["study"]
    # class folders: one study per file; the truncated PNG is rejected by the scan itself (an image row
    # with its reason, no study), or, with a scan that lets it through, by the decoder (a failed study)
    assert len(studies) in (4, 5) and all(s["path"] == "" for s in studies)
    broken = [s for s in studies if s["error"]]
    assert len(broken) == len(studies) - 4
    assert all(b["study"].endswith("broken.png") and b["predicted"] == "" for b in broken)
    assert "broken.png" in bad[0]["error"]
    assert all(s["predicted"] == s["study"].split("/")[-2] for s in studies if not s["error"])
    assert sorted(p.suffix for p in cams.iterdir()) == [".png"] * 4
    assert "5 images" in capsys.readouterr().err


def test_predict_json_and_out_of_domain_rows(tmp_path, testdata, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("CT_small.dcm", "RG3_UNCR.dcm"):
        (src / name).write_bytes(open(testdata(name), "rb").read())
    out = tmp_path / "p.json"
    # routed by default (issue 13): neither a CT nor a tibia is run by a chest/abdomen model
    assert main(["predict", str(src), "--model", "region", "--out", str(out)]) == 0
    skipped = {r["path"].split("/")[-1]: r for r in json.loads(out.read_text())}
    assert {r["level"] for r in skipped.values()} == {"skipped"} and set(skipped) == {"CT_small.dcm", "RG3_UNCR.dcm"}
    assert "Modality CT" in skipped["CT_small.dcm"]["domain_reason"]
    assert "musculoskeletal" in skipped["RG3_UNCR.dcm"]["domain_reason"]
    # asked to run on every study, the gate flags both
    assert main(["predict", str(src), "--model", "region", "--out", str(out), "--all-studies"]) == 0
    rows = json.loads(out.read_text())
    assert all(list(r.keys()) == REGION_COLS for r in rows)
    imgs = {r["path"].split("/")[-1]: r for r in rows if r["level"] == "image"}
    assert imgs["CT_small.dcm"]["in_domain"] is False and "Modality CT" in imgs["CT_small.dcm"]["domain_reason"]
    assert imgs["RG3_UNCR.dcm"]["in_domain"] is False and "EXTREMITY" in imgs["RG3_UNCR.dcm"]["domain_reason"]
    assert isinstance(imgs["CT_small.dcm"]["probability"], float)
    assert all(r["in_domain"] is False for r in rows if r["level"] == "study")


def test_predict_errors_are_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "none"), "--model", "region"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "a.png"), "--model", "mura-densenet169"]) == 2
    assert "model mura-densenet169: weights not installed" in capsys.readouterr().err


def test_overlay_pieces():
    for name in ("jet", "inferno", "viridis", "hot", "gray"):
        lut = colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    jet = colormap_lut("jet")
    assert tuple(jet[0]) == (0, 0, 128) and tuple(jet[255]) == (128, 0, 0) and jet[128, 1] == 255
    with pytest.raises(ValueError):
        colormap_lut("rainbow-unicorn")
    gray = np.full((40, 60), 100, np.uint8)
    cam = np.zeros((20, 30), np.float32)
    cam[5:10, 5:10] = 1
    rgb = blend_cam(gray, cam, alpha=0.5)
    assert rgb.shape == (40, 60, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (50, 50, 114)  # 0.5 * gray + 0.5 * jet[0]
    assert rgb[15, 15, 0] > rgb[15, 15, 2]  # hot spot is red
    boxed = draw_boxes(gray, [Box(10, 10, 20, 10, "opacity", 0.9)], scale=(1, 1), color=(255, 0, 0), labels=False)
    assert tuple(boxed[10, 20]) == (255, 0, 0) and tuple(boxed[15, 20]) == (100, 100, 100)
    half = draw_boxes(gray, [Box(10, 10, 20, 10)], scale=(0.5, 0.5), color=(0, 255, 0), labels=False)
    assert tuple(half[5, 10]) == (0, 255, 0)


def test_render_overlay_cam_on_a_shrunk_display(radiographs):
    frame = load_frame(radiographs.chest_dicom)
    disp = display_image(frame, max_size=256)
    rgb = render_overlay(frame, disp, "region", {"cam"}, device="cpu")
    assert rgb.shape == (disp.shape[0], disp.shape[1], 3)
    assert not np.array_equal(rgb[..., 0], rgb[..., 2])  # coloured
    plain = render_overlay(frame, disp, "region", set(), device="cpu")
    assert np.array_equal(plain, np.repeat(disp[..., None], 3, 2))
    with pytest.raises(ValueError, match="unknown overlay"):
        render_overlay(frame, disp, "region", {"heat"})


def test_render_cli_with_model(tmp_path, testdata):
    out = tmp_path / "o.png"
    assert main(["render", testdata("RG3_UNCR.dcm"), "--out", str(out), "--model", "region", "--overlay", "cam",
                 "--max-size", "300"]) == 0
    im = np.asarray(Image.open(out))
    assert im.ndim == 3 and max(im.shape[:2]) == 300
    assert (im[2, :, 0] > 60).mean() > 0.9  # the out-of-domain banner across the top
