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

from radview import torch_env
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
    threshold: float = 0.5  # the manifest's operating point (the box score slider starts there)


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
    space: str = ""          # the label space the model predicts (radview.spaces.model_space)
    manifest: object = None  # the model's Manifest (review joins only comparable labels)


def _summary(info) -> str:
    m = info.manifest
    if m is None:
        return info.status
    classes = "/".join(m.classes)
    return f"{m.task} · {classes} · {m.arch} · v{m.version}"


class Backend:
    """Everything torch. Create it on the model-executor thread."""

    def __init__(self, batch_size: int = 8):
        from radview.models import engine, registry

        self.registry, self.engine = registry, engine
        self.batch_size = batch_size
        self.model = None
        self.info: LoadedInfo | None = None
        self.device = "auto"
        self.side: dict[str, object] = {}  # other models run beside the primary (gate, detector)
        self.store = self._open_store()
        self.stats = {"cached": 0, "computed": 0}
        self.side_stats: dict[str, dict[str, int]] = {}
        try:
            from radview.models import overlay  # noqa: F401 - so the GUI may use its pure helpers
        except ImportError:
            pass

    @staticmethod
    def _open_store():
        """The process's one store (the window has it open already): the prediction cache."""
        from radview.store import StoreError, open_store

        try:
            return open_store()
        except StoreError:  # no cache is not an error: the app still predicts (the window says why)
            return None

    def close(self) -> None:
        self.store = None  # shared: the app closes it at exit

    # ------------------------------------------------------------------ models
    def list_models(self) -> list[ModelEntry]:
        out = []
        for info in self.registry.list_models():
            out.append(ModelEntry(name=info.name, available=bool(info.installed), reason=info.status,
                                  task=info.task, summary=_summary(info), bundled=info.source == "bundled",
                                  threshold=float(info.manifest.threshold) if info.manifest is not None else 0.5))
        return out

    def load(self, name: str, device: str = "auto") -> LoadedInfo:
        if self.model is not None and self.model.manifest.name == name:
            self.registry.clear_cache()  # a reload (e.g. a retrain promoted a version): from disk
        model = self.registry.load_model(name, None if device in ("", "auto") else device)
        torch_env.release_unused_gpu_pages()  # torch is imported now: no GPU, no CUDA pages kept
        self.model, self.device = model, device
        self.side.clear()
        m = model.manifest
        from radview.models.arch import default_cam_layer

        default = m.cam_layer or default_cam_layer(m.arch) or None
        try:
            from radview.models.cam_blocks import conv_blocks

            blocks = conv_blocks(model.module, default) if not model.scripted else ((default,) if default else ())
        except Exception:  # noqa: BLE001
            blocks = (default,) if default else ()
        self.info = LoadedInfo(name=m.name, version=m.version, task=m.task, classes=tuple(m.classes),
                               device=str(model.device), blocks=blocks, default_block=default or (blocks[-1] if blocks else None),
                               cam=bool(blocks) and self._cam_available(), summary=_summary(model.info),
                               threshold=float(m.threshold), space=self._space_name(m), manifest=m)
        return self.info

    @staticmethod
    def _space_name(manifest) -> str:
        from radview.spaces import model_space

        try:
            return model_space(manifest).name
        except ValueError:
            return ""

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

    def unload(self) -> None:
        """No heatmap model ("(no model)"): side models still run."""
        self.model, self.info = None, None

    # ------------------------------------------------------------------ side models
    def manifest_of(self, name: str):
        """The installed model's manifest (for routing), or None when it is not installed."""
        try:
            info = self.registry.get_model_info(name)
        except self.registry.ModelError:
            return None
        return info.manifest if info.installed else None

    def _model(self, name: str | None):
        """The primary (None or its name), else a side model loaded once on the same device."""
        if name is None or (self.model is not None and self.model.manifest.name == name):
            return self.model
        model = self.side.get(name)
        if model is None:
            device = self.device
            model = self.side[name] = self.registry.load_model(name, None if device in ("", "auto") else device)
            torch_env.release_unused_gpu_pages()  # the detector's torchvision loads more of them
        return model

    # ------------------------------------------------------------------ inference
    def iter_predict(self, refs, cancelled: Callable[[], bool] = lambda: False,
                     model: str | None = None) -> Iterator[Prediction]:
        """Predictions for refs in order: from the store's cache when there, else computed
        (and cached). Stops between batches when cancelled() turns true. model: a side
        model's name (None: the primary)."""
        model = self._model(model)
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
        stats = self.stats if model is self.model else self.side_stats.setdefault(model.manifest.name, {
            "cached": 0, "computed": 0})
        stats["cached"] += len(refs) - len(todo)
        stats["computed"] += len(todo)
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

    def aggregate(self, study_key: str, preds, model: str | None = None):
        m = self._model(model)
        threshold = m.manifest.threshold if m is not None else 0.5
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
