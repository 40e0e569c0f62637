"""Grad-CAM family: where did the model look?

`grad_cam(model, ref_or_frame, target=None, layer=None, method=None) -> CamMap`

- method: 'gradcam' (Selvaraju et al.), 'gradcam++' (Chattopadhyay et al.) or 'hirescam'
  (Draelos & Carin); checked against the `grad-cam` package (tests/test_models_cam.py).
  None: 'gradcam' for classifiers, 'hirescam' for detectors (a box score depends on a small
  region of the map; averaging its gradients over the whole map, as Grad-CAM does, often
  cancels out, while HiResCAM's element-wise product keeps the box region).
- layer: a module path of the model (default: the manifest's cam_layer, else the architecture's
  last conv block). A layer whose output is a dict (detector bodies) uses its last map.
- target: None -> binary: the positive logit; multiclass: the predicted class; detection: the
  score of the best box. A class name or index picks a class; for detection an int picks a box.
- Output: float32 in [0, 1], same HxW as the frame (image coordinates), never burned into pixels.

Hooks live only inside a `with _LayerTap(...)` block and are removed after every use, even on
error. The tap cuts the graph at the layer: the activation is re-entered as a leaf tensor that
requires grad, and the parameters need no gradients, so the backward pass runs through the
head only (cost ~ one forward). One model-executor thread should run CAM, inference and
training, never two at once on one model.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from radview.models import arch as archmod
from radview.models.preprocess import gray_image, prepare_gray
from radview.models.registry import LoadedModel, ModelError
from radview.types import CamMap, Frame, ImageRef

METHODS = ("gradcam", "gradcam++", "hirescam")


class _LayerTap:
    """Forward hook that replaces a layer's output by a leaf copy requiring grad."""

    def __init__(self, layer: torch.nn.Module):
        self.layer = layer
        self.act: torch.Tensor | None = None
        self._handle = None

    def _hook(self, _mod, _inp, out):
        if isinstance(out, dict):
            key = list(out.keys())[-1]
            leaf = out[key].detach().requires_grad_(True)
            self.act = leaf
            new = OrderedDict(out)
            new[key] = leaf.clone()
            return new
        if not torch.is_tensor(out):
            raise ModelError("-", f"layer output is a {type(out).__name__}, not a tensor")
        self.act = out.detach().requires_grad_(True)
        return self.act.clone()  # a non-leaf: later in-place ops (densenet's relu) stay legal

    def __enter__(self) -> "_LayerTap":
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def cam_from(acts: torch.Tensor, grads: torch.Tensor, method: str) -> torch.Tensor:
    """(1,C,h,w) activations and gradients -> (h,w) non-negative map (not normalised)."""
    if method == "gradcam":
        w = grads.mean(dim=(2, 3), keepdim=True)
        cam = (w * acts).sum(1)
    elif method == "gradcam++":
        g2 = grads.pow(2)
        g3 = g2 * grads
        sum_a = acts.sum(dim=(2, 3), keepdim=True)
        aij = g2 / (2 * g2 + sum_a * g3 + 1e-7)
        aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
        w = (F.relu(grads) * aij).sum(dim=(2, 3), keepdim=True)
        cam = (w * acts).sum(1)
    elif method == "hirescam":
        cam = (grads * acts).sum(1)
    else:
        raise ValueError(f"unknown CAM method {method!r} (one of {', '.join(METHODS)})")
    return F.relu(cam)[0]


def _normalize_resize(cam: torch.Tensor, hw: tuple[int, int], valid: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    h, w = cam.shape
    vh, vw = max(1, round(h * valid[0])), max(1, round(w * valid[1]))
    cam = cam[:vh, :vw]
    cam = cam - cam.min()
    mx = float(cam.max())
    cam = cam / (mx + 1e-7) if mx > 0 else cam * 0
    up = F.interpolate(cam[None, None].float(), size=hw, mode="bilinear", align_corners=False)[0, 0]
    return up.clamp_(0, 1).cpu().numpy().astype(np.float32)


def _class_index(model: LoadedModel, target, probs: torch.Tensor | None) -> int:
    classes = model.classes
    if target is None:
        if model.task == "binary":
            return 1
        return int(probs.argmax()) if probs is not None else 0
    if isinstance(target, str):
        if target not in classes:
            raise ModelError(model.name, f"CAM target {target!r} is not a class ({', '.join(classes)})")
        return classes.index(target)
    idx = int(target)
    if not 0 <= idx < len(classes):
        raise ModelError(model.name, f"CAM target index {idx} out of range")
    return idx


def _detector_valid(model: LoadedModel, in_hw: tuple[int, int]) -> tuple[float, float]:
    """Fraction of a detector's (padded) feature map covering the image."""
    t = getattr(model.module, "transform", None)
    if t is None:
        return 1.0, 1.0
    h, w = in_hw
    scale = min(float(t.min_size[-1]) / min(h, w), float(t.max_size) / max(h, w))
    rh, rw = int(h * scale), int(w * scale)
    d = int(getattr(t, "size_divisible", 32))
    ph, pw = -(-rh // d) * d, -(-rw // d) * d
    return rh / ph, rw / pw


def grad_cam(model: LoadedModel, ref_or_frame: ImageRef | Frame | str, target=None, layer: str | None = None,
             method: str | None = None) -> CamMap:
    """See the module doc."""
    if method is None:
        method = "hirescam" if model.task == "detection" else "gradcam"
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r} (one of {', '.join(METHODS)})")
    if model.scripted:
        raise ModelError(model.name, "Grad-CAM needs an eager model; TorchScript modules take no hooks")
    if isinstance(ref_or_frame, Frame):
        frame = ref_or_frame
    else:
        from radview.io import load_frame

        ref = ref_or_frame if isinstance(ref_or_frame, ImageRef) else ImageRef(str(ref_or_frame))
        frame = load_frame(ref.path, ref.frame)
    m = model.manifest
    layer_name = layer or m.cam_layer or archmod.default_cam_layer(m.arch)
    try:
        module = archmod.get_module(model.module, layer_name)
    except archmod.ArchError as exc:
        raise ModelError(model.name, str(exc)) from None
    gray = gray_image(frame)
    x = torch.from_numpy(prepare_gray(gray, m.input))[None].to(model.device)
    if model.extra.get("channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.enable_grad(), _LayerTap(module) as tap:
        if m.task == "detection":
            out = model.module([x[0]])[0]
            scores = out["scores"]
            k = 0 if target is None else int(target)
            if tap.act is None:
                raise ModelError(model.name, f"layer {layer_name} did not run")
            if len(scores) <= k:
                return CamMap(frame.ref, np.zeros(gray.shape, np.float32), "no box", layer_name, method)
            score = scores[k]
            label = f"box {k} ({float(score.detach()):.2f})"
            valid = _detector_valid(model, tuple(m.input.size))
        else:
            logits = model.module(x)
            if tap.act is None:
                raise ModelError(model.name, f"layer {layer_name} did not run")
            flat = logits.reshape(1, -1)
            if m.task == "binary":
                idx = _class_index(model, target, None)
                score = flat[0, 0] if idx == 1 else -flat[0, 0]
            else:
                idx = _class_index(model, target, flat[0].detach())
                score = flat[0, idx]
            label = m.classes[idx]
            valid = (1.0, 1.0)
        if not score.requires_grad:
            raise ModelError(model.name, f"the output does not depend on layer {layer_name}")
        (grads,) = torch.autograd.grad(score, tap.act)
        acts = tap.act.detach()
    cam = cam_from(acts, grads.detach(), method)
    return CamMap(frame.ref, _normalize_resize(cam, gray.shape, valid), label, layer_name, method)
