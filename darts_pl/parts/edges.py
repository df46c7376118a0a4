"""Edges: how an edge of a cell combines its candidate ops, given its row of edge weights.

DARTS sums every candidate op weighted by its probability (paper Eq. 2): :class:`WeightedSum`. Variants
change only this combination: GDAS runs only the sampled op, DARTS- adds an auxiliary skip connection
scaled by a decaying coefficient, PC-DARTS sends only a fraction of the channels through the ops. An ``Edge``
is a part given to the space (``CNNSearchSpace(edge=...)``) and called with each edge's ops
(:class:`~darts_pl.search.mixed_op.MixedOp`) at forward time, so it holds no per-edge modules itself; extra per-edge
modules it needs are built by :meth:`Edge.build_extra` and kept by the ``MixedOp``, whose ops are
:meth:`Edge.op_channels` wide. With edge normalisation (PC-DARTS) an edge's output is multiplied by its ``scale``;
every edge folds it into the op weights where that is the same sum.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.ops import FactorizedReduce, MaxPool
from darts_pl.parts.base import NON_NEGATIVE, Part, Range

if TYPE_CHECKING:
    from darts_pl.search.mixed_op import MixedOp


def _scaled(weights: Sequence[torch.Tensor], scale: torch.Tensor | None) -> Sequence[torch.Tensor]:
    return weights if scale is None else [w * scale for w in weights]


class Edge(Part):
    """How an edge combines its ops, given its row of edge weights (and the sampled op, if any).

    Subclasses implement :meth:`forward`; :meth:`build_extra` adds a per-edge module to every ``MixedOp``;
    :meth:`op_channels` says how wide the ``MixedOp``'s ops are.

    Attributes:
        needs_index: Runs the relaxation's sampled op (``index``) of each edge (GDAS): the space refuses it with a
            relaxation that samples none.
        unused_parameters: Some ops get no gradient in a step (those not sampled): DDP must be told
            (``strategy: ddp_find_unused_parameters_true``).
    """

    needs_index: ClassVar[bool] = False
    unused_parameters: ClassVar[bool] = False

    def build_extra(self, channels: int, stride: int) -> nn.Module | None:
        return None

    def op_channels(self, channels: int) -> int:
        """Channels of the candidate ops on an edge whose input and output have ``channels`` (all of them)."""
        return channels

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor], index: int | None,
                scale: torch.Tensor | None = None) -> torch.Tensor:
        """The edge's output: ``weights`` are its op weights by column (scalar tensors), ``index`` the sampled op,
        ``scale`` the factor on the whole output (edge normalisation), each ``None`` when absent."""
        raise NotImplementedError


class WeightedSum(Edge):
    """DARTS: the weighted sum of every candidate op (paper Eq. 2)."""

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor], index: int | None,
                scale: torch.Tensor | None = None) -> torch.Tensor:
        return mixed.weighted_sum(x, _scaled(weights, scale))


class SampledOp(Edge):
    """GDAS: run only the sampled op of each edge, times its straight-through weight (the authors'
    ``MixedOp.forward_gdas`` in the DARTS space: ``ops[index](x) * weights[index]``). The ops not sampled are
    never computed: that is the method's speed. A sampled ``none`` gives zeros.

    Args:
        other_weights: Also add the other ops' weights as scalars (zero in value), so every alpha of the edge
            gets a gradient, as the authors' NAS-Bench-201 cell does (``w[j] · op_j(x) if j == index else w[j]``).
    """

    needs_index: ClassVar[bool] = True
    unused_parameters: ClassVar[bool] = True

    def __init__(self, other_weights: bool = False) -> None:
        super().__init__()
        self.other_weights = other_weights

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor], index: int | None,
                scale: torch.Tensor | None = None) -> torch.Tensor:
        if index is None:
            raise ConfigurationError("SampledOp needs the sampled op of every edge; use a sampling relaxation "
                                     "(GumbelSoftmax).")
        weights = _scaled(weights, scale)
        out = mixed.one(x, index, weights[index])
        rest = [w for j, w in enumerate(weights) if j != index] if self.other_weights else []
        return out + torch.stack(rest).sum() if rest else out


class AuxiliarySkip(Edge):
    """DARTS-: the weighted sum plus ``beta · skip(x)``, an auxiliary skip connection outside the softmax whose
    coefficient decays to zero over the search (Chu et al., 2021, Eq. 3), so skip connections no longer need
    to win the softmax to pass the gradient. ``skip`` is the identity on stride-1 edges and a factorized
    reduce with weights of its own on stride-2 edges, as in the authors' code. It is used in the alpha and
    weight steps alike and has no part in the derived cell.

    Args:
        beta: The coefficient (moved from 1 to 0 by a ``LinearSchedule`` targeting ``space.edge.beta``).
    """

    tunable: ClassVar[Mapping[str, Range]] = {"beta": NON_NEGATIVE}

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.check(beta=beta)
        self.beta = beta

    def build_extra(self, channels: int, stride: int) -> nn.Module | None:
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine=False)

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor], index: int | None,
                scale: torch.Tensor | None = None) -> torch.Tensor:
        out = mixed.weighted_sum(x, _scaled(weights, scale))
        if self.beta == 0 or mixed.extra is None:
            return out
        skip = self.beta * mixed.extra(x)
        return out + (skip if scale is None else skip * scale)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle, as PC-DARTS's ``channel_shuffle``: output channel ``i · groups + g`` is input
    channel ``g · (C / groups) + i``. A channels-last input stays channels-last."""
    b, c, h, w = x.shape
    if groups == 1:
        return x
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        y = x.permute(0, 2, 3, 1).unflatten(3, (groups, c // groups))  # (B, H, W, groups, C/groups), a view
        return y.transpose(3, 4).reshape(b, h, w, c).permute(0, 3, 1, 2)  # (B, C, H, W), channels-last
    return x.unflatten(1, (groups, c // groups)).transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W)


class PartialChannel(Edge):
    """PC-DARTS: only the first ``C / k`` channels of an edge's input go through the weighted sum of its ops; the
    other channels pass by (max-pooled 2×2 on stride-2 edges), the two parts are concatenated and the channels
    shuffled in ``k`` groups, so the next edge's sample holds other channels (Xu et al., 2020, Sec. 3.2, Eq. 2;
    the authors' ``MixedOp`` in ``model_search.py``: ``k=4`` on CIFAR-10, 2 on ImageNet).

    The ops are built ``C / k`` channels wide (:meth:`op_channels`): that is the method's memory saving.

    Args:
        k: The inverse of the fraction of channels sent through the ops (divides the channels of every edge).
    """

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigurationError(f"PartialChannel: k={k} must be >= 1 (1 sends every channel, as DARTS; "
                                     "PC-DARTS uses 4 on CIFAR-10 and 2 on ImageNet).")
        self.k = k
        self.pool = MaxPool(2, 2)  # the passed channels of stride-2 edges; its backward stores no indices

    def op_channels(self, channels: int) -> int:
        if channels % self.k:
            raise ConfigurationError(
                f"PartialChannel: k={self.k} does not divide the {channels} channels of an edge; use a space whose "
                f"channels are a multiple of {self.k} (e.g. --model.init_args.space.init_args.channels "
                f"{max(self.k, channels // self.k * self.k)}), or another k.")
        return channels // self.k

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor], index: int | None,
                scale: torch.Tensor | None = None) -> torch.Tensor:
        # The scale goes into the op weights (and so into their batch norms) and onto the passed channels: the
        # backward then keeps no scaled copy of the whole edge output.
        c = x.shape[1] // self.k
        out = mixed.weighted_sum(x[:, :c], _scaled(weights, scale))  # (B, C/k, H', W')
        if c == x.shape[1]:  # k = 1: every channel goes through the ops, as in DARTS
            return out
        rest = x[:, c:] if mixed.stride == 1 else self.pool(x[:, c:])  # (B, C - C/k, H', W')
        if scale is not None:
            rest = rest * scale
        return channel_shuffle(torch.cat([out, rest], dim=1), self.k)  # (B, C, H', W')
