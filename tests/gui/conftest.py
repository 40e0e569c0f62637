"""GUI test fixtures: offscreen Qt, factory fixtures that close their windows, a small real
model (EfficientNet-Lite0 head, random weights, 64x64 input) and small real image folders."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from guikit import TINY_MODEL, make_png as _png


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """A real model folder (manifest + weights) made once per session."""
    import torch

    from radview.models import arch
    from radview.models.manifest import sha256_file

    folder = tmp_path_factory.mktemp("models") / TINY_MODEL
    folder.mkdir()
    torch.manual_seed(0)
    module = arch.build("efficientnet_lite0", 1, "binary")
    torch.save(module.state_dict(), folder / "weights.pt")
    manifest = {
        "format": 1, "name": TINY_MODEL, "version": "1", "task": "binary",
        "classes": ["normal", "abnormal"], "arch": "efficientnet_lite0",
        "input": {"size": [64, 64], "channels": 3},
        "weights": {"file": "weights.pt", "sha256": sha256_file(folder / "weights.pt")},
        "threshold": 0.5, "description": "random weights, for GUI tests",
        "domain": {"modalities": ["CR", "DX"], "description": "radiographs"},
        "label_space": "mura",  # it predicts MURA normal/abnormal (review joins only that space)
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture
def tiny_model(tiny_model_folder, radview_home) -> str:
    """Install the tiny model as a user model of this test's RADVIEW_HOME; returns its name."""
    from radview import paths

    dest = paths.user_models_dir() / TINY_MODEL
    shutil.copytree(tiny_model_folder, dest)
    return TINY_MODEL


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Class-folder layout: 3 chest + 2 abd PNGs (5 one-image studies) and a DICOM."""
    root = tmp_path / "images"
    for i in range(3):
        _png(root / "val" / "chest" / f"c{i}.png", i)
    for i in range(2):
        _png(root / "val" / "abd" / f"a{i}.png", 10 + i)
    return root


@pytest.fixture
def mura_folder(tmp_path) -> Path:
    """MURA layout: two studies with 3 and 2 views."""
    root = tmp_path / "MURA-v1.1" / "valid" / "XR_WRIST"
    for j, (name, n) in enumerate((("study1_positive", 3), ("study1_negative", 2))):
        for v in range(n):
            _png(root / f"patient0000{j}" / name / f"image{v + 1}.png", 20 + 3 * j + v, size=(56, 44))
    return tmp_path / "MURA-v1.1"


@pytest.fixture
def make_window(qtbot):
    """Factory: make_window(executor=None) -> a shown MainWindow; all are shut down and
    closed at teardown, and no top-level window may outlive the test."""
    from PySide6.QtWidgets import QApplication

    from radview.gui.app import make_app
    from radview.gui.main_window import MainWindow

    make_app()
    windows = []

    def factory(start: bool = True, model: str | None = "", size=(1200, 800)):
        w = MainWindow()
        w.resize(*size)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        assert not w.panel_errors, "a panel failed to build:\n" + "\n".join(w.panel_errors)
        if start:
            w.start_background(model)
        windows.append(w)
        return w

    yield factory
    for w in windows:
        w.shutdown()
        w.close()
        w.deleteLater()
    QApplication.processEvents()
    leaked = [t for t in QApplication.topLevelWidgets() if t.isVisible()]
    assert not leaked, f"windows left open: {leaked}"


@pytest.fixture
def open_and_wait(qtbot):
    """open_and_wait(window, path) -> the ScanResult, once the background scan is done."""

    def run(window, path, timeout=20000):
        with qtbot.waitSignal(window.scanFinished, timeout=timeout) as blocker:
            window.open_path(str(path))
        return blocker.args[0]

    return run
