"""The selected model's own frozen features per image, cached; test-time-augmented probabilities.

(radview.models.features holds the ImageNet EfficientNet-Lite0 trunk features of the training
recipes; this module gives the features of whichever model the user selected.)

The feature vector of an image is the model's pooled penultimate activation (the input of its
classification head, the same vector the out-of-domain gate compares), computed through the
engine's own decode + preprocess path (`radview.models.preprocess.decode_ref`) and forward
(`radview.models.engine.forward`), so the features belong to exactly what the model sees.

- `iter_features(refs, model, *, device=None, batch_size=8, cache=True)`: a generator of
  Progress whose last payload is a `ModelFeatures` (keys, an (n, D) float32 matrix aligned
  with the readable refs, and the errors of the others). Cached per image in
  `<user data>/model_features.sqlite`, keyed by the image key, the file's identity (size +
  mtime, so an edited or replaced file is recomputed) and the model's identity (name, version
  and weights sha256). A fully cached call never imports torch nor loads the model.
- `model_features(refs, model, **kw)`: the same, run to the end.
- `tta_probs(refs, model, n_aug=4)`: class probabilities of each image under `n_aug` light
  test-time augmentations (identity, horizontal flip, small shifts): (n, n_aug, C); their
  variance is an uncertainty signal for active learning.
- `tta_probs(..., mc_dropout=True)`: instead, `n_aug` forward passes with the model's dropout
  layers sampling (MC dropout; FeatureError when the model has no dropout). The dropout layers
  are put back in eval mode afterwards, whatever happens.

Detectors and TorchScript models have no hookable pooled vector: FeatureError says so.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radview.types import ImageRef, Progress

__all__ = ["ModelFeatures", "FeatureError", "ModelFeatureCache", "file_identity",
           "model_identity", "iter_features", "model_features", "tta_probs", "CACHE_NAME"]

CACHE_NAME = "model_features.sqlite"


class FeatureError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelFeatures:
    """keys: image keys of the rows of `matrix` (n, D) float32; errors: (image key, reason)."""

    model: str
    model_version: str
    keys: tuple[str, ...]
    matrix: np.ndarray
    errors: tuple[tuple[str, str], ...] = ()
    n_cached: int = 0
    n_computed: int = 0
    note: str = ""
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def row(self, key: str) -> int | None:
        if not self._index:
            self._index.update({k: i for i, k in enumerate(self.keys)})
        return self._index.get(key)


def file_identity(path: str) -> str:
    """'size:mtime_ns' of a file ('' when it cannot be stat'ed: never cached)."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def model_identity(manifest) -> str:
    """What a cached feature must match: name, version and weights sha256."""
    return f"{manifest.name}|{manifest.version}|{manifest.weights.sha256}"


class ModelFeatureCache:
    """A SQLite file of feature vectors (float32 blobs). Safe to share between processes (WAL);
    a cache that cannot be opened or written is reported by the caller, never fatal."""

    def __init__(self, path: str | os.PathLike | None = None):
        if path is None:
            from radview.paths import user_home

            path = user_home() / CACHE_NAME
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        try:
            self._con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError:
            pass
        self._con.execute("CREATE TABLE IF NOT EXISTS features (model TEXT NOT NULL, "
                          "key TEXT NOT NULL, ident TEXT NOT NULL, dim INTEGER NOT NULL, "
                          "data BLOB NOT NULL, PRIMARY KEY (model, key))")
        self._con.commit()

    def get(self, model_id: str, items: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        """{key: vector} for (key, file identity) pairs whose cached identity matches."""
        want = dict(items)
        out: dict[str, np.ndarray] = {}
        keys = list(want)
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = ("SELECT key, ident, data FROM features WHERE model = ? AND key IN (%s)"
                     % ",".join("?" * len(chunk)))
                for key, ident, data in self._con.execute(q, [model_id, *chunk]):
                    if ident and ident == want.get(key):
                        out[key] = np.frombuffer(data, dtype=np.float32)
        return out

    def put(self, model_id: str, rows: Iterable[tuple[str, str, np.ndarray]]) -> None:
        data = [(model_id, k, ident, int(np.size(v)), np.asarray(v, np.float32).tobytes())
                for k, ident, v in rows if ident]
        with self._lock:
            self._con.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?)", data)
            self._con.commit()

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _loaded(model, device):
    from radview.models.registry import LoadedModel, load_model

    return model if isinstance(model, LoadedModel) else load_model(str(model), device)


def _manifest(model):
    from radview.models.registry import ModelError, get_model_info

    if hasattr(model, "manifest"):
        return model.manifest
    info = get_model_info(str(model))
    if info.manifest is None:
        raise ModelError(str(model), info.status)
    return info.manifest


def iter_features(refs: Iterable[ImageRef | str], model, *, device=None, batch_size: int = 8,
                  cache: bool | ModelFeatureCache = True) -> Iterator[Progress]:
    """See the module doc. model: a name or a LoadedModel. A bad image never stops it."""
    refs = list(dict.fromkeys(r if isinstance(r, ImageRef) else ImageRef(str(r)) for r in refs))
    manifest = _manifest(model)
    if manifest.task == "detection":
        raise FeatureError(f"model {manifest.name} is a detector: it has no pooled feature "
                           "vector (use its boxes: radview.review.label_issues.box_issues)")
    mid = model_identity(manifest)
    idents = {r.key: file_identity(r.path) for r in refs}
    store: ModelFeatureCache | None = None
    note = ""
    got: dict[str, np.ndarray] = {}
    if cache:
        try:
            store = cache if isinstance(cache, ModelFeatureCache) else ModelFeatureCache()
            got = store.get(mid, list(idents.items()))
        except (sqlite3.Error, OSError) as exc:
            note, store = f"feature cache unusable: {exc}", None
    n_cached = len(got)
    missing = [r for r in refs if r.key not in got]
    errors: dict[str, str] = {}
    yield Progress(0, len(missing), f"{n_cached} of {len(refs)} image features cached")
    try:
        if missing:
            note = _compute(model, device, manifest, missing, batch_size, idents, got, errors,
                            store, mid) or note
            yield Progress(len(missing), len(missing), f"features of {len(missing)} images")
    finally:
        if store is not None and store is not cache:
            store.close()
    keys = tuple(r.key for r in refs if r.key in got)
    dims = {got[k].size for k in keys}
    if len(dims) > 1:
        raise FeatureError(f"model {manifest.name}: cached features of different sizes {dims}")
    matrix = (np.stack([got[k] for k in keys]).astype(np.float32) if keys
              else np.zeros((0, 0), np.float32))
    yield Progress(len(missing), len(missing), "done",
                   ModelFeatures(manifest.name, manifest.version, keys, matrix,
                                 tuple(errors.items()), n_cached, len(missing) - len(errors),
                                 note))


def _decoded_batches(refs, spec, batch_size):
    """Lists of Decoded per batch; the next batch decodes (2 threads) while one is used."""
    from radview.models import decoding
    from radview.models.preprocess import decode_ref

    pool = decoding.thread_pool(2)
    try:
        chunks = [refs[i:i + batch_size] for i in range(0, len(refs), batch_size)]
        ahead = None
        for j, chunk in enumerate(chunks):
            cur = ahead or [(r, pool.submit(decode_ref, r, [spec])) for r in chunk]
            ahead = ([(r, pool.submit(decode_ref, r, [spec])) for r in chunks[j + 1]]
                     if j + 1 < len(chunks) else None)
            yield [decoding.result(f, r, [spec]) for r, f in cur]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _compute(model, device, manifest, missing, batch_size, idents, got, errors, store, mid):
    loaded = _loaded(model, device)
    if loaded.scripted:
        raise FeatureError(f"model {manifest.name} is TorchScript: its pooled features "
                           "cannot be hooked (import it as a state_dict)")
    import torch

    from radview.models.engine import forward
    from radview.models.preprocess import spec_key

    key = spec_key(manifest.input)
    note = ""
    for decoded in _decoded_batches(missing, manifest.input, batch_size):
        good = [d for d in decoded if d.error is None]
        for d in decoded:
            if d.error is not None:
                errors[d.ref.key] = d.error
        if not good:
            continue
        batch = torch.from_numpy(np.stack([d.inputs[key] for d in good]))
        _probs, feats, _boxes = forward(loaded, batch)
        if feats is None:
            raise FeatureError(f"model {manifest.name} ({manifest.arch}) gives no pooled "
                               "features")
        fresh = []
        for d, f in zip(good, feats):
            got[d.ref.key] = np.asarray(f, np.float32)
            fresh.append((d.ref.key, idents[d.ref.key], got[d.ref.key]))
        if store is not None:
            try:
                store.put(mid, fresh)
            except sqlite3.Error as exc:
                note = f"features not cached: {exc}"
    return note


def model_features(refs, model, **kw) -> ModelFeatures:
    """iter_features run to the end."""
    out = None
    for p in iter_features(refs, model, **kw):
        out = p.payload if p.payload is not None else out
    return out


def _augment(x, i: int):
    import torch

    if i == 0:
        return x
    if i == 1:
        return torch.flip(x, dims=[-1])
    h, w = x.shape[-2:]
    s = max(1, round(0.04 * min(h, w)))
    shifts = [(s, s), (-s, -s), (s, -s), (-s, s)][(i - 2) % 4]
    out = torch.roll(x, shifts=shifts, dims=(-2, -1))
    return torch.flip(out, dims=[-1]) if (i - 2) // 4 % 2 else out


def _dropouts(loaded) -> list:
    import torch

    if loaded.scripted:
        return []
    return [m for m in loaded.module.modules()
            if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0]


def tta_probs(refs: Sequence[ImageRef | str], model, n_aug: int = 4, *, device=None,
              batch_size: int = 8, mc_dropout: bool = False
              ) -> tuple[tuple[str, ...], np.ndarray, tuple[tuple[str, str], ...]]:
    """(image keys, probs (n, n_aug, C), errors) under identity, flip and small shifts, or
    (mc_dropout=True) under n_aug dropout samples of the unaugmented image."""
    import torch

    from radview.models.engine import forward
    from radview.models.preprocess import spec_key

    if n_aug < 1:
        raise ValueError("n_aug must be at least 1")
    refs = [r if isinstance(r, ImageRef) else ImageRef(str(r)) for r in refs]
    loaded = _loaded(model, device)
    if loaded.manifest.task == "detection":
        raise FeatureError(f"model {loaded.name} is a detector: no class probabilities to "
                           "augment")
    spec = loaded.manifest.input
    key = spec_key(spec)
    drops = _dropouts(loaded) if mc_dropout else []
    if mc_dropout and not drops:
        raise FeatureError(f"model {loaded.name} has no dropout layer: MC dropout needs one "
                           "(use test-time augmentation instead)")
    keys, rows, errors = [], [], []
    if drops:
        torch.manual_seed(0)  # the same samples on a rerun
    try:
        for m in drops:
            m.train()
        for decoded in _decoded_batches(refs, spec, batch_size):
            good = [d for d in decoded if d.error is None]
            errors += [(d.ref.key, d.error) for d in decoded if d.error is not None]
            if not good:
                continue
            x = torch.from_numpy(np.stack([d.inputs[key] for d in good]))
            per = [forward(loaded, x if drops else _augment(x, a).contiguous())[0]
                   for a in range(n_aug)]
            rows.append(np.stack(per, axis=1))
            keys += [d.ref.key for d in good]
    finally:
        for m in drops:
            m.eval()
    n_c = len(loaded.manifest.classes)
    probs = np.concatenate(rows) if rows else np.zeros((0, n_aug, n_c))
    return tuple(keys), probs, tuple(errors)
