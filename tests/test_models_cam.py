"""Grad-CAM family against the `grad-cam` package (test-only oracle) on the same model and input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from radview.io import load_frame
from radview.models import arch as archmod
from radview.models import registry
from radview.models.cam import grad_cam
from radview.models.preprocess import gray_image, prepare_gray

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

ORACLE = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM}


@pytest.fixture(scope="module")
def region():
    return registry.load_model("region", "cpu")


def real224(radiographs, cls: str):
    """A real scan at the model's input size (so both CAMs live on one grid): the NEMA CR chest
    (chest) and pydicom's abdominal CT slice (abd), both shipped by dependencies: no ../shared."""
    return load_frame(radiographs.chest224 if cls == "chest" else radiographs.abd224)


@pytest.fixture
def chest224(radiographs):
    return real224(radiographs, "chest")


def oracle_cam(module, layer, x, idx, method):
    with ORACLE[method](model=module, target_layers=[layer]) as cam:
        return cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(idx)])[0]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam"])
@pytest.mark.parametrize("target", ["chest", "abd"])  # on an image of that class
def test_matches_grad_cam_package_on_region_model(region, radiographs, method, target):
    frame = real224(radiographs, target)  # the class the image shows: positive evidence exists
    ours = grad_cam(region, frame, target=target, method=method)
    assert ours.data.shape == frame.shape and ours.data.dtype == np.float32
    assert ours.data.min() >= 0 and ours.data.max() <= 1 and ours.data.max() > 0.99
    assert ours.layer == "_head_act" and ours.target == target and ours.method == method
    x = torch.from_numpy(prepare_gray(gray_image(frame), region.manifest.input))[None]
    theirs = oracle_cam(region.module, region.module._head_act, x, region.classes.index(target), method)
    r = np.corrcoef(ours.data.ravel(), theirs.ravel())[0, 1]
    assert r >= 0.99, r


def test_binary_head_and_other_layer_match(chest224):
    torch.manual_seed(0)
    net = archmod.build("resnet18", 1, "binary").eval()
    from radview.models.manifest import InputSpec, Manifest
    from radview.models.registry import LoadedModel, ModelInfo

    m = Manifest("bin", "1", "binary", ("normal", "abnormal"), "resnet18", input=InputSpec(size=(224, 224)))
    for p in net.parameters():
        p.requires_grad_(False)
    model = LoadedModel(ModelInfo("bin", "user", "", True, "installed", m), m, net, torch.device("cpu"))
    x = torch.from_numpy(prepare_gray(gray_image(chest224), m.input))[None]
    for layer in ("layer4", "layer3"):
        ours = grad_cam(model, chest224, layer=layer)
        assert ours.target == "abnormal"
        theirs = oracle_cam(net, archmod.get_module(net, layer), x, 0, "gradcam")
        assert np.corrcoef(ours.data.ravel(), theirs.ravel())[0, 1] >= 0.99


def test_hooks_are_removed_and_image_coordinates(region, radiographs):
    frame = load_frame(radiographs.chest_dicom)
    layer = region.module._head_act
    cam = grad_cam(region, frame)
    assert cam.data.shape == frame.shape == (1955, 1841)
    assert cam.target == "chest"
    assert not layer._forward_hooks and not layer._backward_hooks
    assert not any(m._forward_hooks for m in region.module.modules())
    with pytest.raises(registry.ModelError, match="no layer 'nope'"):
        grad_cam(region, frame, layer="nope")
    assert not any(m._forward_hooks for m in region.module.modules())
    with pytest.raises(ValueError, match="unknown CAM method"):
        grad_cam(region, frame, method="scorecam")
    with pytest.raises(registry.ModelError, match="not a class"):
        grad_cam(region, frame, target="knee")
