"""A retraining run, end to end: `retrain(model, data)` is a generator of Progress whose last
payload is a `TrainResult`.

1. Data: the model's labelled data (`data`, else the manifest's `training.data`) with the label
   store's corrections applied, fixed seeded splits with a locked test split (radview.train.data).
2. Start: the current version's weights (or, when none are installed, the architecture's
   ImageNet weights where they ship offline, else a random start).
3. The current version is measured on the locked test split; fine-tuning (radview.train.loop);
   the new weights are measured on the same split.
   Promotion (radview.train.evaluate.PROMOTION_RULE, written into the card): the locked test
   split must hold >= min_test (30) items, and a paired bootstrap 95% CI of (new - current) in
   the agreed metric must have its lower bound >= -tolerance.
4. The new version (manifest, weights, MODEL_CARD.md, run.json) is written to a stage folder and
   renamed into place (radview.train.versions). It becomes current only if it does not regress on
   the agreed metric (kappa for binary models; accuracy, or macro_kappa if asked, for
   multiclass); otherwise it stays a candidate (`radview train --model M --promote VERSION`).
5. On promotion, the queue's corrections of training-split items the run used (and only those
   of the model's label space) are marked consumed with the run id (a candidate leaves them in
   the queue: the current model has not learnt them yet). `rollback_model` gives a rolled-back
   version's corrections back to the queue.

Closing the generator (GUI cancel) stops between batches; nothing is written before training has
finished, and a stage folder is removed on any failure. Under torchrun every rank runs this
function; rank 0 reads the data and the store, broadcasts the data set, and alone measures,
writes and marks.

`find_lr(model, data)` prepares the same data and start weights and runs loop.lr_find.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radview.train.config import TrainConfig
from radview.train.data import DataError, TrainData, build_dataset
from radview.types import Progress


@dataclass(frozen=True)
class TrainResult:
    model: str
    run_id: str
    version: str | None          # None on ranks other than 0, or if nothing was written
    parent_version: str
    folder: str | None
    promoted: bool
    reason: str
    metric: str
    metrics: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    parent_metrics: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    consumed: tuple[int, ...] = ()
    data_hash: str = ""
    rank: int = 0
    world_size: int = 1
    seen: tuple[tuple[int, ...], ...] = ()  # per epoch: indices into the samples this rank trained on
    state_digest: str = ""       # sha256 of the final weights as saved (equal on every rank)
    seconds: float = 0.0
    dropped: tuple[str, ...] = ()
    comparison: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # paired, on the test split


@dataclass
class _Prepared:
    name: str
    manifest: Any
    parent_version: str
    parent_installed: bool
    parent_module: Any
    parent_gate: Any
    parent_card: str
    module: Any
    device: Any
    dist: Any
    data: TrainData
    images: Any
    config: TrainConfig
    store: Any
    own_store: bool


def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def resolve_data(manifest: Any, data: str | os.PathLike | None) -> str:
    """The data folder: the argument, else the manifest's training.data (relative to the working
    folder, the checkout, or the model folder)."""
    from radview import paths

    if data is not None:
        if not Path(data).exists():
            raise DataError(f"{data}: no such folder")
        return os.path.abspath(data)
    training = manifest.training or {}
    args = training.get("args") if isinstance(training.get("args"), dict) else {}
    hints = [str(h) for h in (training.get("data"), args.get("data")) if isinstance(h, str) and h]
    for hint in hints:
        for base in (Path.cwd(), paths.resources_dir().parent, Path(manifest.folder or ".")):
            p = (base / hint).resolve()
            if p.is_dir():
                return str(p)
    raise DataError(f"model {manifest.name}: no training data given (pass --data PATH"
                    + (f"; {' / '.join(hints)} not found" if hints else "") + ")")


def state_digest(module_or_state: Any, fp16: bool = False) -> str:
    """sha256 over a module's (or a state_dict's) tensors by name, as they are saved."""
    sd = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    h = hashlib.sha256()
    for k, v in sorted(sd.items()):
        v = v.detach().cpu()
        if fp16 and v.is_floating_point():
            v = v.half()
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()


def _open_store(store: Any, use_store: bool, main: bool):
    """(the store, whether we must close it): the process's store (open_store) unless given."""
    if store is not None or not use_store:
        return store, False
    from radview.store import StoreError, open_store

    try:
        return open_store(readonly=not main), False  # shared: never closed by a run
    except StoreError:
        return None, False


def _prepare(name: str, data: str | os.PathLike | None, config: TrainConfig | None, store: Any,
             device: str | None, use_store: bool, overrides: dict) -> Iterator[Progress]:
    from radview.models.registry import ModelError, configure_threads, get_model_info, select_device
    from radview.train import ddp, versions

    info = get_model_info(name)
    if info.manifest is None:
        raise ModelError(name, info.status)
    m = info.manifest
    cfg = config if config is not None else TrainConfig.for_manifest(m, **overrides)
    if config is not None and overrides:
        cfg = cfg.with_changes(**overrides)
    if device is not None:
        cfg = cfg.with_changes(device=device)
    cfg.check()
    cfg.metric_for(m.task)
    dev = select_device(None if cfg.device in ("", "auto") else cfg.device)
    dist = ddp.setup(dev)
    dev = ddp.cuda_device_for(dist, dev)
    if dist is None:
        configure_threads()
    main = dist is None or dist.is_main
    st, own = None, False
    try:
        st, own = _open_store(store, use_store, main)
        tdata: Any = None
        if main:
            try:
                root = resolve_data(m, data)
                yield Progress(0, None, f"reading {root}")
                for p in build_dataset(root, m, st, cfg, splits_file=versions.splits_path(name)):
                    if isinstance(p.payload, TrainData):
                        tdata = p.payload
                    yield p
            except (DataError, OSError) as exc:
                ddp.broadcast_object(dist, str(exc))  # the other ranks stop with the same message
                raise
        tdata = ddp.broadcast_object(dist, tdata)
        if isinstance(tdata, str):
            raise DataError(tdata)
        assert tdata is not None
        prepared = yield from _start_weights(name, info, m, cfg, dev, dist, tdata, st, own)
        return prepared
    except BaseException:
        if own and st is not None:
            st.close()
        ddp.teardown(dist)
        raise


def _start_weights(name, info, m, cfg, dev, dist, tdata, st, own) -> Iterator[Progress]:
    from radview.models import arch as archmod
    from radview.models.registry import ModelError, load_model
    from radview.train.dataset import ImageSet
    from radview.train.loop import clone_for_training

    yield Progress(0, None, f"loading {name} {m.version}" if info.installed else f"building {m.arch}")
    if info.installed:
        parent = load_model(name, dev)
        if parent.scripted:
            raise ModelError(name, "TorchScript weights cannot be fine-tuned (a state_dict is needed)")
        module, pmod, pgate = clone_for_training(parent.module), parent.module, parent.gate
    else:
        module = archmod.build(m.arch, m.num_outputs, m.task, **m.arch_kwargs)
        if m.arch == "efficientnet_lite0":
            archmod.load_imagenet_lite0(module)
        pmod, pgate = None, None
    card = ""
    if info.installed and m.card_path.is_file():
        try:
            card = m.card_path.read_text(encoding="utf-8")
        except OSError:
            card = ""
    images = ImageSet(tdata.samples, m, cache_mb=cfg.cache_mb)
    return _Prepared(name, m, m.version, info.installed, pmod, pgate, card, module, dev, dist, tdata,
                     images, cfg, st, own)


def _indices(p: _Prepared, split: str) -> list[int]:
    return [i for i, s in enumerate(p.data.samples) if s.split == split and i not in p.images.errors]


def _evaluate(p: _Prepared, module: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics on the locked test split, per item {key: (truth, score, call)} for the paired
    comparison: studies for classifiers, images for detectors)."""
    import numpy as np

    from radview.train.evaluate import classification_metrics, detection_metrics, study_scores
    from radview.train.loop import predict

    idx = _indices(p, "test")
    if not idx:
        return {}, {}
    done, out = predict(module, p.manifest.task, p.images, idx, p.device, p.config.batch_size)
    thr = p.manifest.threshold
    if p.manifest.task == "detection":
        truth = []
        for i in done:
            g = p.images.gray(i)
            hw = g[1] if g else (1, 1)
            truth.append(p.images.target(i, hw)["boxes"].numpy())
        items = {}
        for i, t, (_b, sc) in zip(done, truth, out):
            best = float(sc.max()) if len(sc) else 0.0
            items[p.data.samples[i].ref.key] = (int(len(t) > 0), best, int(best > thr))
        return detection_metrics(truth, out, thr), items
    keys, y, probs = study_scores(p.data.samples, done, out)
    binary = len(p.manifest.classes) == 2 and probs.shape[1] == 2
    items = {}
    for k, t, pr in zip(keys, y, probs):
        call = int(pr[1] > thr) if binary else int(np.argmax(pr))
        items[k] = (int(t), float(pr[1]) if binary else float(call), call)
    return classification_metrics(p.data.samples, done, out, len(p.manifest.classes), thr), items


def _compare(new_items: dict, cur_items: dict, metric: str, n_classes: int) -> dict[str, Any] | None:
    import numpy as np

    from radview.train.evaluate import paired_comparison

    keys = sorted(set(new_items) & set(cur_items))
    if not keys:
        return None
    arr = lambda items, j: np.asarray([items[k][j] for k in keys])  # noqa: E731
    return paired_comparison(arr(new_items, 0), arr(new_items, 1), arr(new_items, 2), arr(cur_items, 1),
                             arr(cur_items, 2), metric, n_classes)


def _refit_gate(p: _Prepared, module: Any):
    """Class means of the new model's pooled features (train split); threshold: the parent's
    (calibrated against out-of-domain images), lowered if needed to just below the lowest
    similarity of any image of the data set. None when the parent had no feature gate."""
    if p.parent_gate is None or p.manifest.task == "detection":
        return None
    import numpy as np
    import torch

    from radview.models import arch as archmod
    from radview.models.domain import FeatureGate, calibrate_threshold
    from radview.train.dataset import loader

    head = archmod.head_module(module, p.manifest.arch)
    if head is None:
        return None
    feats: list = []
    hook = head.register_forward_pre_hook(lambda _m, a: feats.append(a[0].detach().flatten(1).cpu()))
    try:
        rows: list[int] = []
        module.eval()
        with torch.inference_mode():
            for batch in loader(p.images, [i for i, s in enumerate(p.data.samples) if i not in p.images.errors],
                                p.config.batch_size, shuffle=False, drop_last=False):
                if batch is not None:
                    module(batch[0].to(p.device))
                    rows.extend(int(i) for i in batch[2])
    finally:
        hook.remove()
    if not feats:
        return None
    f = torch.cat(feats).numpy()
    y = np.asarray([p.data.samples[i].target for i in rows])
    split = np.asarray([p.data.samples[i].split for i in rows])
    tr = split == "train"
    if len(set(y[tr].tolist())) < len(p.manifest.classes):
        return None
    gate = FeatureGate.fit(f[tr], y[tr], 0.0, tuple(p.manifest.classes))
    thr = calibrate_threshold(gate.similarity(f))
    # keep the parent's threshold (calibrated against out-of-domain images) unless the new
    # features need a lower one to keep every image of the data set in
    parent_thr = p.manifest.gate.get("threshold", p.parent_gate.threshold)
    try:
        thr = min(float(parent_thr), thr)
    except (TypeError, ValueError):
        pass
    return FeatureGate(gate.class_means, float(thr), gate.classes)


def retrain(model: str, data: str | os.PathLike | None = None, *, config: TrainConfig | None = None,
            store: Any = None, device: str | None = None, promote: bool = True, use_store: bool = True,
            run_id: str | None = None, **overrides: Any) -> Iterator[Progress]:
    """See the module doc. overrides: TrainConfig fields (epochs=..., lr=..., ...)."""
    from radview.train import ddp, versions
    from radview.train.card import render_card
    from radview.train.evaluate import PROMOTION_RULE, N_RESAMPLES, promotion_decision
    from radview.train.loop import FitResult, StudyTypeWeights, fit

    t0 = time.time()
    p: _Prepared = yield from _prepare(model, data, config, store, device, use_store, overrides)
    stage = None
    try:
        cfg, m, dist = p.config, p.manifest, p.dist
        main = dist is None or dist.is_main
        rid = ddp.broadcast_object(dist, run_id or new_run_id(model))
        metric = cfg.metric_for(m.task)
        from radview.train.dataset import iter_warm

        yield from iter_warm(p.images)
        train_idx, val_idx = _indices(p, "train"), _indices(p, "val")
        if not train_idx:
            raise DataError(f"{p.data.root}: no readable training image")
        parent_metrics: dict[str, Any] = {}
        parent_items: dict[str, Any] = {}
        if main and p.parent_module is not None:
            yield Progress(0, None, f"measuring version {p.parent_version} on the locked test split")
            parent_metrics, parent_items = _evaluate(p, p.parent_module)
        weights = StudyTypeWeights(p.data.samples, train_idx) if m.task == "binary" else None
        fitres: FitResult | None = None
        for prog in fit(p.module, m.arch, m.task, p.images, train_idx, val_idx, cfg, p.device, dist, weights):
            if isinstance(prog.payload, FitResult):
                fitres = prog.payload
            yield prog
        assert fitres is not None
        fp16 = m.weights.dtype == "float16"
        digest = state_digest(p.module, fp16)
        if not main:
            ddp.barrier(dist)
            yield Progress(1, 1, f"rank {dist.rank} done", TrainResult(
                model, rid, None, p.parent_version, None, False, "rank > 0 writes nothing", metric,
                rank=dist.rank, world_size=dist.world_size, seen=fitres.seen, state_digest=digest,
                seconds=time.time() - t0))
            return
        yield Progress(0, None, "measuring the new weights on the locked test split")
        metrics, new_items = _evaluate(p, p.module)
        comparison = (_compare(new_items, parent_items, metric, len(m.classes))
                      if p.parent_installed and parent_items else None)
        ok, reason = promotion_decision(len(new_items), comparison, metric, cfg.tolerance, cfg.min_test)
        rule = PROMOTION_RULE.format(min_test=cfg.min_test, n=N_RESAMPLES, metric=metric,
                                     margin=cfg.tolerance)
        gate = _refit_gate(p, p.module)
        # ---- write: no yield from here to the commit, so a cancel cannot leave half a version
        from radview.models.recipe import save_model_folder

        stage = versions.new_stage(model, rid)
        with versions.locked(model):
            version = versions.next_version(model, p.parent_version)
            counts = p.data.counts()
            run = {
                "format": 1, "model": model, "version": version, "run_id": rid, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "parent_version": p.parent_version if p.parent_installed else "",
                "data": p.data.root, "data_hash": p.data.data_hash, "split_source": p.data.split_source,
                "classes": list(m.classes), "metric": metric, "metrics": metrics, "parent_metrics": parent_metrics,
                "comparison": comparison, "rule": rule, "n_test_items": len(new_items),
                "label_space": p.data.space,
                "promoted": bool(ok and promote), "reason": reason if promote else f"{reason}; promotion not asked",
                "events": list(p.data.used_events), "n_corrected": p.data.n_corrected, "n_excluded": p.data.n_excluded,
                "dropped": list(p.data.dropped) + [p.images.errors[i] for i in sorted(p.images.errors)],
                "counts": {**counts, "test_total": len(p.data.split("test"))},
                "config": cfg.to_dict(), "device": str(p.device), "world_size": dist.world_size if dist else 1,
                "best_epoch": fitres.best_epoch, "stopped_early": fitres.stopped_early,
                "history": [{"epoch": h.epoch, "phase": h.phase, "train_loss": h.train_loss, "val_loss": h.val_loss}
                            for h in fitres.history],
                "weights": weights.to_dict() if weights is not None else None,
                "gate": (f"class means refit on this version's training features; threshold {gate.threshold:.4f} "
                         f"(the parent's, or lower if images of the data set needed it)" if gate is not None
                         else ""),
                "seconds": round(time.time() - t0, 1),
            }
            training = {**(m.training or {}), "parent_version": run["parent_version"], "run_id": rid,
                        "data": p.data.root, "data_hash": p.data.data_hash, "recipe": cfg.to_dict(),
                        "retrained_by": "radview.train"}
            new_m = m.with_changes(version=version, training=training, folder="",
                                   metrics={"agreed_metric": metric, "locked_test": metrics,
                                            "parent_locked_test": parent_metrics,
                                            "paired_comparison": comparison, "promotion_rule": rule},
                                   gate=({**m.gate, "threshold": gate.threshold} if gate is not None else m.gate))
            save_model_folder(p.module, new_m, stage, gate=gate, fp16=fp16, weights_file=m.weights.file)
            (stage / m.card).write_text(render_card(run, p.parent_card), encoding="utf-8")
            (stage / versions.RUN_FILE).write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
            folder = versions.commit(model, stage, version)
            stage = None
            from radview.train.data import write_splits

            write_splits(versions.splits_path(model), p.data.stats["assignment"], cfg.seed, p.data.split_source)
        consumed: tuple[int, ...] = ()
        if ok and promote:
            versions.promote(model, version, rid, reason)
            if p.store is not None and p.data.used_events and not getattr(p.store, "readonly", False):
                p.store.mark_consumed(p.data.used_events, rid, note=f"{model} {version}")
                consumed = tuple(p.data.used_events)
        ddp.barrier(dist)
        verdict = "promoted to current" if run["promoted"] else "kept as a candidate"
        yield Progress(1, 1, f"{model} {version}: {verdict} ({reason})", TrainResult(
            model, rid, version, p.parent_version, str(folder), bool(run["promoted"]), run["reason"], metric,
            metrics, parent_metrics, consumed, p.data.data_hash, 0, dist.world_size if dist else 1,
            fitres.seen, digest, time.time() - t0, tuple(run["dropped"]), comparison))
    finally:
        versions.discard_stage(stage)
        if p.own_store and p.store is not None:
            p.store.close()
        ddp.teardown(p.dist)


def find_lr(model: str, data: str | os.PathLike | None = None, *, config: TrainConfig | None = None,
            store: Any = None, device: str | None = None, num_it: int = 100, start_lr: float = 1e-7,
            end_lr: float = 10.0, frozen: bool = True, use_store: bool = True,
            **overrides: Any) -> Iterator[Progress]:
    """lr_find on the model's data (corrections applied); the last payload is an LRFinderResult."""
    from radview.train import ddp
    from radview.train.dataset import iter_warm
    from radview.train.loop import StudyTypeWeights, lr_find

    p: _Prepared = yield from _prepare(model, data, config, store, device, use_store, overrides)
    try:
        yield from iter_warm(p.images, _indices(p, "train"))
        weights = StudyTypeWeights(p.data.samples, _indices(p, "train")) if p.manifest.task == "binary" else None
        yield from lr_find(p.module, p.manifest.arch, p.manifest.task, p.images, _indices(p, "train"), p.config,
                           p.device, start_lr=start_lr, end_lr=end_lr, num_it=num_it, frozen=frozen,
                           weights=weights)
    finally:
        if p.own_store and p.store is not None:
            p.store.close()
        ddp.teardown(p.dist)


def rollback_model(model: str, store: Any = None, use_store: bool = True) -> tuple[str, int]:
    """One version back (radview.train.versions.rollback) and the corrections the rolled-back
    version's run consumed return to the queue (the model in use has not learnt them).
    Returns (the version now current, how many corrections went back to the queue)."""
    from radview.train import versions

    gone = versions.current_entry(model)
    now = versions.rollback(model)
    run_id = (gone or {}).get("run_id") or ""
    if not run_id:
        return now, 0
    st, own = _open_store(store, use_store, True)
    if st is None or getattr(st, "readonly", False):
        return now, 0
    try:
        return now, st.release_run(run_id)
    finally:
        if own:
            st.close()


def promote_candidate(model: str, version: str, store: Any = None, use_store: bool = True) -> tuple[int, ...]:
    """Make a kept candidate current by hand (the user's decision), and mark the queue events its
    run used as consumed by that run. Returns the ids newly marked."""
    from radview.train import versions

    folder = versions.versions_root(model) / version
    run = versions.read_run(folder)
    versions.promote(model, version, run.get("run_id", ""), reason="promoted by hand")
    events = [int(e) for e in run.get("events", [])]
    st, own = _open_store(store, use_store and bool(events), True)
    if st is None or not events or not run.get("run_id"):
        return ()
    try:
        pending = {e.id for e in st.pending()}
        todo = [e for e in events if e in pending]  # run.json lists the training split's only
        if todo:
            st.mark_consumed(todo, run["run_id"], note=f"{model} {version} (promoted by hand)")
        return tuple(todo)
    finally:
        if own:
            st.close()
