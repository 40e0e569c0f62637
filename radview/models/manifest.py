"""Model manifests: what a model folder says about itself (no torch here).

A model is a folder holding `manifest.json`, a weights file and a `MODEL_CARD.md`:

    {
      "format": 1,
      "name": "region", "version": "1.0.0",
      "task": "binary" | "multiclass" | "detection",
      "classes": ["abd", "chest"],              # binary: [negative, positive]
      "arch": "efficientnet_lite0",             # see radview.models.arch.ARCHS
      "arch_kwargs": {},
      "input": {"size": [224, 224], "channels": 3, "mean": [...], "std": [...],
                "gray_to_rgb": "replicate", "resize": "squash"},
      "weights": {"file": "weights.pt", "sha256": "...", "format": "state_dict" | "torchscript",
                  "dtype": "float16"},          # sha256 null: not known until imported
      "cam_layer": "_head_act",                 # a module path; null = the arch default
      "threshold": 0.5,                         # binary/detection decision threshold
      "domain": {"modalities": ["CR", "DX"], "body_parts": ["CHEST"], "views": ["PA", "AP"],
                 "gate_model": "self" | "<model name>" | null, "gate_classes": ["chest"]},
      "gate": {"threshold": 0.6, ...},          # feature gate (class means live in the weights)
      "metrics": {...},                         # written by the training script, never by hand
      "card": "MODEL_CARD.md", "description": "...", "training": {...}, "license": "...",
      "box_label": "opacity",                   # detection: label of predicted boxes
      "label_space": "mura" | {"name": ..., "map": {...}}   # what it predicts (radview.spaces)
    }

`load_manifest(folder_or_file) -> Manifest` validates and raises `ManifestError` (its str names the
file and the reason). `Manifest.to_dict()` / `write_manifest()` round-trip it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
TASKS = ("binary", "multiclass", "detection")
WEIGHT_FORMATS = ("state_dict", "torchscript")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ManifestError(Exception):
    """A manifest could not be read or is invalid. str(err) is '<path>: <reason>'."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class InputSpec:
    """How a gray float image in [0,1] becomes the model's input tensor.

    size: (height, width) after resizing; resize: 'squash' (stretch to size, fastai's
    ResizeMethod.Squash); channels: 3 (gray replicated) or 1; mean/std per channel, applied after
    the gray->channels step (identity for detectors, which normalise inside)."""

    size: tuple[int, int] = (224, 224)
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    gray_to_rgb: str = "replicate"
    resize: str = "squash"

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "channels": self.channels, "mean": list(self.mean),
                "std": list(self.std), "gray_to_rgb": self.gray_to_rgb, "resize": self.resize}


@dataclass(frozen=True)
class WeightsSpec:
    file: str = "weights.pt"
    sha256: str | None = None
    format: str = "state_dict"
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "format": self.format, "dtype": self.dtype}


@dataclass(frozen=True)
class DomainSpec:
    """What inputs the model is meant for. Empty tuples mean 'not checked'.

    gate_model: 'self' (the model's own feature gate), another model's name (its gate and
    its predicted class must be one of gate_classes), or None (metadata checks only)."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    gate_model: str | None = None
    gate_classes: tuple[str, ...] = ()
    description: str = ""
    views: tuple[str, ...] = ()  # DICOM ViewPosition codes (PA, AP, LL, ...); empty = any

    def to_dict(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), "body_parts": list(self.body_parts),
                "views": list(self.views), "gate_model": self.gate_model,
                "gate_classes": list(self.gate_classes), "description": self.description}


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    task: str
    classes: tuple[str, ...]
    arch: str
    input: InputSpec = InputSpec()
    weights: WeightsSpec = WeightsSpec()
    arch_kwargs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    cam_layer: str | None = None
    threshold: float = 0.5
    domain: DomainSpec = DomainSpec()
    gate: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    metrics: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    card: str = "MODEL_CARD.md"
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    license: str = ""
    box_label: str = ""  # detection: the label of predicted boxes (default: the last class)
    #: the label space it predicts: {"name": ..., "map": {...}, ...} (radview.spaces.model_space)
    label_space: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    folder: str = ""  # where it was read from (not written)

    @property
    def num_outputs(self) -> int:
        """Width of the classifier head: 1 logit for binary, one per class for multiclass,
        classes incl. background for detection."""
        if self.task == "binary":
            return 1
        return len(self.classes)

    @property
    def weights_path(self) -> Path:
        return Path(self.folder) / self.weights.file

    @property
    def card_path(self) -> Path:
        return Path(self.folder) / self.card

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 1, "name": self.name, "version": self.version, "task": self.task,
            "classes": list(self.classes), "arch": self.arch, "arch_kwargs": dict(self.arch_kwargs),
            "input": self.input.to_dict(), "weights": self.weights.to_dict(),
            "cam_layer": self.cam_layer, "threshold": self.threshold,
            "domain": self.domain.to_dict(), "gate": dict(self.gate), "metrics": dict(self.metrics),
            "card": self.card, "description": self.description, "training": dict(self.training),
            "license": self.license, "box_label": self.box_label,
            **({"label_space": dict(self.label_space)} if self.label_space else {}),
        }

    def with_changes(self, **kw: Any) -> "Manifest":
        return replace(self, **kw)


# --------------------------------------------------------------------------- parsing


def _req(d: dict, key: str, path: str | os.PathLike) -> Any:
    if key not in d or d[key] in (None, ""):
        raise ManifestError(path, f"missing '{key}'")
    return d[key]


def _floats(v: Any, n: int | None, what: str, path: str | os.PathLike) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise ManifestError(path, f"'{what}' must be a list of numbers") from None
    if n is not None and len(out) != n:
        raise ManifestError(path, f"'{what}' needs {n} values, has {len(out)}")
    return out


def manifest_from_dict(d: dict[str, Any], path: str | os.PathLike = "<manifest>", folder: str = "") -> Manifest:
    """Validate a manifest mapping; raises ManifestError naming `path` and the reason."""
    if not isinstance(d, dict):
        raise ManifestError(path, "not a JSON object")
    fmt = d.get("format", 1)
    if fmt != 1:
        raise ManifestError(path, f"unsupported manifest format {fmt!r} (this radview reads format 1)")
    name = str(_req(d, "name", path))
    if "/" in name or "\\" in name or name.startswith("."):
        raise ManifestError(path, f"invalid model name {name!r}")
    task = str(_req(d, "task", path))
    if task not in TASKS:
        raise ManifestError(path, f"task {task!r} is not one of {', '.join(TASKS)}")
    classes = tuple(str(c) for c in _req(d, "classes", path))
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ManifestError(path, "'classes' needs at least two distinct names")
    arch = str(_req(d, "arch", path))
    inp = d.get("input") or {}
    size = inp.get("size", [224, 224])
    if isinstance(size, int):
        size = [size, size]
    if len(size) != 2 or min(int(s) for s in size) < 8:
        raise ManifestError(path, f"input size {size!r} must be [height, width] >= 8")
    channels = int(inp.get("channels", 3))
    if channels not in (1, 3):
        raise ManifestError(path, f"input channels {channels} must be 1 or 3")
    mean = _floats(inp.get("mean", IMAGENET_MEAN if channels == 3 else [0.5]), channels, "input.mean", path)
    std = _floats(inp.get("std", IMAGENET_STD if channels == 3 else [0.25]), channels, "input.std", path)
    if min(std) <= 0:
        raise ManifestError(path, "input.std must be > 0")
    resize = str(inp.get("resize", "squash"))
    if resize != "squash":
        raise ManifestError(path, f"input.resize {resize!r} is not supported (use 'squash')")
    w = d.get("weights") or {}
    wfmt = str(w.get("format", "state_dict"))
    if wfmt not in WEIGHT_FORMATS:
        raise ManifestError(path, f"weights.format {wfmt!r} is not one of {', '.join(WEIGHT_FORMATS)}")
    sha = w.get("sha256")
    if sha is not None:
        sha = str(sha).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ManifestError(path, "weights.sha256 must be 64 hex digits (or null)")
    wfile = str(w.get("file", "weights.pt"))
    if os.path.isabs(wfile) or ".." in Path(wfile).parts:
        raise ManifestError(path, f"weights.file {wfile!r} must be a name inside the model folder")
    card = str(d.get("card", "MODEL_CARD.md"))
    if not card or os.path.isabs(card) or ".." in Path(card).parts or Path(card).drive:
        raise ManifestError(path, f"card {card!r} must be a file name inside the model folder")
    dom = d.get("domain") or {}
    try:
        threshold = float(d.get("threshold", 0.5))
    except (TypeError, ValueError):
        raise ManifestError(path, "threshold must be a number") from None
    return Manifest(
        name=name,
        version=str(d.get("version", "0")),
        task=task,
        classes=classes,
        arch=arch,
        arch_kwargs=dict(d.get("arch_kwargs") or {}),
        input=InputSpec(size=(int(size[0]), int(size[1])), channels=channels, mean=mean, std=std,
                        gray_to_rgb=str(inp.get("gray_to_rgb", "replicate")), resize=resize),
        weights=WeightsSpec(file=wfile, sha256=sha, format=wfmt, dtype=str(w.get("dtype", "float32"))),
        cam_layer=d.get("cam_layer") or None,
        threshold=threshold,
        domain=DomainSpec(
            modalities=tuple(str(m).upper() for m in dom.get("modalities") or ()),
            body_parts=tuple(str(b).upper() for b in dom.get("body_parts") or ()),
            gate_model=dom.get("gate_model") or None,
            gate_classes=tuple(str(c) for c in dom.get("gate_classes") or ()),
            description=str(dom.get("description", "")),
            views=tuple(str(v).upper() for v in dom.get("views") or ()),
        ),
        gate=dict(d.get("gate") or {}),
        metrics=dict(d.get("metrics") or {}),
        card=card,
        description=str(d.get("description", "")),
        training=dict(d.get("training") or {}),
        license=str(d.get("license", "")),
        box_label=str(d.get("box_label", "")),
        label_space=_label_space(d.get("label_space"), path),
        folder=folder,
    )


def _label_space(v: Any, path: str | os.PathLike) -> dict[str, Any]:
    """'label_space': a space name or an object (radview.spaces documents the fields)."""
    if v is None or v == "":
        return {}
    if isinstance(v, str):
        return {"name": v}
    if not isinstance(v, dict) or not str(v.get("name") or ""):
        raise ManifestError(path, "'label_space' must be a space name or an object with a 'name'")
    if not isinstance(v.get("map") or {}, dict):
        raise ManifestError(path, "'label_space.map' must be an object")
    return dict(v)


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read `<folder>/manifest.json` (or a manifest file) and validate it."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(p, "no manifest file") from None
    except OSError as exc:
        raise ManifestError(p, f"cannot read: {exc.strerror or exc}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(p, f"invalid JSON: {exc}") from None
    return manifest_from_dict(d, p, folder=str(p.parent))


def write_manifest(manifest: Manifest, folder: str | os.PathLike) -> Path:
    """Write manifest.json into folder (created); returns its path."""
    f = Path(folder)
    f.mkdir(parents=True, exist_ok=True)
    out = f / MANIFEST_NAME
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
