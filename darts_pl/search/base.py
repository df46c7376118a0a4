"""The interface every search space (supernet) implements, so one bilevel loop and one set of
strategies serve convolutional and recurrent cells alike.

A search space is an ``nn.Module`` that owns its architecture parameters (alphas) as registered
``nn.Parameter``s whose names start with ``alpha_``; every other parameter is a weight. Its ``forward``
is its training objective: ``space(batch, stream)`` returns a :class:`LossOutput`. Strategies evaluate
it with replaced weights through ``torch.func.functional_call(space, {name: tensor}, (batch, stream))``.

Streams: ``"train"`` batches drive weight steps, ``"val"`` batches drive alpha steps. A space with
state carried across batches (the RNN's hidden state) keeps it per stream: each forward on a stream
reads the committed state and leaves its successor pending; the loop calls :meth:`commit` at the end
of the phase that owns the stream, so the last evaluation of the phase is the one carried forward.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError

Stream = Literal["train", "val"]
ARCH_PREFIX = "alpha_"



class LossOutput(NamedTuple):
    """What a space's forward returns: the scalar loss, and predictions/targets for metrics."""

    loss: torch.Tensor
    preds: torch.Tensor | None = None
    target: torch.Tensor | None = None


class SearchSpace(nn.Module, ABC):
    """Base class of supernets with architecture parameters.

    Subclasses register their alphas as ``nn.Parameter`` attributes named ``alpha_<cell type>`` and
    implement :meth:`forward`, :meth:`edge_probs` and :meth:`genotype`.
    """

    #: The RNN recipe clips the training gradient before the unrolled (virtual) step; the CNN one does not.
    clips_virtual_step: bool = False

    # ------------------------------------------------------------------ parameters
    def named_arch_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if n.startswith(ARCH_PREFIX))

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if not n.startswith(ARCH_PREFIX))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_arch_parameters()]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weight_parameters()]

    # ------------------------------------------------------------------ objective
    @abstractmethod
    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        """The loss on ``batch``. ``regularized`` adds training-only penalties (the RNN's TAR)."""

    def commit(self, stream: Stream) -> None:
        """Carry the pending state of ``stream`` into the next batch (no-op for stateless spaces)."""

    def reset_state(self) -> None:
        """Forget carried state, e.g. at the start of an epoch (no-op for stateless spaces)."""

    def lr_scale(self, batch: Any) -> float:
        """Factor on the weight learning rate for this batch (the RNN's variable sequence length)."""
        return 1.0

    # ------------------------------------------------------------------ architecture
    @abstractmethod
    def edge_probs(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per cell type: ``{"normal": (edges, ops), ...}``, detached."""

    @abstractmethod
    def genotype(self) -> Any:
        """The discrete cell derived from the current probabilities."""

    def edge_labels(self) -> list[str]:
        """Human-readable edge names, in alpha row order (``"c_{k-2} -> 0"``...)."""
        return [str(i) for i in range(next(iter(self.edge_probs().values())).shape[0])]

    @property
    def primitives(self) -> list[str]:
        raise NotImplementedError


def init_alpha(num_edges: int, num_ops: int, init: Literal["randn", "zeros"], scale: float) -> nn.Parameter:
    """Alphas as the original code initialises them (``scale · N(0, 1)``) or as the paper says (zeros)."""
    if init == "zeros":
        return nn.Parameter(torch.zeros(num_edges, num_ops))
    if init == "randn":
        return nn.Parameter(scale * torch.randn(num_edges, num_ops))
    raise ConfigurationError(f"Unknown alpha_init {init!r}; use 'randn' (original code) or 'zeros' (paper).")
