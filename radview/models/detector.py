"""EfficientNet-Lite0 + FPN one-stage detectors (torchvision RetinaNet or FCOS).

`build_lite0_detector(kind, num_classes, size=512, ...)` -> a torchvision detector whose backbone
is the Lite0 stem and blocks (`backbone.body`, ImageNet-loadable by name) and an FPN over the
stride-16 and stride-32 block outputs plus P6/P7 (`backbone.fpn`). Inputs are float images in
[0, 1] (normalisation inside, ImageNet mean/std); boxes come back in input pixels.

Training on cached body features (the recipe freezes the body): `body_losses(model, feats,
targets)` and `body_detect(model, feats, size)` run FPN + head + anchors + loss / post-processing
exactly as the detector's own forward does, from precomputed `backbone.body` outputs, so the
training loop never recomputes the frozen backbone.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from radview.models.features import LITE0_CHANNELS, Lite0Body

KINDS = ("retinanet", "fcos")
ARCH_OF_KIND = {"retinanet": "retinanet_lite0_fpn", "fcos": "fcos_lite0_fpn"}


class Lite0FPN(nn.Module):
    def __init__(self, levels=("c4", "c5"), channels: int = 64):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7

        self.body = Lite0Body(levels)
        self.fpn = FeaturePyramidNetwork([LITE0_CHANNELS[k] for k in levels], channels,
                                         extra_blocks=LastLevelP6P7(channels, channels))
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(self.body(x))


def _slim(head: nn.Module, channels: int, convs: int) -> None:
    """Replace a torchvision head branch's 4-conv tower by `convs` conv+GroupNorm+ReLU layers."""
    layers: list[nn.Module] = []
    for _ in range(convs):  # torchvision's v2 layout (conv.i.0 / conv.i.1): its v1->v2 key renaming leaves it alone
        conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.normal_(conv.weight, std=0.01)
        nn.init.constant_(conv.bias, 0)
        layers.append(nn.Sequential(conv, nn.GroupNorm(min(32, channels // 2), channels), nn.ReLU(inplace=True)))
    head.conv = nn.Sequential(*layers)


def build_lite0_detector(kind: str = "retinanet", num_classes: int = 2, size: int = 512, fpn_channels: int = 64,
                         head_convs: int = 2, anchor_sizes=(32, 64, 128, 256), aspect_ratios=(0.7, 1.2, 2.0),
                         score_thresh: float = 0.05, nms_thresh: float = 0.4, detections_per_img: int = 8,
                         levels=("c4", "c5"), **kw: Any) -> nn.Module:
    if kind not in KINDS:
        raise ValueError(f"unknown detector kind {kind!r} (known: {', '.join(KINDS)})")
    backbone = Lite0FPN(tuple(levels), fpn_channels)
    common = dict(min_size=size, max_size=size, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                  score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img)
    common.update(kw)
    n_levels = len(levels) + 2
    if kind == "retinanet":
        from torchvision.models.detection import RetinaNet
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        sizes = tuple((s, int(s * 1.26), int(s * 1.59)) for s in anchor_sizes[:n_levels])
        anchors = AnchorGenerator(sizes, (tuple(aspect_ratios),) * len(sizes))
        model = RetinaNet(backbone, num_classes, anchor_generator=anchors, **common)
        _slim(model.head.classification_head, fpn_channels, head_convs)
        _slim(model.head.regression_head, fpn_channels, head_convs)
    else:
        from torchvision.models.detection import FCOS
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        anchors = AnchorGenerator(tuple((s,) for s in anchor_sizes[:n_levels]), ((1.0,),) * n_levels)
        model = FCOS(backbone, num_classes, anchor_generator=anchors, **common)
        _slim(model.head.classification_head, fpn_channels, head_convs)
        _slim(model.head.regression_head, fpn_channels, head_convs)
    return model


def _image_list(n: int, size: int, like: torch.Tensor):
    from torchvision.models.detection.image_list import ImageList

    t = torch.zeros(1, 1, 1, 1, dtype=like.dtype, device=like.device).expand(n, 3, size, size)
    return ImageList(t, [(size, size)] * n)


def _head(model: nn.Module, feats: "OrderedDict[str, torch.Tensor]"):
    features = list(model.backbone.fpn(feats).values())
    return features, model.head(features)


def body_losses(model: nn.Module, feats: "OrderedDict[str, torch.Tensor]", targets: list[dict],
                size: int) -> dict[str, torch.Tensor]:
    """The detector's training losses from `backbone.body` outputs (boxes in `size` pixels)."""
    features, head_outputs = _head(model, feats)
    n = next(iter(feats.values())).shape[0]
    anchors = model.anchor_generator(_image_list(n, size, features[0]), features)
    if type(model).__name__ == "FCOS":
        num = [x.size(2) * x.size(3) for x in features]
        return model.compute_loss(targets, head_outputs, anchors, num)
    return model.compute_loss(targets, head_outputs, anchors)


def body_detect(model: nn.Module, feats: "OrderedDict[str, torch.Tensor]", size: int) -> list[dict]:
    """Detections (boxes in `size` pixels, scores, labels) from `backbone.body` outputs."""
    features, head_outputs = _head(model, feats)
    n = next(iter(feats.values())).shape[0]
    il = _image_list(n, size, features[0])
    anchors = model.anchor_generator(il, features)
    num = [x.size(2) * x.size(3) for x in features]
    a = head_outputs["cls_logits"].size(1) // sum(num)
    num = [hw * a for hw in num]
    split = {k: list(v.split(num, dim=1)) for k, v in head_outputs.items()}
    split_anchors = [list(x.split(num)) for x in anchors]
    return model.postprocess_detections(split, split_anchors, il.image_sizes)
