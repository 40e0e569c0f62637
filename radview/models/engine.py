"""Inference: images in, Predictions out, batched, with decoding overlapping compute.

- `iter_predict(refs, model, batch_size=8, gate=True, workers=2, decoder=None)
  -> Iterator[Prediction]`: a generator. Two decoder processes (or threads, see
  radview.models.decoding) decode (radview.io.load_frame) and preprocess
  (radview.models.preprocess) the next batch while the current batch runs. Predictions come out
  in input order. A file that cannot be read yields a Prediction with `error` set (the
  ImageError text: path and reason) and the run carries on. Closing the generator (or dropping
  it) cancels the decoding not yet started; the GUI's worker cancels between yields.
- `predict_frames(frames, model, gate=True) -> list[Prediction]`: the same on decoded Frames.
- `aggregate_study(study_key, preds, threshold=0.5) -> StudyPrediction`: the MURA rule: mean of
  the view probabilities, positive (classes[1]) if the mean > threshold for two-class models,
  argmax of the mean softmax for multiclass; views with errors are left out; detection keeps
  every view's boxes in `views`. Out-of-domain views flag the study (reasons joined).
- `predicted_class(pred, threshold)`: a Prediction's class under a decision threshold
  (Prediction.predicted is the argmax, i.e. threshold 0.5).

Probabilities: binary models (one logit) give (1 - p, p); multiclass softmax; detection
(boxes: all the detector returns above its own score floor, with their scores; callers filter by
the threshold)
(1 - best box score, best box score), boxes with score >= the manifest's threshold, in image
pixels. The out-of-domain verdict (radview.models.domain) is attached to every Prediction.
"""
from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from itertools import islice

import numpy as np
import torch

from radview.models import arch as archmod
from radview.models.aggregate import aggregate_study, predicted_class  # noqa: F401 - re-exported
from radview.models.domain import metadata_verdict
from radview.models import decoding
from radview.models.preprocess import Decoded, Geometry, decode_frame, decode_ref, spec_key
from radview.models.registry import LoadedModel, ModelError, load_model
from radview.types import Box, Frame, ImageRef, Prediction

__all__ = ["iter_predict", "predict_frames", "aggregate_study", "predicted_class"]


# --------------------------------------------------------------------------- decoding


def _spec_key(spec) -> tuple:
    return spec_key(spec)


def _specs(model: LoadedModel, gate: bool) -> list:
    specs = [model.manifest.input]
    gm = _gate_model(model) if gate else None
    if isinstance(gm, LoadedModel) and _spec_key(gm.manifest.input) != _spec_key(specs[0]):
        specs.append(gm.manifest.input)
    return specs


# --------------------------------------------------------------------------- forward


@contextlib.contextmanager
def capture_features(model: LoadedModel):
    """Yields a list that receives the pooled penultimate features of each forward."""
    store: list = []
    head = None if model.scripted else archmod.head_module(model.module, model.manifest.arch)
    if head is None:
        yield store
        return

    def hook(_mod, args):
        store.append(args[0].detach().flatten(1))

    handle = head.register_forward_pre_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def forward(model: LoadedModel, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None, list]:
    """(probs (N, K), features (N, D) or None, boxes per image in input pixels)."""
    m = model.manifest
    with torch.inference_mode():
        x = batch.to(model.device, non_blocking=True)
        if m.task == "detection":
            out = model.module(list(x.unbind(0)))
            probs, boxes = [], []
            for o in out:
                scores = o["scores"].float().cpu().numpy()
                best = float(scores.max()) if scores.size else 0.0
                probs.append((1.0 - best, best))
                # every box the detector returns (its own score floor): the viewer's score slider
                # and the review's FROC need boxes below the decision threshold too
                boxes.append((o["boxes"].float().cpu().numpy(), scores))
            return np.asarray(probs, dtype=np.float64), None, boxes
        if model.extra.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        cb = int(model.extra.get("compute_batch") or len(x))
        with capture_features(model) as feats:
            logits = torch.cat([model.module(x[i:i + cb]) for i in range(0, len(x), cb)]).float()
        if m.task == "binary":
            p = torch.sigmoid(logits.reshape(len(logits), -1)[:, 0])
            probs = torch.stack([1 - p, p], 1)
        else:
            probs = torch.softmax(logits, 1)
        f = torch.cat(feats).float().cpu().numpy() if feats else None
        return probs.cpu().numpy().astype(np.float64), f, [None] * len(probs)


def _to_boxes(raw, geom: Geometry, label: str) -> tuple[Box, ...]:
    if raw is None:
        return ()
    xyxy, scores = raw
    sx, sy = geom.scale_xy
    out = []
    for (x0, y0, x1, y1), s in zip(xyxy, scores):
        out.append(Box(float(x0 * sx), float(y0 * sy), float((x1 - x0) * sx), float((y1 - y0) * sy),
                       label=label, score=float(s)))
    return tuple(out)


# --------------------------------------------------------------------------- gate


def _gate_model(model: LoadedModel):
    """The LoadedModel gating `model`, 'self', None, or an error string (cached)."""
    name = model.manifest.domain.gate_model
    if not name or name == "self" or name == model.name:
        return "self" if name else None
    if "gate_model" not in model.extra:
        try:
            model.extra["gate_model"] = load_model(name, model.device)
        except ModelError as exc:
            model.extra["gate_model"] = f"not checked: gate {exc}"
    return model.extra["gate_model"]


def _gate_verdicts(model: LoadedModel, items: list[Decoded], feats: np.ndarray | None) -> list[tuple[bool, str]]:
    reasons: list[list[str]] = [[] for _ in items]
    notes: list[str] = ["" for _ in items]
    for r, d in zip(reasons, items):
        v = metadata_verdict(d.meta, model.manifest.domain)
        if v:
            r.append(v)
    gm = _gate_model(model)
    if gm == "self":
        if model.gate is not None and feats is not None:
            for r, (ok, why, _s) in zip(reasons, model.gate.verdicts(feats)):
                if not ok:
                    r.append(why)
    elif isinstance(gm, LoadedModel):
        gpreds = _predict_decoded(gm, items, gate=True, key=_spec_key(gm.manifest.input))
        allowed = model.manifest.domain.gate_classes
        for k, (r, gp) in enumerate(zip(reasons, gpreds)):
            if gp.error:
                r.append(f"{gm.name}: {gp.error}")
            elif not gp.in_domain:
                r.append(f"{gm.name}: {gp.domain_reason} (it sees {gp.predicted}, p={gp.probability:.2f})")
            elif allowed and gp.predicted not in allowed:
                r.append(f"{gm.name} model sees {gp.predicted} (p={gp.probability:.2f}), not {'/'.join(allowed)}")
            else:  # the verdict's reason travels with in-domain answers too
                notes[k] = f"in domain: {gm.name} model sees {gp.predicted} (p={gp.probability:.2f})"
    elif isinstance(gm, str):
        notes = [gm] * len(items)
    return [(not r, "; ".join(r) or n) for r, n in zip(reasons, notes)]


# --------------------------------------------------------------------------- predict


def _predict_decoded(model: LoadedModel, items: list[Decoded], gate: bool = True,
                     key: tuple | None = None) -> list[Prediction]:
    m = model.manifest
    key = key or _spec_key(m.input)
    out: list[Prediction | None] = [None] * len(items)
    good = [i for i, d in enumerate(items) if d.error is None]
    base = dict(model=m.name, model_version=m.version, classes=m.classes)
    for i, d in enumerate(items):
        if d.error is not None:
            out[i] = Prediction(ref=d.ref, probs=(), error=d.error, **base)
    if good:
        ready = [items[i] for i in good]
        try:
            batch = torch.from_numpy(np.stack([d.inputs[key] for d in ready]))
            probs, feats, raw = forward(model, batch)
            verdicts = _gate_verdicts(model, ready, feats) if gate else [(True, "")] * len(ready)
        except Exception as exc:  # noqa: BLE001 - a failing batch is reported per image
            msg = f"model {m.name} failed: {type(exc).__name__}: {exc}"
            for i in good:
                out[i] = Prediction(ref=items[i].ref, probs=(), error=f"{items[i].ref.path}: {msg}", **base)
        else:
            label = m.box_label or m.classes[-1]
            for j, i in enumerate(good):
                ok, why = verdicts[j]
                out[i] = Prediction(ref=items[i].ref, probs=tuple(float(p) for p in probs[j]),
                                    boxes=_to_boxes(raw[j], items[i].geometry, label),
                                    in_domain=ok, domain_reason=why, **base)
    return out  # type: ignore[return-value]


def predict_frames(frames: Sequence[Frame], model: LoadedModel, gate: bool = True) -> list[Prediction]:
    """Predictions for decoded frames (the viewer's current image, render)."""
    specs = _specs(model, gate)
    items = []
    for f in frames:
        try:
            items.append(decode_frame(f, specs))
        except Exception as exc:  # noqa: BLE001
            items.append(Decoded(f.ref, error=f"{f.ref.path}: {exc}"))
    return _predict_decoded(model, items, gate)


def iter_predict(refs: Iterable[ImageRef], model: LoadedModel, batch_size: int = 8, gate: bool = True,
                 workers: int = 2, decoder: str | None = None) -> Iterator[Prediction]:
    """See the module doc. refs may be lazy; str paths are accepted as ImageRef(path).
    decoder: 'process' or 'thread' (default: radview.models.decoding.decoder_kind())."""
    specs = _specs(model, gate)
    it = iter(refs)
    n = len(refs) if isinstance(refs, Sized) else None  # the work size picks the decoder (decoding.decoder_kind)
    kind = decoding.decoder_kind(decoder, n, model.manifest.input)
    pool = decoding.process_pool(workers) if kind == "process" else decoding.thread_pool(workers)
    pending: deque[list[tuple[ImageRef, Future]]] = deque()

    def submit() -> list[tuple[ImageRef, Future]]:
        out = []
        for r in islice(it, batch_size):
            r = r if isinstance(r, ImageRef) else ImageRef(str(r))
            try:
                out.append((r, pool.submit(decode_ref, r, specs)))
            except (BrokenProcessPool, RuntimeError):  # the pool died or was shut down: decode here
                done: Future = Future()
                done.set_result(decode_ref(r, specs))
                out.append((r, done))
        return out

    with contextlib.ExitStack() as stack:
        stack.enter_context(decoding.fast_gil_switching())
        try:
            pending.append(submit())
            while pending and pending[0]:
                batch = pending.popleft()
                pending.append(submit())  # decode the next batch while this one runs
                yield from _predict_decoded(model, [decoding.result(f, r, specs) for r, f in batch], gate)
        finally:
            for batch in pending:
                for _r, f in batch:
                    f.cancel()
            if kind == "thread":
                pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- studies


