"""Data-parallel training over several processes (torchrun + torch.distributed), and device choice.

``torchrun --nproc_per_node N`` starts N copies of the training command and tells each its place
through the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT). Each process trains the
same model on its own clips; DistributedDataParallel averages the gradients, so all copies take the
same optimizer step and stay identical. Without torchrun (or with one process) nothing here talks to
other processes and training is exactly the single-process program.

Every function taking a DistributedContext is a collective when ``ctx.world_size > 1``: all ranks
must call it, in the same order, or they wait for each other forever.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from vidcodec.errors import ConfigError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits among the training processes.

    rank: 0..world_size-1, unique over all machines; rank 0 writes every file.
    world_size: number of training processes (1: no process group).
    local_rank: index of this process on its machine; picks its GPU.
    device: where the model and batches live (cuda:local_rank when CUDA is available, else cpu).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def default_device(local_rank: int = 0) -> torch.device:
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def single_process_context() -> DistributedContext:
    """One process, on the first GPU when there is one, else on the CPU."""
    return DistributedContext(rank=0, world_size=1, local_rank=0, device=default_device())


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment {name}={value!r} (expected an integer, as torchrun sets it)") from None


def init_distributed() -> DistributedContext:
    """Read torchrun's environment and join the process group when there is more than one process.

    NCCL is the backend for GPUs (it reduces on the device); gloo is the one that works on CPUs.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"environment RANK={rank}, WORLD_SIZE={world_size} (expected 0 <= RANK < WORLD_SIZE)")
    device = default_device(local_rank)
    if device.type == "cuda":
        # NCCL collectives and object gathers use the "current" GPU: make it this rank's.
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed(ctx: DistributedContext) -> None:
    """Leave the process group, so that the process exits without NCCL/gloo warnings or hangs."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_data_parallel(model: torch.nn.Module, ctx: DistributedContext, ignored: list[str]) -> torch.nn.Module:
    """The module to call for the forward pass: DDP around ``model`` with several processes, else model.

    ``ignored``: fully qualified names of parameters DDP must leave alone because another loss
    trains them (the entropy bottlenecks' quantiles); their gradients are averaged with
    ``average_gradients`` instead. DDP's way to name them is a static method that torch marks as a
    workaround (pytorch issue 43690); it only sets an attribute that DDP's constructor reads.
    """
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignored)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def average_gradients(parameters: Iterable[torch.nn.Parameter], ctx: DistributedContext) -> None:
    """Replace each gradient by its mean over the ranks (for parameters trained outside DDP).

    Few, small tensors (the quantiles): one all-reduce each is simpler than packing them and costs
    nothing next to a training step.
    """
    if not ctx.distributed:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad.div_(ctx.world_size)


def average_values(values: list[float], ctx: DistributedContext) -> list[float]:
    """Mean of each number over the ranks (losses for the log: the whole global batch, not rank 0's)."""
    if not ctx.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return (tensor / ctx.world_size).tolist()


def main_rank_decides(decision: bool, ctx: DistributedContext) -> bool:
    """Rank 0's ``decision`` on every rank.

    Decisions taken on a clock (save a checkpoint now?) differ between processes; a checkpoint
    gathers state from every rank, so a rank that decided otherwise would leave the others waiting.
    """
    if not ctx.distributed:
        return decision
    flag = torch.tensor([int(decision)], device=ctx.device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def gather_to_main(value: Any, ctx: DistributedContext) -> list[Any] | None:
    """[value of rank 0, value of rank 1, ...] on rank 0, None on the others (picklable values)."""
    if not ctx.distributed:
        return [value]
    gathered: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered
