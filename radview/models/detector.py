"""EfficientNet-Lite0 + FPN one-stage detectors (torchvision RetinaNet or FCOS).

`build_lite0_detector(kind, num_classes, size=512, ...)` -> a torchvision detector whose backbone
is the Lite0 stem and blocks (`backbone.body`, ImageNet-loadable by name) and an FPN over the
stride-16 and stride-32 block outputs plus P6/P7 (`backbone.fpn`). Inputs are float images in
[0, 1] (normalisation inside, ImageNet mean/std); boxes come back in input pixels.

Training on cached body features (the recipe freezes the body): `body_losses(model, feats,
targets)` and `body_detect(model, feats, size)` run FPN + head + anchors + loss / post-processing
exactly as the detector's own forward does, from precomputed `backbone.body` outputs, so the
training loop never recomputes the frozen backbone. `top_forward(body, c4)` runs the body's
stride-32 stage (blocks 11-15) on cached stride-16 outputs, so those blocks can be fine-tuned
on cached features too.

Test-time augmentation: `tta="hflip"` (a manifest arch_kwarg) makes the detector, in eval mode,
run every image and its mirror image in one batch and fuse the two answers with `fuse_flip`
(weighted box fusion of two views: boxes of both views matched at IoU >= 0.55 are averaged
weighted by score; a fused box scores the mean of its two views' scores, a box seen in one view
only half its score). Training and the state dict are the plain detector's.
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


TTAS = ("", "hflip")
FUSE_IOU = 0.55


def fuse_flip(boxes_a: torch.Tensor, scores_a: torch.Tensor, boxes_b: torch.Tensor, scores_b: torch.Tensor,
              iou: float = FUSE_IOU, top: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted box fusion of two views' detections (xyxy boxes in the same pixels): boxes are
    taken by descending score, each joins the first cluster whose fused box it overlaps at >= iou
    and that has no box of its view yet; a cluster's box is the score-weighted mean of its boxes,
    its score the sum of its scores / 2 (a box seen in one view only keeps half its score)."""
    from torchvision.ops import box_iou

    boxes = torch.cat([boxes_a, boxes_b]).float()
    scores = torch.cat([scores_a, scores_b]).float()
    view = torch.cat([torch.zeros(len(boxes_a), dtype=torch.long), torch.ones(len(boxes_b), dtype=torch.long)])
    if not len(boxes):
        return boxes.reshape(0, 4), scores
    order = torch.argsort(scores, descending=True)
    fused: list[torch.Tensor] = []
    members: list[list[int]] = []
    for i in order.tolist():
        j = -1
        if fused:
            ious = box_iou(boxes[i:i + 1], torch.stack(fused))[0]
            for c in torch.argsort(ious, descending=True).tolist():
                if ious[c] < iou:
                    break
                if all(int(view[m]) != int(view[i]) for m in members[c]):
                    j = c
                    break
        if j < 0:
            members.append([i])
            fused.append(boxes[i].clone())
        else:
            members[j].append(i)
            w = scores[members[j]]
            fused[j] = (boxes[members[j]] * w[:, None]).sum(0) / w.sum()
    out_s = torch.stack([scores[m].sum() / 2.0 for m in members])
    out_b = torch.stack(fused)
    keep = torch.argsort(out_s, descending=True)[:top]
    return out_b[keep], out_s[keep]


def _mirror(boxes: torch.Tensor, width: float) -> torch.Tensor:
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)


class _FlipTTA:
    """Eval-mode forward on each image and its mirror image (one batch), fused by `fuse_flip`."""

    def forward(self, images, targets=None):  # noqa: D401 - torchvision's detector forward
        if self.training or targets is not None:
            return super().forward(images, targets)
        images = list(images)
        n = len(images)
        outs = super().forward(images + [im.flip(-1) for im in images])
        res = []
        for i in range(n):
            a, b = outs[i], outs[n + i]
            w = float(images[i].shape[-1])
            bx, sc = fuse_flip(a["boxes"], a["scores"], _mirror(b["boxes"], w), b["scores"],
                               top=self.detections_per_img)
            res.append({"boxes": bx, "scores": sc, "labels": torch.ones(len(sc), dtype=torch.int64, device=bx.device)})
        return res


def build_lite0_detector(kind: str = "retinanet", num_classes: int = 2, size: int = 512, fpn_channels: int = 64,
                         head_convs: int = 2, anchor_sizes=(32, 64, 128, 256), aspect_ratios=(0.7, 1.2, 2.0),
                         score_thresh: float = 0.05, nms_thresh: float = 0.4, detections_per_img: int = 8,
                         levels=("c4", "c5"), tta: str = "", **kw: Any) -> nn.Module:
    if kind not in KINDS:
        raise ValueError(f"unknown detector kind {kind!r} (known: {', '.join(KINDS)})")
    if tta not in TTAS:
        raise ValueError(f"unknown test-time augmentation {tta!r} (known: {', '.join(t for t in TTAS if t)})")
    backbone = Lite0FPN(tuple(levels), fpn_channels)
    common = dict(min_size=size, max_size=size, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                  score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img)
    common.update(kw)
    n_levels = len(levels) + 2
    if kind == "retinanet":
        from torchvision.models.detection import RetinaNet
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        if tta == "hflip":
            RetinaNet = type("RetinaNetFlipTTA", (_FlipTTA, RetinaNet), {})  # noqa: N806

        sizes = tuple((s, int(s * 1.26), int(s * 1.59)) for s in anchor_sizes[:n_levels])
        anchors = AnchorGenerator(sizes, (tuple(aspect_ratios),) * len(sizes))
        model = RetinaNet(backbone, num_classes, anchor_generator=anchors, **common)
        _slim(model.head.classification_head, fpn_channels, head_convs)
        _slim(model.head.regression_head, fpn_channels, head_convs)
    else:
        from torchvision.models.detection import FCOS
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        if tta == "hflip":
            FCOS = type("FCOSFlipTTA", (_FlipTTA, FCOS), {})  # noqa: N806

        anchors = AnchorGenerator(tuple((s,) for s in anchor_sizes[:n_levels]), ((1.0,),) * n_levels)
        model = FCOS(backbone, num_classes, anchor_generator=anchors, **common)
        _slim(model.head.classification_head, fpn_channels, head_convs)
        _slim(model.head.regression_head, fpn_channels, head_convs)
    return model


def _is_fcos(model: nn.Module) -> bool:
    from torchvision.models.detection import FCOS

    return isinstance(model, FCOS)


C4_BLOCK = 10  # the Lite0 block whose output is 'c4' (radview.models.features.LITE0_LEVELS)


def top_forward(body: nn.Module, c4: torch.Tensor) -> torch.Tensor:
    """The body's blocks after c4 (the stride-32 stage, 11-15) on c4 outputs -> c5, as in the
    body's own forward (no drop-connect in eval mode; in train mode the blocks' own rate)."""
    x = c4
    rate0 = body._global_params.drop_connect_rate
    n = len(body._blocks)  # drop-connect rates as radview.models.features.run_blocks
    for idx in range(C4_BLOCK + 1, len(body._blocks)):
        rate = rate0 * float(idx) / n if rate0 else rate0
        x = body._blocks[idx](x, drop_connect_rate=rate)
    return x


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
    if _is_fcos(model):
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
