"""torch.distributed plumbing: one process per device, launched by torchrun or accelerate.

Both launchers set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``; we
initialise the default process group from them (gloo on CPU, nccl on CUDA). Every
statistic that decides training (BatchTopK threshold, dead-latent counters, b_dec init,
normalisation) is reduced over ranks here, so all ranks hold identical state.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from radinterp import devices
from sae_training.batchtopk import Collectives


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    """Global rank."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this machine (picks the GPU)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise the process group when launched with several processes; else a no-op."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    return DistInfo(0, 1, 0)


def resolve_device(device: str, info: DistInfo) -> torch.device:
    return devices.resolve_device(device, info.local_rank)


def all_reduce_(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (sum/max/min) when distributed; returns ``t``."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        dist.all_reduce(t, op=ops[op])
    return t


def sum_int(value: int, device: torch.device) -> int:
    t = torch.tensor([value], dtype=torch.int64, device=device)
    return int(all_reduce_(t).item())


def gather_values(t: torch.Tensor) -> torch.Tensor:
    """Concatenate 1-D tensors of different lengths from all ranks (rank order)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return t
    world = dist.get_world_size()
    n = torch.tensor([t.numel()], dtype=torch.int64, device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_i = [int(s.item()) for s in sizes]
    pad = max(sizes_i)
    buf = torch.zeros(pad, dtype=t.dtype, device=t.device)
    buf[: t.numel()] = t
    out = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(out, buf)
    return torch.cat([o[:s] for o, s in zip(out, sizes_i)])


def collectives(device: torch.device) -> Collectives:
    """The reductions BatchTopK selection needs, over the default process group."""
    return Collectives(sum_int=lambda v: sum_int(v, device), gather_values=gather_values)


def broadcast_object(obj: object, src: int = 0) -> object:
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
