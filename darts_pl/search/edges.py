"""Edges of the convolutional supernet: the candidate ops of one edge (:class:`MixedOp`) and how an edge
combines them (:class:`Edge`), chosen by the space's config.

DARTS sums every candidate op weighted by its probability (paper Eq. 2): :class:`WeightedSum`. Variants
change only this combination: GDAS runs only the sampled op, DARTS- adds an auxiliary skip connection
scaled by a decaying coefficient. An ``Edge`` is given to the space (``CNNSearchSpace(edge=...)``) and
called with each edge's ops at forward time, so it holds no per-edge modules itself; extra per-edge
modules it needs are built by :meth:`Edge.build_extra` and kept by the ``MixedOp``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.ops import FactorizedReduce, PreActivated, make_op, scaled


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
    """

    def __init__(self, channels: int, stride: int, primitives: Sequence[str], extra: nn.Module | None = None) -> None:
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


class Edge(nn.Module):
    """How an edge combines its ops, given its row of edge weights (and the sampled op, if any).

    Subclasses implement :meth:`forward`; :meth:`build_extra` adds a per-edge module to every ``MixedOp``.
    """

    #: Needs the relaxation's sampled ``index`` (GDAS).
    needs_index: bool = False

    def build_extra(self, channels: int, stride: int) -> nn.Module | None:
        return None

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
