"""Scale-out inference: an archive split into disjoint shards, one per rank, results in the store.

    shard = Shard(index=1, count=4)                  # or parse_shard("1/4"), or from_env() under torchrun
    mine = select(scan_result.studies, shard, root=scan_result.root)
    for p in predict_shard(mine, model, store):      # a generator of ShardProgress (cancel: close it)
        ...
    p.errors                                          # the last one: Predictions that failed (not stored)

- Shards are made of whole studies (the study answer needs every view on one rank).
  `by="hash"` (default): a study's shard is a stable hash (BLAKE2b) of its key, relative to the
  scanned folder when the key is a path under it, modulo the shard count: it depends on the study
  alone, so ranks that scan separately (`radview predict --shard K/N` on several machines), an
  archive that grows between runs or a folder mounted elsewhere never move a study to another
  shard. `by="index"`: the studies sorted by that key, dealt round-robin: sizes equal within one,
  but every rank must see the same list (under torchrun rank 0 scans and broadcasts it).
- `predict_shard` asks the store which images of the shard this model and version already
  predicted (`store.get_predictions`, which also drops entries whose file changed since) and runs
  the model on the rest only, writing each batch to the store as it comes (`store.put_predictions`:
  one transaction per batch, SQLite WAL with retried write locks or PostgreSQL). A rank killed
  mid-run leaves every finished batch stored; running the same command again resumes.
  Predictions with an error are not stored (a file that could not be read is tried again).
- torchrun: `join_group()` joins the gloo process group when WORLD_SIZE > 1 (gloo also on GPU
  nodes: the group only carries the scan, a barrier and the per-rank summaries); `broadcast`,
  `gather`, `leave`. The group's timeout is RADVIEW_DIST_TIMEOUT seconds (default 24 h: rank 0
  waits at the final barrier for the slowest shard). `rank_device(preferred, local_rank)` gives
  each local rank its own GPU; `rank_threads(local_world)` shares the CPU cores (less one) between
  the local ranks.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from radview.types import ImageRef, Prediction, Study

BY = ("hash", "index")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    by: str = "hash"

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= K < N (K/N, e.g. 0/4)")
        if self.by not in BY:
            raise ValueError(f"shard by {self.by!r}: one of {', '.join(BY)}")

    @property
    def text(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, by: str = "hash") -> Shard:
    """'K/N' (0-based K) -> Shard; ValueError naming the text otherwise."""
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N with integers, e.g. 0/4") from None
    return Shard(k, n, by)


def from_env(by: str = "hash") -> Shard | None:
    """The torchrun rank's shard (RANK of WORLD_SIZE), None when not launched as several ranks."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return None
    return Shard(rank, world, by) if world > 1 else None


def shard_key(study_key: str, root: str | None = None) -> str:
    """The text a study is sharded by: its key relative to the scanned folder when under it
    ('/' separators), else the key itself (a StudyInstanceUID)."""
    if root:
        base = os.path.abspath(root)
        if os.path.isfile(base):
            base = os.path.dirname(base)
        if study_key == base or study_key.startswith(base.rstrip(os.sep) + os.sep):
            return os.path.relpath(study_key, base).replace(os.sep, "/")
    return study_key


def shard_of(key: str, count: int) -> int:
    """Stable shard of a shard key: the same on every machine, Python version and run."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def select(studies: Sequence[Study], shard: Shard, root: str | None = None) -> list[Study]:
    """The studies of this shard, in their given order."""
    if shard.count == 1:
        return list(studies)
    keys = [shard_key(s.key, root) for s in studies]
    if shard.by == "hash":
        return [s for s, k in zip(studies, keys) if shard_of(k, shard.count) == shard.index]
    order = sorted(range(len(studies)), key=lambda i: (keys[i], studies[i].key))
    mine = {i for pos, i in enumerate(order) if pos % shard.count == shard.index}
    return [s for i, s in enumerate(studies) if i in mine]


def owns_path(path: str, shard: Shard, root: str | None = None) -> bool:
    """Whether a file outside any study (a scan error) is reported by this shard (hash rule)."""
    return shard.count == 1 or shard_of(shard_key(path, root), shard.count) == shard.index


# --------------------------------------------------------------------------- one rank's work


@dataclass(frozen=True)
class ShardProgress:
    """studies / images: in the shard; already_done: found in the store for this model version;
    predicted: written by this run so far; failed: images that failed so far (not stored)."""

    shard: Shard
    studies: int
    images: int
    already_done: int
    predicted: int
    failed: int
    finished: bool = False
    errors: tuple[Prediction, ...] = field(default=(), repr=False)  # on the finished one


def refs_of(studies: Sequence[Study]) -> list[ImageRef]:
    return [v.ref for s in studies for v in s.views]


def predict_shard(studies: Sequence[Study], model, store, shard: Shard | None = None, *,
                  batch_size: int = 8, gate: bool = True, workers: int = 2,
                  decoder: str | None = None) -> Iterator[ShardProgress]:
    """Predict the images of `studies` that `store` does not yet hold for this model version,
    storing each batch as it finishes (see the module doc). Yields after every batch."""
    from radview.models.engine import iter_predict

    shard = shard or Shard(0, 1)
    m = model.manifest
    refs = list(dict.fromkeys(refs_of(studies)))  # a file in two studies is predicted once
    done = store.get_predictions(m.name, m.version, refs)
    todo = [r for r in refs if r.key not in done]
    base = dict(shard=shard, studies=len(studies), images=len(refs), already_done=len(refs) - len(todo))
    n_ok = 0
    errors: list[Prediction] = []
    batch: list[Prediction] = []
    yield ShardProgress(predicted=0, failed=0, finished=not todo, **base)
    if not todo:
        return
    preds = iter_predict(todo, model, batch_size=batch_size, gate=gate, workers=workers, decoder=decoder)
    try:
        for i, pred in enumerate(preds, 1):
            if pred.error:
                errors.append(pred)
            else:
                batch.append(pred)
            if i % batch_size == 0 or i == len(todo):  # the engine's batches
                if batch:
                    n_ok += store.put_predictions(batch)
                    batch = []
                yield ShardProgress(predicted=n_ok, failed=len(errors), **base)
    finally:
        preds.close()
    if batch:  # only when iter_predict yielded fewer than asked (it does not)
        n_ok += store.put_predictions(batch)
    yield ShardProgress(predicted=n_ok, failed=len(errors), finished=True, errors=tuple(errors), **base)


# --------------------------------------------------------------------------- torchrun


@dataclass(frozen=True)
class Group:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    owns: bool  # we initialised the process group (and destroy it)


def join_group() -> Group | None:
    """Join torchrun's process group (gloo) when WORLD_SIZE > 1; None when alone."""
    if from_env() is None:
        return None
    import datetime

    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    owns = False
    if not dist.is_initialized():
        seconds = float(os.environ.get("RADVIEW_DIST_TIMEOUT", "") or 24 * 3600)
        dist.init_process_group(backend="gloo", timeout=datetime.timedelta(seconds=seconds))
        owns = True
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0) or dist.get_world_size()
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0") or 0),
                 local_world, owns)


def broadcast(group: Group | None, obj):
    """rank 0's obj on every rank."""
    if group is None:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(group: Group | None, obj) -> list | None:
    """[obj of rank 0, rank 1, ...] on rank 0, None elsewhere (alone: [obj]). Also a barrier."""
    if group is None:
        return [obj]
    import torch.distributed as dist

    out = [None] * group.world_size if group.rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def leave(group: Group | None, finished: bool = False) -> None:
    """Leave the process group. After a normal finish every rank first meets the others (a
    bounded barrier): a rank that tore gloo down while rank 0 was still writing the outputs was
    seen to abort at exit ("terminate called without an active exception", exit -6)."""
    if group is not None and group.owns:
        import datetime

        import torch.distributed as dist

        if dist.is_initialized():
            if finished and group.world_size > 1:
                try:
                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=120))
                except RuntimeError:  # a peer failed after its own work: its error is its own to report
                    pass
            dist.destroy_process_group()


def rank_device(preferred: str | None, local_rank: int):
    """The rank's device: its own GPU (cuda:LOCAL_RANK) when CUDA is chosen, else as asked."""
    import torch

    from radview.models.registry import select_device

    dev = select_device(preferred)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return dev


def rank_threads(local_world: int) -> int:
    """Torch threads for one of `local_world` CPU ranks on this machine: the cores shared out, one
    kept back as a one-process predict does (scripts/bench_predict_ranks.py: on 2 loaded cores one
    rank with 2 intra-op threads ran 13x slower than 2 ranks x 1 thread; 1 x 1 was 1.4x slower)."""
    return max(1, ((os.cpu_count() or 1) - 1) // max(1, local_world))
