"""Random-number-generator state in checkpoints, so a resumed run continues exactly where it stopped.

Lightning checkpoints hold weights, optimizers, schedulers and loop counters, not the generators that
shuffle the data, draw augmentations and dropout masks. ``ResumableRNG`` stores them with every
checkpoint and puts them back when the checkpoint is loaded. Lightning creates exactly one training
iterator per epoch (after the restore, or after the previous epoch's checkpoint), so the resumed run draws
the same shuffles as the uninterrupted one, provided nothing in between draws from the global generators:
evaluation loaders therefore own their generator (see ``ClassificationDataModule``).
"""
from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def collect_rng_states() -> dict[str, Any]:
    """The generators' states in types ``torch.load(weights_only=True)`` accepts (tensors, tuples, ints)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {"torch": torch.get_rng_state(),
                              "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos),
                                        int(has_gauss), float(gauss)),
                              "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumableRNG(L.LightningModule):
    """Mixin for LightningModules: saves the RNG states with each checkpoint and restores them."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = collect_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
