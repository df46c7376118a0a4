"""The interface every search space (supernet) implements, so one bilevel loop and one set of
strategies serve convolutional and recurrent cells alike.

A search space is an ``nn.Module`` that owns its architecture tensors explicitly, in one container,
``space.arch`` (an ``nn.ParameterDict``: one ``(edges, ops)`` tensor per cell type, ``"normal"`` and
``"reduce"`` or ``"recurrent"``, plus any further tensor a method needs); every other parameter is a
weight. Nothing is found by name: the arch optimizer, DDP, checkpoints and monitors all read ``space.arch``.

The space is given its parts: a :class:`~darts_pl.search.relaxation.Relaxation` (architecture tensor →
edge weights of one forward, and the probabilities monitors read) and a
:class:`~darts_pl.search.derivation.Derivation` (probabilities → genotype). Its ``forward`` is its training
objective: ``space(batch, stream)`` returns a :class:`LossOutput`. Strategies evaluate it with replaced
weights through ``torch.func.functional_call(space, {name: tensor}, (batch, stream))``.

Streams: ``"train"`` batches drive weight steps, ``"val"`` batches drive alpha steps. A space with
state carried across batches (the RNN's hidden state) keeps it per stream: each forward on a stream
reads the committed state and leaves its successor pending; the loop calls :meth:`commit` at the end
of the phase that owns the stream, so the last evaluation of the phase is the one carried forward.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, Literal, NamedTuple

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.search.derivation import Derivation, TopK
from darts_pl.search.relaxation import EdgeWeights, Relaxation, Softmax

Stream = Literal["train", "val"]


class LossOutput(NamedTuple):
    """What a space's forward returns: the scalar loss, and predictions/targets for metrics."""

    loss: torch.Tensor
    preds: torch.Tensor | None = None
    target: torch.Tensor | None = None


class SearchSpace(nn.Module, ABC):
    """Base class of supernets with architecture tensors.

    Subclasses call ``super().__init__(relaxation, derivation)``, put one ``(edges, ops)`` tensor per cell
    type into ``self.arch`` (keys listed in :attr:`cell_types`) and implement :meth:`forward` (reading
    :meth:`edge_weights`) and :meth:`genotype`.

    Args:
        relaxation: Architecture tensor → edge weights and probabilities (``Softmax``, DARTS, when omitted).
        derivation: Probabilities → genotype (``TopK``, DARTS, when omitted).
    """

    #: The RNN recipe clips the training gradient before the unrolled (virtual) step; the CNN one does not.
    clips_virtual_step: bool = False

    def __init__(self, relaxation: Relaxation | None = None, derivation: Derivation | None = None) -> None:
        super().__init__()
        self.relaxation = relaxation if relaxation is not None else Softmax()
        self.derivation = derivation if derivation is not None else TopK()
        self.arch = nn.ParameterDict()
        self._fixed_edge_weights: Mapping[str, EdgeWeights] | None = None

    # ------------------------------------------------------------------ parameters
    @property
    def cell_types(self) -> list[str]:
        """Keys of ``self.arch`` that hold the op tensors of a cell type (the others belong to a method)."""
        return [key for key in ("normal", "reduce", "recurrent") if key in self.arch]

    def named_arch_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return self.arch.named_parameters(prefix="arch")

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch.parameters()}
        return ((n, p) for n, p in self.named_parameters() if id(p) not in arch)

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
    def edge_weights(self) -> Mapping[str, EdgeWeights]:
        """The edge weights of one forward pass per cell type (a new sample for stochastic relaxations),
        or those a weight-step hook fixed (:meth:`fixed_edge_weights`)."""
        if self._fixed_edge_weights is not None:
            return self._fixed_edge_weights
        return {cell: self.relaxation(self.arch[cell]) for cell in self.cell_types}

    @contextlib.contextmanager
    def fixed_edge_weights(self, weights: Mapping[str, EdgeWeights]) -> Iterator[None]:
        """Run every forward inside the block with ``weights`` instead of the relaxation's."""
        if set(weights) != set(self.cell_types):
            raise ConfigurationError(f"fixed_edge_weights: got cell types {sorted(weights)}, the space has "
                                     f"{sorted(self.cell_types)}.")
        self._fixed_edge_weights = weights
        try:
            yield
        finally:
            self._fixed_edge_weights = None

    def edge_probs(self) -> dict[str, torch.Tensor]:
        """The relaxation's probabilities per cell type: ``{"normal": (edges, ops), ...}``, detached, on the CPU."""
        with torch.no_grad():
            return {cell: self.relaxation.probs(self.arch[cell].float()).cpu() for cell in self.cell_types}

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
