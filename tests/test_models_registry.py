"""Registry: listing, loading with sha256 + weights_only, clear errors, imports, devices."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from radview import paths
from radview.io import load_frame
from radview.models import registry
from radview.models.manifest import InputSpec, Manifest, load_manifest, manifest_from_dict
from radview.models.preprocess import prepare
from radview.models.recipe import save_model_folder
from radview.models.registry import ModelError


@pytest.fixture(autouse=True)
def _fresh_cache():
    registry.clear_cache()
    yield
    registry.clear_cache()


def tiny_manifest(name: str, arch: str = "mobilenet_v3_small", task: str = "binary",
                  classes=("normal", "abnormal"), size: int = 32, **kw) -> Manifest:
    return Manifest(name=name, version="t1", task=task, classes=tuple(classes), arch=arch,
                    input=InputSpec(size=(size, size)), **kw)


def user_model(name: str, **kw) -> Manifest:
    """A random-init model installed in the user folder (real files, real sha256)."""
    from radview.models import arch as archmod

    m = tiny_manifest(name, **kw)
    torch.manual_seed(0)
    module = archmod.build(m.arch, m.num_outputs, m.task)
    return save_model_folder(module, m, paths.user_models_dir() / name)


def png(path, size=(40, 48), value=None):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, size, dtype=np.uint8) if value is None else np.full(size, value, np.uint8)
    Image.fromarray(a).save(path)
    return str(path)


def test_bundled_models_are_listed_with_their_status():
    infos = {i.name: i for i in registry.list_models()}
    assert {"region", "body-part", "mura-densenet169", "rsna-pneumonia"} <= set(infos)
    for name in ("region", "body-part", "rsna-pneumonia"):  # weights bundled
        assert infos[name].installed and infos[name].source == "bundled", infos[name].status
    for name in ("mura-densenet169",):
        assert not infos[name].installed
        assert infos[name].status.startswith("weights not installed")
        assert f"--name {name}" in infos[name].status
        with pytest.raises(ModelError, match=rf"model {name}: weights not installed"):
            registry.load_model(name, "cpu")


def test_bundled_region_weights_are_small_and_checked():
    m = registry.get_model_info("region").manifest
    assert m.weights_path.stat().st_size < 20e6
    assert m.metrics["val"]["n"] == 9 and "val_from_scratch" in m.metrics  # written by the script
    loaded = registry.load_model("region", "cpu")
    assert loaded.gate is not None and loaded.gate.class_means.shape[0] == 2
    assert not any(p.requires_grad for p in loaded.module.parameters())
    assert registry.load_model("region", "cpu") is loaded  # cached


def test_missing_corrupt_and_mismatched_weights_give_clear_errors_and_others_stay_listed(tmp_path):
    good = user_model("good")
    missing = user_model("missing")
    missing.weights_path.unlink()
    altered = user_model("altered")
    with open(altered.weights_path, "r+b") as fh:  # flip bytes: sha256 no longer matches
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    garbage = user_model("garbage")
    garbage.weights_path.write_bytes(b"not a torch file at all")
    g = load_manifest(garbage.weights_path.parent)
    from radview.models.manifest import sha256_file, write_manifest

    write_manifest(g.with_changes(weights=g.weights.__class__(file=g.weights.file, sha256=sha256_file(g.weights_path))),
                   g.folder)  # sha matches the garbage: the load itself must fail
    wrong = user_model("wrong-head", task="multiclass", classes=("a", "b", "c"))
    w = load_manifest(wrong.weights_path.parent)
    write_manifest(w.with_changes(classes=("a", "b")), w.folder)  # manifest says 2 outputs, weights have 3
    broken = paths.user_models_dir() / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ not json")

    infos = {i.name: i for i in registry.list_models()}
    assert infos["good"].installed and infos["region"].installed
    assert not infos["missing"].installed and "weights not installed" in infos["missing"].status
    assert not infos["altered"].installed and "sha256" in infos["altered"].status
    assert not infos["broken"].installed and infos["broken"].status.startswith("bad manifest: invalid JSON")
    with pytest.raises(ModelError, match="model missing: weights not installed"):
        registry.load_model("missing", "cpu")
    with pytest.raises(ModelError, match="model altered: .*does not match the manifest's sha256"):
        registry.load_model("altered", "cpu")
    with pytest.raises(ModelError, match=r"model garbage: cannot read weights weights.pt \(weights_only=True\)"):
        registry.load_model("garbage", "cpu")
    with pytest.raises(ModelError, match="model wrong-head: weights weights.pt do not fit mobilenet_v3_small"):
        registry.load_model("wrong-head", "cpu")
    with pytest.raises(ModelError, match="model nope: no such model"):
        registry.load_model("nope", "cpu")
    assert registry.load_model("good", "cpu").name == "good"


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(capsys):
    m = user_model("evil")
    torch.save({"state_dict": {}, "x": Evil()}, m.weights_path)
    from radview.models.manifest import sha256_file, write_manifest

    write_manifest(m.with_changes(weights=m.weights.__class__(file="weights.pt", sha256=sha256_file(m.weights_path))),
                   m.folder)
    with pytest.raises(ModelError, match="weights_only=True"):
        registry.load_model("evil", "cpu")
    assert "pwned" not in capsys.readouterr().out


def test_manifest_validation_names_the_problem(tmp_path):
    base = tiny_manifest("x").to_dict()
    for change, reason in [({"task": "regression"}, "task 'regression'"), ({"classes": ["a"]}, "at least two"),
                           ({"input": {"size": [4, 4]}}, "input size"), ({"weights": {"file": "../x.pt"}}, "inside"),
                           ({"weights": {"sha256": "abc"}}, "64 hex"), ({"format": 9}, "unsupported manifest format")]:
        with pytest.raises(Exception, match=reason):
            manifest_from_dict({**base, **change}, tmp_path / "manifest.json")
    m = manifest_from_dict(base)
    assert m.num_outputs == 1 and manifest_from_dict({**base, "task": "multiclass"}).num_outputs == 2


def test_import_torchvision_densenet169_state_dict_for_the_mura_manifest(tmp_path, radiographs):
    import torchvision

    net = torchvision.models.densenet169(weights=None)
    net.classifier = torch.nn.Linear(net.classifier.in_features, 1)
    torch.save(net.state_dict(), tmp_path / "mura_densenet169.pth")
    info = registry.import_model(tmp_path / "mura_densenet169.pth", name="mura-densenet169")
    assert info.installed and info.source == "user"
    listed = {i.name: i for i in registry.list_models()}["mura-densenet169"]
    assert listed.installed and listed.source == "user"
    assert (paths.user_models_dir() / "mura-densenet169" / "MODEL_CARD.md").is_file()
    model = registry.load_model("mura-densenet169", "cpu")
    from radview.models.engine import iter_predict

    x = next(iter(model.module.parameters()))
    assert torch.equal(x, next(iter(net.parameters())))
    (pred,) = list(iter_predict([str(radiographs.chest)], model))
    assert pred.error is None and pred.classes == ("normal", "abnormal") and abs(sum(pred.probs) - 1) < 1e-6
    # weights of the wrong shape are refused and nothing is installed
    bad = torchvision.models.densenet121(weights=None).state_dict()
    torch.save(bad, tmp_path / "d121.pth")
    with pytest.raises(ModelError, match="do not fit densenet169"):
        registry.import_model(tmp_path / "d121.pth", name="mura-densenet169", force=True)
    assert registry.load_model("mura-densenet169", "cpu").name == "mura-densenet169"  # old one still there
    with pytest.raises(ModelError, match="exists"):
        registry.import_model(tmp_path / "mura_densenet169.pth", name="mura-densenet169")


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_import_torchscript_from_a_manifest_alone(tmp_path, monkeypatch):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    scripted = torch.jit.trace(net, torch.zeros(1, 3, 32, 32))
    scripted.save(str(tmp_path / "model.ts"))
    manifest = tiny_manifest("ts-model", arch="custom-cnn", task="multiclass", classes=("a", "b", "c")).to_dict()
    manifest["weights"] = {"format": "torchscript"}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    info = registry.import_model(tmp_path / "model.ts", manifest=tmp_path / "m.json")
    assert info.installed and info.name == "ts-model"
    monkeypatch.delenv("RADVIEW_ALLOW_TORCHSCRIPT", raising=False)
    with pytest.raises(ModelError, match="RADVIEW_ALLOW_TORCHSCRIPT"):  # runs code: only by opt-in
        registry.load_model("ts-model", "cpu")
    monkeypatch.setenv("RADVIEW_ALLOW_TORCHSCRIPT", "1")
    model = registry.load_model("ts-model", "cpu")
    from radview.models.cam import grad_cam
    from radview.models.engine import iter_predict

    img = png(tmp_path / "x.png")
    (pred,) = list(iter_predict([img], model))
    x = torch.from_numpy(prepare(load_frame(img), model.manifest.input)[0])[None]
    want = torch.softmax(net(x), 1)[0].detach().numpy()
    assert np.allclose(pred.probs, want, atol=1e-5)
    with pytest.raises(ModelError, match="TorchScript"):
        grad_cam(model, img)


def test_import_model_folder_checks_sha(tmp_path):
    m = user_model("src")
    shutil.copytree(m.folder, tmp_path / "pkg")
    shutil.rmtree(m.folder)
    info = registry.import_model(tmp_path / "pkg", name="copied")
    assert info.installed and info.name == "copied"
    (tmp_path / "pkg" / "weights.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="does not match the manifest's sha256"):
        registry.import_model(tmp_path / "pkg", name="copied2")
    assert "copied2" not in {i.name for i in registry.list_models()}


def test_select_device_and_threads(monkeypatch):
    assert registry.select_device("cpu").type == "cpu"
    assert registry.select_device(None).type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            registry.select_device("cuda")
    with pytest.raises(ModelError, match="unknown device"):
        registry.select_device("tpu9")
    monkeypatch.setenv("RADVIEW_DEVICE", "cpu")
    assert registry.select_device().type == "cpu"
    before = torch.get_num_threads()
    try:
        assert registry.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
