"""Helpers shared by the GUI tests (importable as `guikit`: pytest puts tests/gui on sys.path)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_MODEL = "tiny-lite0"


def make_png(path: Path, seed: int, size=(48, 40)) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    img = (127 + 100 * np.sin(x / (3 + seed % 5)) * np.cos(y / 4) + rng.normal(0, 8, (h, w)))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
