"""The candidate ops of one edge of a convolutional supernet (:class:`MixedOp`), which an
:class:`~darts_pl.parts.edges.Edge` combines and :class:`~darts_pl.parts.op_wrappers.OpWrapper` parts may wrap."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.ops import PreActivated, make_op, scaled
from darts_pl.parts.op_wrappers import OpWrapper


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
        wrappers: The space's op wrappers (P-DARTS's skip dropout): each one that applies to an op (its name and the
            edge's stride) is applied to the op's output. They belong to the space (one instance, one schedule); the
            mixed op only calls them.
        pool_batch_norm: Follow pooling ops with a BatchNorm without affine parameters (DARTS; the NAS-Bench-201
            cell has none).
    """

    def __init__(self, channels: int, stride: int, primitives: Sequence[str], extra: nn.Module | None = None,
                 wrappers: Sequence[OpWrapper] = (), pool_batch_norm: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.channels = channels
        self.primitives = list(primitives)  # the op name of every column (``none`` where an op is not built)
        self.columns: list[int] = []  # architecture-tensor column of each op kept (``none`` is not kept)
        self.shares_relu: list[bool] = []
        self.wrappers: list[list[OpWrapper]] = []  # per op, the wrappers applied to its output (not submodules)
        ops = []
        for column, name in enumerate(primitives):
            if name == "none":
                continue
            op = make_op(name, channels, stride, affine=False)
            if "pool" in name and pool_batch_norm:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            ops.append(op)
            self.columns.append(column)
            self.shares_relu.append(isinstance(op, PreActivated))
            self.wrappers.append([w for w in wrappers if w.applies(name, stride)])
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
        for column, op, shares, wrappers in zip(self.columns, self.ops, self.shares_relu, self.wrappers):
            y = op.scaled(relu_x, weights[column]) if shares else scaled(op, x, weights[column])
            for wrapper in wrappers:
                y = wrapper(y)
            # Every term is a fresh tensor no backward keeps, so the sum may accumulate in place.
            out = y if out is None else out.add_(y)
        return self.zeros(x) if out is None else out  # a space whose only op is ``none``

    def one(self, x: torch.Tensor, column: int, weight: torch.Tensor) -> torch.Tensor:
        """``weight · op(x)`` for the op in ``column`` alone (zeros for ``none``)."""
        k = self._position.get(column)
        if k is None:
            return self.zeros(x) * weight
        op = self.ops[k]
        y = op.scaled(F.relu(x), weight) if self.shares_relu[k] else scaled(op, x, weight)
        for wrapper in self.wrappers[k]:
            y = wrapper(y)
        return y


