"""``WarmStart``: a search that starts where an earlier one ended, on a wider supernet with fewer ops per edge
(DrNAS's progressive learning: Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021, Sec. 3.3; the
authors' ``DARTS-space/train_search.py`` between its two stages: ``model.pruning``, ``model.wider``,
``configure_optimizer`` and ``configure_scheduler`` of ``net2wider.py``).

What the authors' code carries from stage 1 into stage 2, and so what this callback carries from the earlier run's
checkpoint into the new run before its first step:

* the weights: every tensor as it was, the candidate ops widened to the new partial-channel width by
  :func:`darts_pl.widening.widening_plan` (copies of randomly picked channels, drawn in their order from a generator
  seeded ``seed``); the ops an edge no longer has are left out;
* the architecture tensors as they were, with the values of the ops an edge no longer has set to 0 (their ``prune``:
  the kept values stay, the others are zeroed; the relaxation masks those ops from then on,
  ``CNNSearchSpace(alpha_columns="primitives")``); the parts' own state (the Dirichlet sampler's generator) as it
  was, so the samples continue;
* the weight optimizer's state (momentum buffers) widened like the weights (``configure_optimizer``), and the
  architecture optimizer's state as it was (their Adam is the same object through both stages);
* the weight scheduler's state (``configure_scheduler``: one cosine over both stages' epochs, continued), while the
  weight optimizer's learning rate is the configured initial one until the scheduler's first step: their stage 2
  builds a new SGD at ``--learning_rate`` and only loads the old scheduler's state, so its first epoch runs at the
  initial rate, and each later step scales the rate by the cosine's ratio of consecutive epochs (``CosineAnnealingLR``'s
  recursive step), from that initial rate.

The warm-up is not carried: the new run's ``warmup_epochs`` count its own epochs, as the authors' ``epoch >= 10``
counts the stage's. A run resumed from its own checkpoint (``--ckpt_path``) has all of this in that checkpoint: the
callback then does nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn as nn
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from darts_pl.checkpoints import read_checkpoint_header
from darts_pl.errors import ConfigurationError
from darts_pl.widening import Widen, widen_state, widening_plan


class WarmStart(Callback):
    """Start a fresh search from an earlier search's checkpoint, widening its candidate ops (module docstring).

    Args:
        checkpoint: A checkpoint of a ``darts-pl`` search (``LitSearch.load_from_checkpoint`` rebuilds its model
            from it): the previous stage's last one.
        seed: Seed of the generator the widening's channel picks are drawn from (the same on every rank).

    Raises:
        ConfigurationError: The checkpoint is missing or damaged, or its supernet is not a narrower version of this
            run's (other cells, other parts, narrower ops).
    """

    def __init__(self, checkpoint: str, seed: int = 0) -> None:
        self.checkpoint = checkpoint
        self.seed = seed

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and not Path(self.checkpoint).is_file():
            raise ConfigurationError(f"WarmStart: checkpoint={self.checkpoint!r} is not a file; give the last "
                                     "checkpoint of the run this search continues.")

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is not None:
            return  # resumed: its own checkpoint holds the started state
        from darts_pl.modules import LitSearch

        read_checkpoint_header(self.checkpoint)  # one line for a damaged file
        previous = LitSearch.load_from_checkpoint(self.checkpoint, map_location="cpu")
        saved = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        space = pl_module.space
        state, plan = started_state(previous.space, space, torch.Generator().manual_seed(self.seed))
        space.load_state_dict(state)
        weight_opt, arch_opt = (opt.optimizer if hasattr(opt, "optimizer") else opt for opt in trainer.optimizers)
        carry_optimizer_state(weight_opt, space.named_weight_parameters(), previous.space.named_weight_parameters(),
                         saved["optimizer_states"][0], plan)
        carry_optimizer_state(arch_opt, space.named_arch_parameters(), previous.space.named_arch_parameters(),
                         saved["optimizer_states"][1], {f"arch.{n}": Widen(f"arch.{n}") for n in space.arch})
        schedulers = saved.get("lr_schedulers") or []
        if schedulers and trainer.lr_scheduler_configs:
            trainer.lr_scheduler_configs[0].scheduler.load_state_dict(schedulers[0])
        rank_zero_info(f"WarmStart: started from {self.checkpoint} (epoch {saved.get('epoch')}): weights widened "
                       f"(seed {self.seed}), alphas, optimizer and scheduler states carried over.")


def started_state(previous: nn.Module, space: nn.Module,
                  generator: torch.Generator) -> tuple[dict[str, Any], dict[str, Widen]]:
    """``space``'s state dict from the end of ``previous`` (both search spaces): the candidate ops widened
    (:func:`~darts_pl.widening.widening_plan`, picks from ``generator``), the op tensors with the ops an edge of
    ``space`` lacks set to 0 (the authors' ``prune``: the kept values stay), everything else copied; and the plan."""
    plan = widening_plan(previous, space, generator)
    state = widen_state(plan, previous.state_dict(), space.state_dict())
    for cell, mask in space.op_masks.items():
        key = f"arch.{cell}"
        state[key] = state[key].masked_fill(~mask.to(state[key].device), 0.0)  # (edges, ops)
    return state, plan


def carry_optimizer_state(optimizer: torch.optim.Optimizer, new_named: Any, old_named: Any, old_state: dict[str, Any],
                     plan: dict[str, Widen]) -> None:
    """Give each parameter of ``optimizer`` the state its source parameter had in the old optimizer (the authors'
    ``configure_optimizer``: the momentum buffers widened as the weights, by ``plan``).

    Args:
        optimizer: The new run's optimizer.
        new_named: ``(name, parameter)`` of its parameters (names of the new space's state dict).
        old_named: The old optimizer's parameters' names, in its order (a saved state numbers them by position).
        old_state: The old optimizer's ``state_dict()``.
        plan: Where each new parameter comes from (:func:`~darts_pl.widening.widening_plan`).
    """
    old_index = {name: i for i, (name, _) in enumerate(old_named)}
    saved = old_state.get("state", {})
    for name, param in new_named:
        widen = plan.get(name)
        source = old_index.get(widen.source) if widen is not None else None
        if source is None or source not in saved:
            continue
        entry = {}
        for key, value in saved[source].items():
            if torch.is_tensor(value) and value.dim() > 0:
                value = widen.apply(value).to(param.device)
            entry[key] = value
        optimizer.state[param] = entry
