"""The model side of the app. A `Backend` lives on the model-executor thread ONLY: it imports
radview.models (and so torch) when it is created there, never on the GUI thread.

It wraps the models engineer's core: registry.list_models / load_model, engine.iter_predict /
aggregate_study, cam.grad_cam, preprocess (for 'what the model saw'), and the store's prediction
cache (a reopened folder shows its answers without recomputing). No Qt here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from radview.types import ImageRef, Prediction


@dataclass(frozen=True)
class ModelEntry:
    """What the model list shows."""

    name: str
    available: bool
    reason: str
    task: str
    summary: str
    bundled: bool


@dataclass(frozen=True)
class LoadedInfo:
    """The loaded model as the GUI needs it."""

    name: str
    version: str
    task: str
    classes: tuple[str, ...]
    device: str
    blocks: tuple[str, ...]
    default_block: str | None
    cam: bool
    summary: str
    threshold: float = 0.5


def _summary(info) -> str:
    m = info.manifest
    if m is None:
        return info.status
    classes = "/".join(m.classes)
    return f"{m.task} · {classes} · {m.arch} · v{m.version}"


def conv_blocks(module, default: str | None, limit: int = 10) -> tuple[str, ...]:
    """Candidate Grad-CAM layers: the stages of the network that hold convolutions (children of
    the top-level containers), the last `limit` of them, plus the manifest's default."""
    import torch.nn as nn

    def has_conv(m) -> bool:
        return any(isinstance(x, nn.Conv2d) for x in m.modules())

    names: list[str] = []
    for name, child in module.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            names += [f"{name}.{i}" for i, sub in enumerate(child) if has_conv(sub)]
            if has_conv(child):
                names.append(name)
        elif has_conv(child) or (default and name == default):
            names.append(name)
    names = names[-limit:]
    if default and default not in names:
        names.append(default)
    return tuple(names)


class Backend:
    """Everything torch. Create it on the model-executor thread."""

    def __init__(self, batch_size: int = 4):
        from radview.models import engine, registry

        self.registry, self.engine = registry, engine
        self.batch_size = batch_size
        self.model = None
        self.info: LoadedInfo | None = None
        self.store = self._open_store()
        self.stats = {"cached": 0, "computed": 0}
        try:
            from radview.models import overlay  # noqa: F401 - so the GUI may use its pure helpers
        except ImportError:
            pass

    @staticmethod
    def _open_store():
        try:
            from radview.store import LabelStore
        except ImportError:
            return None
        try:
            return LabelStore()
        except Exception:  # noqa: BLE001 - no cache is not an error: the app still predicts
            return None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    # ------------------------------------------------------------------ models
    def list_models(self) -> list[ModelEntry]:
        out = []
        for info in self.registry.list_models():
            out.append(ModelEntry(name=info.name, available=bool(info.installed), reason=info.status,
                                  task=info.task, summary=_summary(info), bundled=info.source == "bundled"))
        return out

    def load(self, name: str, device: str = "auto") -> LoadedInfo:
        model = self.registry.load_model(name, None if device in ("", "auto") else device)
        self.model = model
        m = model.manifest
        from radview.models.arch import default_cam_layer

        default = m.cam_layer or default_cam_layer(m.arch) or None
        try:
            blocks = conv_blocks(model.module, default) if not model.scripted else ((default,) if default else ())
        except Exception:  # noqa: BLE001
            blocks = (default,) if default else ()
        self.info = LoadedInfo(name=m.name, version=m.version, task=m.task, classes=tuple(m.classes),
                               device=str(model.device), blocks=blocks, default_block=default or (blocks[-1] if blocks else None),
                               cam=bool(blocks) and self._cam_available(), summary=_summary(model.info),
                               threshold=float(m.threshold))
        return self.info

    @staticmethod
    def _cam_available() -> bool:
        try:
            from radview.models import cam  # noqa: F401
        except ImportError:
            return False
        return True

    def import_weights(self, name: str, path: str) -> list[ModelEntry]:
        self.registry.import_model(path, name=name, force=True)
        return self.list_models()

    # ------------------------------------------------------------------ inference
    def iter_predict(self, refs, cancelled: Callable[[], bool] = lambda: False) -> Iterator[Prediction]:
        """Predictions for refs in order: from the store's cache when there, else computed
        (and cached). Stops between batches when cancelled() turns true."""
        model = self.model
        if model is None:
            return
        refs = list(refs)
        cached: dict[str, Prediction] = {}
        if self.store is not None:
            try:
                cached = self.store.get_predictions(model.name, model.version, [r.key for r in refs])
            except Exception:  # noqa: BLE001
                cached = {}
        todo = [r for r in refs if r.key not in cached]
        self.stats["cached"] += len(refs) - len(todo)
        self.stats["computed"] += len(todo)
        fresh: dict[str, Prediction] = {}
        if todo:
            gen = self.engine.iter_predict(todo, model, batch_size=self.batch_size)
            try:
                for pred in gen:
                    fresh[pred.ref.key] = pred
                    if cancelled():
                        return
            finally:
                gen.close()
            if self.store is not None and fresh:
                try:
                    self.store.put_predictions(list(fresh.values()))
                except Exception:  # noqa: BLE001
                    pass
        for r in refs:
            p = cached.get(r.key) or fresh.get(r.key)
            if p is not None:
                yield p

    def aggregate(self, study_key: str, preds):
        threshold = self.model.manifest.threshold if self.model is not None else 0.5
        return self.engine.aggregate_study(study_key, preds, threshold=threshold)

    # ------------------------------------------------------------------ Grad-CAM
    def _frame(self, ref: ImageRef):
        from radview.io import load_frame

        return load_frame(ref.path, ref.frame)

    def cam(self, ref: ImageRef, target: str | None = None, layer: str | None = None):
        from radview.models.cam import grad_cam

        return grad_cam(self.model, self._frame(ref), target=target, layer=layer or None)

    def model_view(self, ref: ImageRef, target: str | None = None, layer: str | None = None):
        """(the exact model input as uint8 gray at input size, its CAM at input size or None)."""
        from radview.models.preprocess import gray_image, resize_gray

        frame = self._frame(ref)
        spec = self.model.manifest.input
        gray = resize_gray(gray_image(frame), tuple(spec.size))
        image = (np.clip(gray, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        cam_map = None
        if self.info is not None and self.info.cam:
            from radview.models.cam import grad_cam

            cm = grad_cam(self.model, frame, target=target, layer=layer or None)
            cam_map = resize_gray(np.asarray(cm.data, np.float32), tuple(spec.size))
        return image, cam_map
