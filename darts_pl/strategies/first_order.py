"""First-order DARTS: the alpha gradient at the current weights, dL_val(w, alpha)/dalpha (paper Sec. 2.3,
xi = 0)."""
from __future__ import annotations

from typing import Any

import torch

from darts_pl.distributed import all_reduce_mean_
from darts_pl.search.base import SearchSpace
from darts_pl.strategies.base import ArchStep, ArchStrategy, evaluate, grads_or_zeros


class FirstOrder(ArchStrategy):
    """dL_val(w, alpha)/dalpha. Runs the space on detached copies of the weights (views, no data copied)
    through ``torch.func.functional_call``, so autograd records no weight edge and no weight-gradient
    kernel runs."""

    def arch_gradients(self, space: SearchSpace, train_batch: Any, val_batch: Any,
                       weight_optimizer: torch.optim.Optimizer, grad_clip: float | None = None) -> ArchStep:
        weights = {name: w.detach() for name, w in space.named_weight_parameters()}
        val = evaluate(space, val_batch, "val", weights)
        grads = grads_or_zeros(val.loss, space.arch_parameters())
        all_reduce_mean_(grads)  # the global batch's gradient under DDP
        return ArchStep(grads, val._replace(loss=val.loss.detach()))
