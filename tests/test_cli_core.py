"""The headless CLI over the io core: scan and render; and the core's import hygiene."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from radview.cli import main
from radview.io import load_frame
from radview.io.display import display_image

from dicom_factory import write_dicom


def test_scan_json_lists_studies_labels_and_failures(tmp_path, capsys):
    for cls in ("chest", "abd"):
        d = tmp_path / "data" / "train" / cls
        d.mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 9, np.uint8)).save(d / "a.png")
    (tmp_path / "data" / "broken.dcm").write_bytes(b"DICM?" * 3)
    assert main(["scan", str(tmp_path / "data"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_studies"] == 2 and out["n_views"] == 2
    assert sorted(s["label"]["value"] for s in out["studies"]) == ["abd", "chest"]
    assert [e["path"].endswith("broken.dcm") for e in out["errors"]] == [True]
    assert out["errors"][0]["reason"]


def test_scan_text_and_missing_path(tmp_path, capsys):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "x.png")
    assert main(["scan", str(tmp_path)]) == 0
    assert "1 studies, 1 views" in capsys.readouterr().out
    assert main(["scan", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_render_is_exactly_the_display_image(tmp_path, testdata):
    src = testdata("RG3_J2KR.dcm")
    out = tmp_path / "r.png"
    assert main(["render", src, "--out", str(out)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), display_image(load_frame(src)))


def test_render_window_invert_and_frame(tmp_path):
    px = np.stack([np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (5, 1))] * 2)
    px[1] += 5
    src = write_dicom(tmp_path / "mf.dcm", px)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["render", str(src), "--out", str(a), "--window", "500", "200"]) == 0
    img = np.asarray(Image.open(a))
    assert img[0, 0] == 0 and img[0, -1] == 255 and 0 < img[0, 50] < 255
    assert main(["render", str(src), "--out", str(b), "--window", "500", "200", "--invert", "--frame", "1"]) == 0
    img_b = np.asarray(Image.open(b))
    assert img_b[0, 0] == 255 and img_b[0, -1] == 0


def test_render_bad_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "x.png").write_text("nope")
    assert main(["render", str(tmp_path / "x.png"), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "x.png" in err and "not a readable image" in err and "Traceback" not in err


def test_core_and_cli_import_neither_qt_nor_torch():
    code = ("import sys, radview.cli, radview.io, radview.io.studies, radview.io.display, radview.io.labels;"
            "radview.cli.build_parser();"
            "bad = [m for m in ('PySide6', 'torch', 'torchvision') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported by the core/CLI: {out.stdout}"
