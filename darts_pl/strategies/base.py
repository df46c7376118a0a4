"""How alpha gradients are computed. A strategy sees only the search space's alphas and weights, a
train batch, a val batch and the weight optimizer's state; CNN vs RNN specifics live in the space.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch.func import functional_call

from darts_pl.search.base import LossOutput, SearchSpace, Stream


class ArchStep(NamedTuple):
    """Alpha gradients (in ``space.arch_parameters()`` order) and the val loss they came from."""

    grads: list[torch.Tensor]
    val: LossOutput


class ArchStrategy(ABC):
    """Computes dL_val/dalpha for one alpha step."""

    #: Evaluates the space at virtual weights and finite differences (second order): refused with a
    #: stochastic relaxation.
    unrolled: bool = False

    @abstractmethod
    def arch_gradients(self, space: SearchSpace, train_batch: Any, val_batch: Any,
                       weight_optimizer: torch.optim.Optimizer, grad_clip: float | None = None) -> ArchStep:
        """Alpha gradients; must leave the live weights, their ``.grad`` and the optimizer untouched."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def evaluate(space: SearchSpace, batch: Any, stream: Stream,
             weights: dict[str, torch.Tensor] | None = None) -> LossOutput:
    """The space's loss on ``batch``, with ``weights`` (by parameter name) in place of the live ones."""
    if weights is None:
        return space(batch, stream)
    return functional_call(space, weights, (batch, stream), strict=False)


def grads_or_zeros(outputs: torch.Tensor, inputs: Sequence[torch.Tensor], **kwargs: Any) -> list[torch.Tensor]:
    """``torch.autograd.grad`` with zeros for inputs the output does not depend on."""
    grads = torch.autograd.grad(outputs, list(inputs), allow_unused=True, **kwargs)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
