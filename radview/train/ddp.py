"""Distributed training: the same entry point runs alone or under torchrun.

`torchrun --nproc_per_node N [--nnodes M --node_rank R --rdzv_endpoint HOST:PORT] -m radview train
--model NAME ...` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `setup()`
notices them and joins the process group (NCCL on CUDA, gloo on CPU). Each rank trains on its
share of every epoch (radview.train.dataset: disjoint, equal-length shares), gradients are
averaged by DistributedDataParallel, and only rank 0 evaluates, writes the version, touches the
label store and prints. `spawn_local(n, fn, *args)` starts n local CPU processes without torchrun
(tests, quick experiments).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    owns_group: bool  # we initialised the process group (and tear it down)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def setup(device) -> DistContext | None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); None when alone."""
    import torch
    import torch.distributed as dist

    if env_world_size() <= 1 and not (dist.is_available() and dist.is_initialized()):
        return None
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if getattr(device, "type", "cpu") == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        owns = True
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.set_device(local)
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dist.get_backend(), owns)


def cuda_device_for(ctx: DistContext | None, device):
    """Under DDP on CUDA each local rank uses its own GPU."""
    import torch

    if ctx is not None and getattr(device, "type", "cpu") == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def barrier(ctx: DistContext | None) -> None:
    if ctx is not None and ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(ctx: DistContext | None, obj: Any) -> Any:
    """rank 0's obj on every rank."""
    if ctx is None or ctx.world_size < 2:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def teardown(ctx: DistContext | None) -> None:
    if ctx is not None and ctx.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    import torch

    torch.set_num_threads(1)
    fn(rank, *args)


def spawn_local(nprocs: int, fn: Callable, *args: Any) -> None:
    """Run fn(rank, *args) in nprocs fresh processes (CPU, gloo) as torchrun would; fn must be
    importable (a module-level function). Raises if a process fails."""
    import torch.multiprocessing as mp

    mp.spawn(_entry, args=(nprocs, free_port(), fn, args), nprocs=nprocs, join=True)
