"""Model safety: TorchScript never loaded on import and only by opt-in, card paths confined to the
model folder, a decoder crash blames only the file that crashed it."""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radview.models import decoding, registry
from radview.models.manifest import InputSpec, ManifestError, load_manifest, manifest_from_dict
from radview.models.preprocess import decode_ref
from radview.types import ImageRef

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

BASE = {"format": 1, "name": "ts", "task": "binary", "classes": ["normal", "abnormal"], "arch": "resnet18",
        "input": {"size": [32, 32]}}


class _Tiny(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(1, 2, 3)).reshape(-1, 1)


def _torchscript_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ts"
    folder.mkdir()
    torch.jit.save(torch.jit.script(_Tiny()), str(folder / "model.pt"))
    d = dict(BASE, weights={"file": "model.pt", "format": "torchscript",
                            "sha256": registry.sha256_file(folder / "model.pt")})
    (folder / "manifest.json").write_text(json.dumps(d))
    return folder


def test_torchscript_is_not_loaded_on_import_and_refused_without_opt_in(tmp_path, monkeypatch):
    folder = _torchscript_folder(tmp_path)
    calls = []
    real = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.delenv("RADVIEW_ALLOW_TORCHSCRIPT", raising=False)
    info = registry.import_model(folder)
    assert info.installed and calls == []  # import checked the archive, never ran it
    with pytest.raises(registry.ModelError, match="TorchScript.*RADVIEW_ALLOW_TORCHSCRIPT"):
        registry.load_model("ts", "cpu")
    assert calls == []
    monkeypatch.setenv("RADVIEW_ALLOW_TORCHSCRIPT", "1")
    registry.clear_cache()
    m = registry.load_model("ts", "cpu")
    assert m.scripted and len(calls) == 1


def test_a_fake_torchscript_file_is_rejected_on_import(tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"not a zip at all")
    d = dict(BASE, name="fake", weights={"file": "model.pt", "format": "torchscript"})
    (folder / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(registry.ModelError, match="not a TorchScript archive"):
        registry.import_model(folder)
    assert not (registry.paths.user_models_dir() / "fake").exists()


@pytest.mark.parametrize("card", ["../../etc/passwd", "/etc/passwd", "sub/../../x.md", ""])
def test_card_path_must_stay_inside_the_model_folder(card):
    with pytest.raises(ManifestError, match="card"):
        manifest_from_dict(dict(BASE, card=card), "m.json")


def test_card_inside_folder_is_fine(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(dict(BASE, card="docs/CARD.md")))
    assert load_manifest(tmp_path).card_path == tmp_path / "docs" / "CARD.md"


# --------------------------------------------------------------------------- decoder crash


def crash_on_bad(ref, specs):
    """Decoder stand-in (runs in a decoder process): dies like a crashing codec on 'bad' files."""
    if "bad" in os.path.basename(ref.path):
        os._exit(3)
    return decode_ref(ref, specs)


def test_a_decoder_crash_blames_only_the_file_that_crashed(tmp_path):
    spec = InputSpec(size=(16, 16))
    refs = []
    for name in ("a.png", "bad.png", "c.png"):
        Image.fromarray(np.full((20, 20), 100, np.uint8)).save(tmp_path / name)
        refs.append(ImageRef(str(tmp_path / name)))
    pool = ProcessPoolExecutor(max_workers=1, mp_context=decoding._context())
    try:
        futs = [pool.submit(crash_on_bad, r, [spec]) for r in refs]
        out = [decoding.result(f, r, [spec], decode=crash_on_bad) for f, r in zip(futs, refs)]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    errors = {Path(d.ref.path).name: d.error for d in out}
    assert errors["a.png"] is None and errors["c.png"] is None, errors
    assert "decoder process died" in errors["bad.png"]
    assert out[0].inputs and out[2].inputs


def test_without_specs_a_broken_pool_is_reported_per_file_not_hidden(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "bad.png")
    ref = ImageRef(str(tmp_path / "bad.png"))
    pool = ProcessPoolExecutor(max_workers=1, mp_context=decoding._context())
    try:
        d = decoding.result(pool.submit(crash_on_bad, ref, [InputSpec(size=(8, 8))]), ref)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert "decoder process died" in d.error and str(ref.path) in d.error
