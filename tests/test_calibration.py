"""Calibration: reliability / ECE, temperature scaling, per-site saving and status, and
`radview review --calibrate` with a real (tiny TorchScript) overconfident model."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from radview.review import calibration as cal


def test_reliability_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.35, 0.65], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    r = cal.reliability(probs, y, n_bins=10)
    assert r.n == 4 and r.count.sum() == 4
    # bins are closed on the right: 0.95 alone in (0.9, 1.0], 0.9 in (0.8, 0.9]
    b9 = np.searchsorted(r.edges, 0.95) - 1
    assert r.count[b9] == 1 and r.accuracy[b9] == 1.0
    ece = (abs(1 - 0.95) + abs(0 - 0.9) + abs(1 - 0.65) + abs(1 - 0.6)) / 4
    assert r.ece == pytest.approx(ece)
    assert r.mce == pytest.approx(0.9)
    d = r.to_dict()
    assert len(d["bins"]) == 10 and d["bins"][0]["confidence"] is None
    json.dumps(d)
    by = cal.reliability_by(probs, y, ["a", "a", "b", "b"], n_bins=10)
    assert set(by) == {"a", "b"} and by["a"].n == 2


def overconfident(n, scale, seed):
    """Labels drawn from softmax(z); the 'model' reports softmax(scale * z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) * 1.5
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in p_true])
    zm = z * scale
    return np.exp(zm) / np.exp(zm).sum(1, keepdims=True), y


def test_temperature_recovers_the_overconfidence_and_lowers_held_out_ece():
    fit_p, fit_y = overconfident(3000, 2.5, seed=0)
    t = cal.fit_temperature(fit_p, fit_y)
    assert t == pytest.approx(2.5, rel=0.1)
    held_p, held_y = overconfident(2000, 2.5, seed=1)
    before = cal.expected_calibration_error(held_p, held_y)
    after = cal.expected_calibration_error(cal.apply_temperature(held_p, t), held_y)
    assert before > 0.1 and after < before / 3
    # a calibrated model keeps T ~ 1
    p1, y1 = overconfident(3000, 1.0, seed=2)
    assert cal.fit_temperature(p1, y1) == pytest.approx(1.0, abs=0.12)
    # binary (1 - p, p): exactly sigmoid(logit / T)
    p = np.array([[0.2, 0.8]])
    out = cal.apply_temperature(p, 2.0)
    assert out[0, 1] == pytest.approx(1 / (1 + math.exp(-math.log(4) / 2)))
    with pytest.raises(ValueError):
        cal.fit_temperature(np.zeros((0, 2)), np.zeros(0, int))


def test_site_calibration_saved_status_and_errors():
    st = cal.calibration_status("m", "north")
    assert not st.calibrated and "not calibrated for site north" in st.text
    cal.save_site_calibration("m", "north", 1.7, model_version="2", ece_before=0.12,
                              ece_after=0.02, n_fit=100, n_heldout=50)
    cal.save_site_calibration("m", "south", 0.9, model_version="2", ece_before=0.2,
                              ece_after=0.11, n_fit=60, n_heldout=30)
    c = cal.site_calibration("m", "north")
    assert c.temperature == 1.7 and c.fitted_at > 0 and c.source == "site"
    st = cal.calibration_status("m", "north", "2")
    assert st.calibrated and "ECE 0.020" in st.text and st.temperature == 1.7
    assert not cal.calibration_status("m", "south", "2").calibrated  # ECE 0.11 > 0.05
    assert "poorly calibrated" in cal.calibration_status("m", "south").text
    old = cal.calibration_status("m", "north", "3")
    assert not old.calibrated and "fitted for version 2" in old.text
    p = np.array([[0.1, 0.9]])
    assert cal.calibrated_probs(p, "m", "north", "2")[0, 1] < 0.9
    np.testing.assert_allclose(cal.calibrated_probs(p, "m", "east"), p)
    assert [x.site for x in cal.list_site_calibrations("m")] == ["north", "south"]
    assert cal.clear_site_calibration("m", "south") and not cal.clear_site_calibration("m", "x")
    with pytest.raises(ValueError):
        cal.save_site_calibration("m", "north", -1.0)
    cal.calibration_path().write_text("{not json")
    with pytest.raises(ValueError, match="site_calibration.json"):
        cal.site_calibration("m", "north")
    assert "calibration unknown" in cal.calibration_status("m", "north").text


# --------------------------------------------------------------------------- CLI

torch = pytest.importorskip("torch")


class _Steep(torch.nn.Module):
    def forward(self, x):
        return (x.mean(dim=(1, 2, 3)) - 0.5).unsqueeze(1) * 40.0


@pytest.fixture(autouse=True)
def _trust_our_torchscript(monkeypatch):
    monkeypatch.setenv("RADVIEW_ALLOW_TORCHSCRIPT", "1")  # the files below are made here


def make_steep_model(name="steep") -> str:
    from radview import paths
    from radview.models.manifest import sha256_file

    folder = paths.user_models_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(_Steep()).save(str(folder / "weights.pt"))
    (folder / "manifest.json").write_text(json.dumps({
        "format": 1, "name": name, "version": "1", "task": "binary",
        "classes": ["dark", "bright"], "arch": "resnet18",
        "input": {"size": [8, 8], "channels": 1, "mean": [0.0], "std": [1.0]},
        "weights": {"file": "weights.pt", "format": "torchscript",
                    "sha256": sha256_file(folder / "weights.pt")}, "threshold": 0.5}))
    return name


def test_cli_calibrate_lowers_held_out_ece_and_saves(tmp_path, capsys):
    """An overconfident model (logit 40 x (mean - 0.5)) on labels that follow a gentler curve:
    ECE on the held-out half falls after temperature scaling; the site's T is saved."""
    from radview.cli import main

    model = make_steep_model()
    rng = np.random.default_rng(0)
    root = tmp_path / "hospital_a"
    for i in range(120):
        level = int(rng.integers(60, 196))
        p_bright = 1 / (1 + math.exp(-6 * (level / 255 - 0.5)))
        cls = "bright" if rng.random() < p_bright else "dark"
        (root / cls).mkdir(parents=True, exist_ok=True)
        img = np.full((8, 8), level, np.uint8)
        img[7, 7] = i  # every file unique (identical files are one study); mean moves < 3/64
        Image.fromarray(img).save(root / cls / f"i{i:03d}.png")
    before = tmp_path / "before.json"
    assert main(["predict", str(root), "--model", model, "--out", str(before)]) == 0
    assert "not calibrated for site hospital_a" in capsys.readouterr().err
    rows = json.loads(before.read_text())
    assert rows and all(r["calibration"].startswith("not calibrated for site hospital_a") for r in rows)
    rc = main(["review", str(root), "--model", model, "--calibrate", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    d = json.loads(out.out)["calibration"]
    assert d["site"] == "hospital_a" == cal.site_for_path(root) and d["n_studies"] == 120
    assert cal.site_for_path(next(root.glob("*/*.png"))) in ("bright", "dark")
    h = d["heldout"]
    assert h["n_fit"] + h["n_heldout"] == 120 and min(h["n_fit"], h["n_heldout"]) >= 50
    assert h["ece_after"] < h["ece_before"]
    assert h["ece_before"] > 0.1
    assert d["temperature"] > 2  # overconfident: T > 1 softens it
    saved = cal.site_calibration(model, "hospital_a")
    assert saved.temperature == pytest.approx(d["temperature"])
    assert saved.ece_after == pytest.approx(h["ece_after"])
    assert set(d["per_folder"]) == {"bright", "dark"}
    after = tmp_path / "after.json"
    assert main(["predict", str(root), "--model", model, "--out", str(after)]) == 0
    capsys.readouterr()
    text_after = {r["calibration"] for r in json.loads(after.read_text())}
    assert len(text_after) == 1 and "for site hospital_a: ECE" in text_after.pop()  # (poorly) calibrated
    rc = main(["review", str(root), "--model", model, "--calibrate", "--site", "C", "--json",
               "--report", str(tmp_path / "report")])
    d = json.loads(capsys.readouterr().out)["calibration"]
    png = Image.open(d["reliability_png"])  # the reliability diagram, drawn
    assert rc == 0 and png.size[0] > 400 and len(np.unique(np.asarray(png.convert("L")))) > 8
    rc = main(["review", str(root), "--model", model, "--calibrate", "--site", "B"])
    text = capsys.readouterr().out
    assert rc == 0 and "ECE" in text and "before" in text and "site B" in text
    assert cal.site_calibration(model, "B") is not None


def test_cli_calibrate_needs_labels_of_the_model(tmp_path, capsys):
    from radview.cli import main

    model = make_steep_model()
    root = tmp_path / "x" / "chest"
    root.mkdir(parents=True)
    other = tmp_path / "x" / "abd"
    other.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 50 * i, np.uint8)).save(root / f"{i}.png")
        Image.fromarray(np.full((8, 8), 50 * i, np.uint8)).save(other / f"{i}.png")
    assert main(["review", str(tmp_path / "x"), "--model", model, "--calibrate"]) == 2
    assert "model's classes" in capsys.readouterr().err
