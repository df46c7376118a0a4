"""Random-number-generator state in checkpoints, so a resumed run continues exactly where it stopped.

Lightning checkpoints hold weights, optimizers, schedulers and loop counters, not the generators that
shuffle the data, draw augmentations and dropout masks. ``ResumableRNG`` stores them with every
checkpoint and puts them back when the checkpoint is loaded. Lightning creates exactly one training
iterator per epoch (after the restore, or after the previous epoch's checkpoint), so the resumed run draws
the same shuffles as the uninterrupted one, provided nothing in between draws from the global generators:
evaluation loaders therefore own their generator (see ``ClassificationDataModule``).

Under DDP every rank has its own generators: the checkpoint holds one set per rank (gathered to rank 0,
which writes the file), and each rank gets its own back. Resumed on another number of processes, ranks
below both counts get their own back, the checkpoint's other sets are dropped and extra ranks keep the
generators this run seeded; one warning says so (the data shards differ then anyway).
"""
from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_warn


def collect_rng_states() -> dict[str, Any]:
    """The generators' states in types ``torch.load(weights_only=True)`` accepts (tensors, tuples, ints)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {"torch": torch.get_rng_state(),
                              "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos),
                                        int(has_gauss), float(gauss)),
                              "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()  # this process's device; other ranks save theirs
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        if isinstance(states["cuda"], (list, tuple)):  # older checkpoints: every visible device's
            torch.cuda.set_rng_state_all(states["cuda"])
        else:
            torch.cuda.set_rng_state(states["cuda"])


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's generator states, in rank order (a collective under DDP: call it on every rank)."""
    states = collect_rng_states()
    _, world = _rank_and_world()
    if world == 1:
        return [states]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, states)
    return gathered


def restore_rng_states(saved: list[dict[str, Any]] | dict[str, Any]) -> None:
    """Give this rank the states it saved (see the module docstring for another number of processes)."""
    per_rank = [saved] if isinstance(saved, dict) else list(saved)  # older checkpoints: rank 0's only
    rank, world = _rank_and_world()
    if len(per_rank) != world:
        kept = min(len(per_rank), world)
        back = "rank 0 gets its own back" if kept == 1 else f"ranks 0-{kept - 1} get their own back"
        rest = ", the other ranks keep this run's seeding" if world > kept else ""
        rank_zero_warn(f"The checkpoint holds the random generators of {len(per_rank)} process(es) and this run has "
                       f"{world}: {back}{rest}; random draws differ from an uninterrupted run.")
    if rank < len(per_rank):
        set_rng_states(per_rank[rank])


class ResumableRNG(L.LightningModule):
    """Mixin for LightningModules: saves the RNG states with each checkpoint and restores them."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = gather_rng_states()  # Lightning builds the checkpoint on every rank

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])
