"""The few collective operations the search needs beyond what DDP does by itself.

DDP averages the gradients that ``backward`` accumulates into ``.grad`` (the weight step). The alpha
gradients, and every intermediate gradient of the second-order step, come from ``torch.autograd.grad``,
which DDP never sees: they are averaged here, so that every rank computes the gradient of the global
batch and ends each step with bit-identical alphas.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import lightning as L
import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Average ``tensors`` in place over all ranks (one flat buffer, one collective); no-op on one rank."""
    size = world_size()
    if size == 1 or not tensors:
        return
    flat = _flatten_dense_tensors([t.detach() for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= size
    for tensor, reduced in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
        tensor.copy_(reduced)


def all_reduce_min_(tensor: torch.Tensor) -> None:
    """The minimum of ``tensor`` over all ranks, in place; no-op on one rank."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)


def broadcast_(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s values of ``tensors`` to every rank."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=src)


def configure_cpu_threads(trainer: L.Trainer) -> None:
    """One intra-op thread per process for CPU runs with several processes per machine.

    Two processes that each spin the default number of OpenMP threads on the same cores slow each other
    down several-fold; ``OMP_NUM_THREADS`` set by the user wins.
    """
    on_cpu = trainer.strategy.root_device.type == "cpu"
    local_processes = getattr(trainer.strategy, "num_processes", 1)
    if on_cpu and local_processes > 1 and "OMP_NUM_THREADS" not in os.environ:
        cores = os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // local_processes))
