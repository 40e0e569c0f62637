"""The fine-tuning loop (fastai's fine_tune, as plain torch), lr_find and prediction.

- `fit(model, arch, task, data, train_idx, val_idx, config, device, dist=None, weights=None)`:
  a generator of Progress. Phase 1 trains the head (and every batch-norm layer, fastai's
  train_bn) for `freeze_epochs` with one one-cycle schedule (pct_start 0.99); phase 2 unfreezes
  everything with discriminative learning rates slice(lr/2/lr_mult, lr/2) over the layer groups
  (one-cycle, pct_start 0.3, div 5). After each epoch the validation loss decides early stopping
  (no lower loss for `patience` epochs); the best weights are restored at the end. Each batch
  yields Progress(payload=Step); each epoch Progress(payload=EpochEnd); the last one carries a
  FitResult. Under DDP (dist) the model is wrapped per phase, ranks see disjoint batches, the
  validation loss is all-reduced, buffers (batch-norm statistics) are broadcast from rank 0 so
  every rank ends with identical weights. Closing the generator stops between batches.
- `lr_find(...)`: fastai's LR range test: learning rate grows exponentially from start_lr to
  end_lr over num_it batches, the smoothed loss is recorded, the run stops when it diverges (4x
  the best); the model's weights are restored afterwards. Returns an LRFinderResult with the
  curve and suggestions (valley: fastai's default; steep; minimum/10).
- `predict(model, task, data, indices, device)`: probabilities (N, K) for classifiers, or
  per-image (boxes, scores) for detectors.
- Losses: BCE weighted per study type for binary models (MURA: w1 = N_T/(A_T+N_T) for
  abnormal, w0 = A_T/(A_T+N_T) for normal studies of type T), cross-entropy for multiclass, the
  detector's own losses (summed) for detection.
"""
from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radview.train.config import TrainConfig
from radview.train.dataset import ImageSet, augment_batch, loader
from radview.types import Progress


@dataclass(frozen=True)
class Step:
    phase: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    lr: float


@dataclass(frozen=True)
class EpochEnd:
    phase: str
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    best: bool
    stop: bool


@dataclass(frozen=True)
class FitResult:
    history: tuple[EpochEnd, ...]
    best_epoch: int
    best_val_loss: float | None
    stopped_early: bool
    seen: tuple[tuple[int, ...], ...]  # per epoch: the sample indices this rank trained on
    steps: int


@dataclass(frozen=True)
class LRFinderResult:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    suggestion: float
    valley: float
    steep: float
    minimum: float


# --------------------------------------------------------------------------- losses


class StudyTypeWeights:
    """MURA's weighted BCE: per study type T, w1 = N_T / (A_T + N_T), w0 = A_T / (A_T + N_T),
    counted over the training *studies* (A abnormal, N normal)."""

    def __init__(self, samples: Sequence[Any], train_indices: Sequence[int]):
        studies: dict[str, tuple[str, int]] = {}
        for i in train_indices:
            s = samples[i]
            studies.setdefault(s.study, (s.study_type, int(s.target)))
        count: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for stype, y in studies.values():
            count[stype][y] += 1
        self.table: dict[str, tuple[float, float]] = {}
        for stype, (n, a) in count.items():
            tot = max(1, a + n)
            self.table[stype] = (a / tot if a else 1.0, n / tot if n else 1.0)  # (w0, w1)
        self._types = [s.study_type for s in samples]

    def for_indices(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = [self.table.get(self._types[int(i)], (0.5, 0.5))[int(t)] for i, t in zip(idx, y)]
        return torch.tensor(w, dtype=torch.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [round(w0, 4), round(w1, 4)] for k, (w0, w1) in sorted(self.table.items())}


def _model_loss(model: nn.Module, task: str, x: torch.Tensor, y: Any, idx: torch.Tensor,
                weights: StudyTypeWeights | None, device) -> tuple[torch.Tensor, int]:
    """(mean loss, batch size) with the model in whatever mode the caller set."""
    if task == "detection":
        targets = [{k: v.to(device) for k, v in t.items()} for t in y]
        losses = model(list(x.to(device).unbind(0)), targets)
        return sum(losses.values()), len(x)
    logits = model(x.to(device)).float()
    y = y.to(device)
    if task == "binary":
        z = logits.reshape(len(logits), -1)[:, 0]
        raw = F.binary_cross_entropy_with_logits(z, y.float(), reduction="none")
        if weights is not None:
            raw = raw * weights.for_indices(idx, y.cpu()).to(device)
        return raw.mean(), len(x)
    return F.cross_entropy(logits, y), len(x)


# --------------------------------------------------------------------------- parameter groups


def head_params(model: nn.Module, arch: str) -> list[nn.Parameter]:
    from radview.models import arch as archmod

    if archmod.is_detector(arch):
        mods = [getattr(model, n) for n in ("rpn", "roi_heads", "head") if hasattr(model, n)]
        return [p for m in mods for p in m.parameters()]
    head = archmod.head_module(model, arch)
    if head is None:
        raise ValueError(f"no classifier head known for {arch}")
    return list(head.parameters())


def layer_groups(model: nn.Module, arch: str) -> list[list[nn.Parameter]]:
    """[early body, late body, head] (fastai's splitter), by parameter order."""
    if arch == "efficientnet_lite0":
        from radview.models.recipe import layer_groups_lite0

        return layer_groups_lite0(model)
    head = {id(p) for p in head_params(model, arch)}
    body = [p for p in model.parameters() if id(p) not in head]
    half = len(body) // 2
    return [body[:half], body[half:], [p for p in model.parameters() if id(p) in head]]


def _freeze(model: nn.Module, arch: str) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head_params(model, arch):
        p.requires_grad_(True)
    for m in model.modules():  # fastai's train_bn
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for p in m.parameters():
                p.requires_grad_(True)


def _unfreeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


def _optimizer(groups: list[list[nn.Parameter]], lrs: list[float], wd: float) -> torch.optim.Optimizer:
    pg = []
    for ps, lr in zip(groups, lrs):
        ps = [p for p in ps if p.requires_grad]
        decay = [p for p in ps if p.ndim > 1]
        no_decay = [p for p in ps if p.ndim <= 1]  # fastai: no weight decay on norms and biases
        if decay:
            pg.append({"params": decay, "lr": lr, "weight_decay": wd})
        if no_decay:
            pg.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})
    return torch.optim.AdamW(pg, betas=(0.9, 0.99), eps=1e-5)


def _one_cycle(opt: torch.optim.Optimizer, steps: int, pct_start: float, div: float):
    max_lr = [g["lr"] for g in opt.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=max(2, steps), pct_start=pct_start, anneal_strategy="cos",
        div_factor=div, final_div_factor=1e5 / div, cycle_momentum=True, base_momentum=0.85,
        max_momentum=0.95)


# --------------------------------------------------------------------------- helpers


def _bn_train_only(model: nn.Module, train: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(train)


def sync_buffers(model: nn.Module, dist) -> None:
    """Make every rank's buffers (batch-norm statistics) rank 0's."""
    if dist is None or dist.world_size < 2:
        return
    import torch.distributed as tdist

    for b in model.buffers():
        tdist.broadcast(b.data, 0)


def _loss_on(model: nn.Module, task: str, data: ImageSet, indices: Sequence[int], config: TrainConfig,
             device, weights, dist=None) -> float | None:
    """Mean loss over indices (each rank its share; all-reduced under DDP)."""
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    dl = loader(data, indices, config.batch_size, shuffle=False, rank=rank, world=world, drop_last=False)
    total, n = 0.0, 0
    was = model.training
    if task == "detection":
        model.train()
        _bn_train_only(model, False)  # detector losses need train mode; statistics stay put
    else:
        model.eval()
    with torch.no_grad():
        for batch in dl:
            if batch is None:
                continue
            x, y, idx = batch
            loss, b = _model_loss(model, task, x, y, idx, weights, device)
            total += float(loss) * b
            n += b
    model.train(was)
    if dist is not None and dist.world_size > 1:
        import torch.distributed as tdist

        t = torch.tensor([total, float(n)], dtype=torch.float64)
        tdist.all_reduce(t)
        tdist.broadcast(t, 0)
        total, n = float(t[0]), int(t[1])
    return total / n if n else None


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- fit


def fit(model: nn.Module, arch: str, task: str, data: ImageSet, train_idx: Sequence[int],
        val_idx: Sequence[int], config: TrainConfig, device, dist=None,
        weights: StudyTypeWeights | None = None) -> Iterator[Progress]:
    """See the module doc. The model is trained in place (best weights restored at the end)."""
    from radview.models.recipe import lr_slice, set_bn_momentum

    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    set_bn_momentum(model, config.bn_momentum)
    model.to(device)
    gen = torch.Generator()
    gen.manual_seed(config.seed * 7919 + rank)
    per_rank = len(train_idx) // world if world > 1 else len(train_idx)
    batches = max(1, math.ceil(per_rank / config.batch_size))
    phases = []
    if config.freeze_epochs:
        phases.append(("frozen", config.freeze_epochs))
    if config.epochs:
        phases.append(("unfrozen", config.epochs))
    total_steps = batches * sum(n for _p, n in phases)
    step = 0
    history: list[EpochEnd] = []
    seen: list[tuple[int, ...]] = []
    best_loss, best_state, best_epoch, bad = math.inf, None, 0, 0
    stopped = False
    epoch_no = 0
    all_epochs = sum(n for _p, n in phases)
    for phase, n_epochs in phases:
        if stopped:
            break
        if phase == "frozen":
            _freeze(model, arch)
            groups, lrs, pct, div = [[p for p in model.parameters() if p.requires_grad]], [config.lr], 0.99, 25.0
        else:
            _unfreeze(model)
            groups = layer_groups(model, arch)
            lrs = lr_slice(config.lr / 2 / config.lr_mult, config.lr / 2, len(groups))
            pct, div = 0.3, 5.0
        opt = _optimizer(groups, lrs, config.weight_decay)
        sched = _one_cycle(opt, batches * n_epochs, pct, div)
        net = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # buffers (batch-norm statistics) follow rank 0 at every forward (DDP's default)
            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        dl = loader(data, train_idx, config.batch_size, shuffle=True, seed=config.seed, rank=rank,
                    world=world, workers=config.workers)
        for e in range(n_epochs):
            epoch_no += 1
            if hasattr(dl.sampler, "set_epoch"):
                dl.sampler.set_epoch(epoch_no)
            model.train()
            if config.bn_frozen:
                _bn_train_only(model, False)
            tot, cnt, b_no = 0.0, 0, 0
            epoch_seen: list[int] = []
            for batch in dl:
                b_no += 1
                step += 1
                if batch is None or (len(batch[0]) < 2 and task != "detection"):
                    continue  # unreadable images only, or a lone image batch norm cannot train on
                x, y, idx = batch
                x, y = augment_batch(x, y, task, config, gen)
                loss, b = _model_loss(net, task, x, y, idx, weights, device)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched.last_epoch + 1 < sched.total_steps:
                    sched.step()
                epoch_seen.extend(int(i) for i in idx)
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise FloatingPointError(f"training diverged (loss {lv}) in epoch {epoch_no}; "
                                             f"try a lower learning rate than {config.lr:g}")
                tot += lv * b
                cnt += b
                yield Progress(step, total_steps,
                               f"{phase} epoch {e + 1}/{n_epochs} · batch {b_no}/{batches} · loss {lv:.4f}",
                               Step(phase, epoch_no, all_epochs, b_no, batches, lv, float(opt.param_groups[-1]["lr"])))
            seen.append(tuple(epoch_seen))
            sync_buffers(model, dist)
            val = _loss_on(model, task, data, val_idx, config, device, weights, dist) if val_idx else None
            train_loss = tot / cnt if cnt else float("nan")
            score = val if val is not None else train_loss
            improved = score < best_loss - config.min_delta
            if improved or best_state is None:
                best_loss, best_state, best_epoch, bad = score, _state(model), epoch_no, 0
            else:
                bad += 1
            stop = val is not None and bad >= config.patience and epoch_no < all_epochs
            end = EpochEnd(phase, epoch_no, all_epochs, train_loss, val, improved, stop)
            history.append(end)
            vtxt = f"{val:.4f}" if val is not None else "n/a"
            yield Progress(step, total_steps, f"epoch {epoch_no}/{all_epochs}: train loss {train_loss:.4f}, "
                                              f"valid loss {vtxt}" + (" (best)" if improved else ""), end)
            if stop:
                stopped = True
                break
        del net
    if best_state is not None:
        model.load_state_dict(best_state)
    _unfreeze(model)
    model.eval()
    result = FitResult(tuple(history), best_epoch, None if not val_idx else best_loss, stopped,
                       tuple(seen), step)
    yield Progress(total_steps, total_steps, f"training done (best epoch {best_epoch})", result)


# --------------------------------------------------------------------------- lr_find


def _valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's valley: the middle of the longest stretch of decreasing loss."""
    n = len(losses)
    lds = [1] * n
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
    max_end = int(np.argmax(lds))
    length = lds[max_end]
    start = max_end - length + 1
    sections = (max_end - start) / 3
    idx = start + int(sections) + int(sections / 2)
    return float(lrs[min(max(idx, 0), n - 1)])


def lr_find(model: nn.Module, arch: str, task: str, data: ImageSet, train_idx: Sequence[int],
            config: TrainConfig, device, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100,
            frozen: bool = True, weights: StudyTypeWeights | None = None) -> Iterator[Progress]:
    """See the module doc. The last Progress carries the LRFinderResult."""
    saved = _state(model)
    model.to(device)
    if frozen and task != "detection":
        _freeze(model, arch)
    else:
        _unfreeze(model)
    opt = _optimizer([[p for p in model.parameters() if p.requires_grad]], [start_lr], config.weight_decay)
    mult = (end_lr / start_lr) ** (1 / max(1, num_it - 1))
    gen = torch.Generator()
    gen.manual_seed(config.seed)
    lrs, losses = [], []
    avg, best = 0.0, math.inf
    it = 0
    epoch = 0
    try:
        model.train()
        if config.bn_frozen:
            _bn_train_only(model, False)
        while it < num_it:
            dl = loader(data, train_idx, config.batch_size, shuffle=True, seed=config.seed)
            if hasattr(dl.sampler, "set_epoch"):
                dl.sampler.set_epoch(epoch)
            epoch += 1
            progressed = False
            for batch in dl:
                if it >= num_it:
                    break
                if batch is None or (len(batch[0]) < 2 and task != "detection"):
                    continue
                progressed = True
                lr = start_lr * mult ** it
                for g in opt.param_groups:
                    g["lr"] = lr
                x, y, idx = batch
                x, y = augment_batch(x, y, task, config, gen)
                loss, _b = _model_loss(model, task, x, y, idx, weights, device)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lv = float(loss.detach())
                it += 1
                avg = 0.98 * avg + 0.02 * lv
                smooth = avg / (1 - 0.98 ** it)
                lrs.append(lr)
                losses.append(smooth)
                yield Progress(it, num_it, f"lr_find {it}/{num_it}: lr {lr:.2e} loss {smooth:.4f}")
                if not math.isfinite(smooth) or (it > 3 and smooth > 4 * best):
                    it = num_it
                    break
                best = min(best, smooth)
            if not progressed:
                raise ValueError("lr_find: no usable training batch (are the images readable?)")
    finally:
        model.load_state_dict(saved)
        _unfreeze(model)
        model.eval()
    lr_a, lo_a = np.asarray(lrs), np.asarray(losses)
    ok = np.isfinite(lo_a)
    lr_a, lo_a = lr_a[ok], lo_a[ok]
    if len(lo_a) < 3:
        raise ValueError("lr_find: the loss diverged at once; too few points for a suggestion")
    # drop the last few points (the divergence) as fastai does
    cut = max(3, len(lo_a) - 3) if len(lo_a) > 6 else len(lo_a)
    lr_c, lo_c = lr_a[:cut], lo_a[:cut]
    minimum = float(lr_c[int(np.argmin(lo_c))]) / 10
    grads = np.gradient(lo_c, np.log(lr_c))
    steep = float(lr_c[int(np.argmin(grads))])
    valley = _valley(lr_c, lo_c)
    result = LRFinderResult(tuple(float(v) for v in lr_a), tuple(float(v) for v in lo_a), valley, valley,
                            steep, minimum)
    yield Progress(num_it, num_it, f"suggested learning rate {valley:.2e}", result)


# --------------------------------------------------------------------------- predict


def predict(model: nn.Module, task: str, data: ImageSet, indices: Sequence[int], device,
            batch_size: int = 16) -> tuple[list[int], Any]:
    """(indices predicted (unreadable ones left out), outputs): probs (N, K) float64 for
    classifiers ((1-p, p) for binary), for detectors a list of (boxes xyxy in input pixels,
    scores) numpy pairs."""
    dl = loader(data, indices, batch_size, shuffle=False, drop_last=False)
    model.eval()
    done: list[int] = []
    outs: list = []
    with torch.inference_mode():
        for batch in dl:
            if batch is None:
                continue
            x, _y, idx = batch
            x = x.to(device)
            if task == "detection":
                for o in model(list(x.unbind(0))):
                    outs.append((o["boxes"].float().cpu().numpy(), o["scores"].float().cpu().numpy()))
            else:
                logits = model(x).float()
                if task == "binary":
                    p = torch.sigmoid(logits.reshape(len(logits), -1)[:, 0])
                    outs.append(torch.stack([1 - p, p], 1).cpu().numpy())
                else:
                    outs.append(torch.softmax(logits, 1).cpu().numpy())
            done.extend(int(i) for i in idx)
    if task == "detection":
        return done, outs
    k = 2 if task == "binary" else None
    return done, (np.concatenate(outs).astype(np.float64) if outs else np.zeros((0, k or 0)))


def clone_for_training(module: nn.Module) -> nn.Module:
    """A trainable copy of a (frozen, cached) inference module."""
    m = copy.deepcopy(module)
    _unfreeze(m)
    return m
