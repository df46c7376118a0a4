"""Edges of the convolutional supernet: the candidate ops of one edge (:class:`MixedOp`) and how an edge
combines them (:class:`Edge`), chosen by the space's config.

DARTS sums every candidate op weighted by its probability (paper Eq. 2): :class:`WeightedSum`. Variants
change only this combination: GDAS runs only the sampled op, DARTS- adds an auxiliary skip connection
scaled by a decaying coefficient, PC-DARTS sends only a fraction of the channels through the ops. An ``Edge``
is given to the space (``CNNSearchSpace(edge=...)``) and called with each edge's ops at forward time, so it
holds no per-edge modules itself; extra per-edge modules it needs are built by :meth:`Edge.build_extra` and
kept by the ``MixedOp``, whose ops are :meth:`Edge.op_channels` wide.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.ops import FactorizedReduce, MaxPool, PreActivated, make_op, scaled


class MixedOp(nn.Module):
    """The candidate ops of one edge (``none`` is never built: it contributes exactly zero).

    Each op's weight is folded into the affine weight of the op's final BatchNorm
    (``darts_pl.ops.scaled_batch_norm``), so the backward keeps no weighted output per op, and sums are
    accumulated in place.

    Args:
        channels: Channels of the ops.
        stride: 2 on the edges from the cell inputs of a reduction cell, else 1.
        primitives: Names of the candidate ops (columns of the architecture tensor).
        extra: A module the space's :class:`Edge` keeps per edge (DARTS-'s auxiliary skip), or none.
        skip_dropout: Applied to the output of ``skip_connect`` on a stride-1 edge (the identity), as P-DARTS's
            ``MixedOp`` does; one module shared by every edge of the space, so one schedule sets its rate.
    """

    def __init__(self, channels: int, stride: int, primitives: Sequence[str], extra: nn.Module | None = None,
                 skip_dropout: nn.Module | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.columns: list[int] = []  # architecture-tensor column of each op kept (``none`` is not kept)
        self.shares_relu: list[bool] = []
        ops = []
        for column, name in enumerate(primitives):
            if name == "none":
                continue
            op = make_op(name, channels, stride, affine=False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            if name == "skip_connect" and stride == 1 and skip_dropout is not None:
                op = nn.Sequential(op, skip_dropout)
            ops.append(op)
            self.columns.append(column)
            self.shares_relu.append(isinstance(op, PreActivated))
        self.ops = nn.ModuleList(ops)
        self.extra = extra
        self._any_relu = any(self.shares_relu)
        self._position = {column: k for k, column in enumerate(self.columns)}

    def zeros(self, x: torch.Tensor) -> torch.Tensor:
        """The output of ``none``: zeros of the edge's output shape."""
        return torch.zeros_like(x[:, :, :: self.stride, :: self.stride])

    def weighted_sum(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """``sum_op weights[op] · op(x)`` over every op (paper Eq. 2); ``weights`` are scalar tensors by column."""
        # relu(x) is the first layer of every conv op and of the stride-2 skip: compute it once per edge.
        relu_x = F.relu(x) if self._any_relu else x
        out: torch.Tensor | None = None
        for column, op, shares in zip(self.columns, self.ops, self.shares_relu):
            y = op.scaled(relu_x, weights[column]) if shares else scaled(op, x, weights[column])
            # Every term is a fresh tensor no backward keeps, so the sum may accumulate in place.
            out = y if out is None else out.add_(y)
        return self.zeros(x) if out is None else out  # a space whose only op is ``none``

    def one(self, x: torch.Tensor, column: int, weight: torch.Tensor) -> torch.Tensor:
        """``weight · op(x)`` for the op in ``column`` alone (zeros for ``none``)."""
        k = self._position.get(column)
        if k is None:
            return self.zeros(x) * weight
        op = self.ops[k]
        return op.scaled(F.relu(x), weight) if self.shares_relu[k] else scaled(op, x, weight)


class SkipDropout(nn.Module):
    """P-DARTS's dropout on skip connections (Chen et al., 2019, Sec. 3.3): elementwise dropout with rate ``p`` on
    the output of every stride-1 ``skip_connect`` in training, so the parameter-free path cannot win the search by
    being the easiest to train; the identity in evaluation or at ``p = 0``. One instance is shared by every
    ``MixedOp`` of a space (``space.skip_dropout``), and a schedule moves its ``p`` (target
    ``space.skip_dropout.p``). As in the authors' code, stride-2 skip connections (factorized reduce) have none.

    Args:
        p: The dropout rate, in [0, 1).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigurationError(f"skip_dropout={p} must be in [0, 1) (P-DARTS uses 0.0 / 0.4 / 0.7 on CIFAR-10).")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True) if self.training and self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Edge(nn.Module):
    """How an edge combines its ops, given its row of edge weights (and the sampled op, if any).

    Subclasses implement :meth:`forward`; :meth:`build_extra` adds a per-edge module to every ``MixedOp``;
    :meth:`op_channels` says how wide the ``MixedOp``'s ops are.
    """

    #: Needs the relaxation's sampled ``index`` (GDAS).
    needs_index: bool = False

    def build_extra(self, channels: int, stride: int) -> nn.Module | None:
        return None

    def op_channels(self, channels: int) -> int:
        """Channels of the candidate ops on an edge whose input and output have ``channels`` (all of them)."""
        return channels

    def scaled(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor], index: int | None,
               scale: torch.Tensor) -> torch.Tensor:
        """``scale · forward(...)``: the edge's output times its normalised weight (PC-DARTS's edge normalisation)."""
        return self(mixed, x, weights, index) * scale

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor],
                index: int | None) -> torch.Tensor:
        raise NotImplementedError


class WeightedSum(Edge):
    """DARTS: the weighted sum of every candidate op (paper Eq. 2)."""

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor],
                index: int | None) -> torch.Tensor:
        return mixed.weighted_sum(x, weights)


class SampledOp(Edge):
    """GDAS: run only the sampled op of each edge, times its straight-through weight (the authors'
    ``MixedOp.forward_gdas`` in the DARTS space: ``ops[index](x) * weights[index]``). The ops not sampled are
    never computed: that is the method's speed. A sampled ``none`` gives zeros.

    Args:
        other_weights: Also add the other ops' weights as scalars (zero in value), so every alpha of the edge
            gets a gradient, as the authors' NAS-Bench-201 cell does (``w[j] · op_j(x) if j == index else w[j]``).
    """

    needs_index = True

    def __init__(self, other_weights: bool = False) -> None:
        super().__init__()
        self.other_weights = other_weights

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor],
                index: int | None) -> torch.Tensor:
        if index is None:
            raise ValueError("SampledOp needs the sampled op of every edge; use a sampling relaxation (GumbelSoftmax).")
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

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def build_extra(self, channels: int, stride: int) -> nn.Module | None:
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine=False)

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor],
                index: int | None) -> torch.Tensor:
        out = mixed.weighted_sum(x, weights)
        if self.beta == 0 or mixed.extra is None:
            return out
        return out + self.beta * mixed.extra(x)


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
        if k < 1:
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

    def forward(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor],
                index: int | None) -> torch.Tensor:
        return self._partial(mixed, x, weights)

    def scaled(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor], index: int | None,
               scale: torch.Tensor) -> torch.Tensor:
        # The scale goes into the op weights (and so into their batch norms) and onto the passed channels: the
        # backward then keeps no scaled copy of the whole edge output.
        return self._partial(mixed, x, [w * scale for w in weights], scale)

    def _partial(self, mixed: MixedOp, x: torch.Tensor, weights: Sequence[torch.Tensor],
                 scale: torch.Tensor | None = None) -> torch.Tensor:
        c = x.shape[1] // self.k
        out = mixed.weighted_sum(x[:, :c], weights)  # (B, C/k, H', W')
        if c == x.shape[1]:  # k = 1: every channel goes through the ops, as in DARTS
            return out
        rest = x[:, c:] if mixed.stride == 1 else self.pool(x[:, c:])  # (B, C - C/k, H', W')
        if scale is not None:
            rest = rest * scale
        return channel_shuffle(torch.cat([out, rest], dim=1), self.k)  # (B, C, H', W')
