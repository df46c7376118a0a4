"""SNAS's resource constraint: the expected forward cost of the derived cells, a term of the alpha loss.

SNAS (Xie et al., "SNAS: Stochastic Neural Architecture Search", ICLR 2019, Sec. 2.4) adds ``η · E_{Z ~ p_α}[C(Z)]``
to its objective, where ``C(Z)`` is the cost of the child network ``Z`` — parameter size, floating-point operations
(FLOPs) and memory access cost (MAC) — and is locally decomposable: the sum over edges of the cost of the op the edge
chose. Its expectation under the architecture distribution is then, per cell, ``sum over edges and ops of p(op) ·
cost(op)`` with ``p = softmax(alpha)``, the relaxation's probabilities: :class:`ResourceConstraint`.

What comes from where (the paper gives the objective; the numbers come from the authors' released code,
SNAS-Series/SNAS-Series ``Analysis/snas``, the code the paper's arXiv version links to):

* the per-op costs are the formulas of their ``operations.py`` (size = the op's weights; FLOPs = size × output
  pixels for the convolutions, 9 × channels × output pixels for the 3×3 poolings; MAC = the feature maps each layer
  reads and writes, plus the weights), at each cell's channels and resolution;
* ``cost="combined"`` is their default mix, ``(2 · size + FLOPs / 4000 + MAC / 100) · 0.43``;
* the cells of a type are averaged and the types summed (their ``penalty_normal / 6 + penalty_reduce / 2`` on the
  8-cell supernet of 6 normal and 2 reduction cells);
* the expectation is taken in closed form, ``sum p · cost`` (their ``method="discrete"``; its default weight
  ``1e-4``). Their default estimate of the same gradient is the score function of the concrete density
  (``method="policy_gradient"``), another the cost of the concrete sample itself (``"reparametrization"``): both are
  noisy estimates of what the closed form gives exactly, and are not offered.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
import torch.nn as nn

from darts_pl.costs import check_edges, edge_inputs
from darts_pl.errors import ConfigurationError
from darts_pl.parts.base import NON_NEGATIVE, Range
from darts_pl.parts.regularizers import ArchRegularizer

if TYPE_CHECKING:
    from darts_pl.search.base import SearchSpace

Cost = Literal["params", "flops", "mac", "combined"]
_CONV_MAC = {"sep_conv": (7, 10), "dil_conv": (3, 6), "nor_conv": (1, 4)}  # input maps read, stride 1 / 2
"""Input-sized feature maps an op's layers read and write (besides its output map), at stride 1 and 2: a separable
conv is two ReLU-depthwise-pointwise blocks (its first depthwise reads the input, at stride 2 four output-sized
maps), a dilated conv one block, a plain conv one layer."""


def _kernel(name: str) -> int:
    return int(name.rsplit("_", 1)[-1].split("x")[0])


def op_costs(name: str, channels: int, height: int, stride: int) -> tuple[float, float, float]:
    """``(size, FLOPs, MAC)`` of candidate op ``name`` on an edge whose input has ``channels`` and ``height``
    (SNAS-Series ``operations.py``, per image).

    Raises:
        ConfigurationError: an op with no cost formula (listing those known).
    """
    c, y = channels, height if stride == 1 else height // 2  # y: the output side
    if name == "none":
        return 0.0, 0.0, 0.0
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return 0.0, 9.0 * c * y * y, (2.0 if stride == 1 else 5.0) * c * y * y
    if name == "skip_connect":
        if stride == 1:  # identity: reads and writes one map
            return 0.0, 0.0, 2.0 * c * y * y
        size = 2.0 * c * (c // 2)  # factorized reduce: two 1x1 convs to c/2 channels, each reading the input
        return size, size * y * y, 2.0 * y * y * (4 * c + c // 2) + size
    kind = name.rsplit("_", 1)[0]
    if kind in _CONV_MAC:
        k = _kernel(name)
        size = {"sep_conv": 2.0 * c * k * k + 2.0 * c * c, "dil_conv": 1.0 * c * k * k + c * c,
                "nor_conv": 1.0 * c * c * k * k}[kind]
        reads = _CONV_MAC[kind][0 if stride == 1 else 1]
        return size, size * y * y, y * y * (reads * c + c) + size
    raise ConfigurationError(f"ResourceConstraint: no cost formula for the op {name!r}; it knows none, max_pool_3x3, "
                             "avg_pool_3x3, skip_connect, sep_conv_KxK, dil_conv_KxK and nor_conv_KxK (remove the op "
                             "from the space's primitives, or the regulariser).")


def combine(size: float, flops: float, mac: float, cost: Cost) -> float:
    """One number per op: one of the three costs, or SNAS-Series' mix ``(2 · size + FLOPs / 4000 + MAC / 100) ·
    0.43``."""
    if cost == "params":
        return size
    if cost == "flops":
        return flops
    if cost == "mac":
        return mac
    return (2.0 * size + flops / 4000.0 + mac / 100.0) * 0.43


def _first_conv(space: SearchSpace) -> nn.Conv2d:
    """The stem's convolution (the space's first), whose input channels the images have."""
    first = next((m for m in space.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ConfigurationError(f"ResourceConstraint: {type(space).__name__} has no convolution to read its input "
                                 "channels from; the constraint's costs are those of image cells (CNNSearchSpace, "
                                 "NB201SearchSpace).")
    return first


class ResourceConstraint(ArchRegularizer):
    """SNAS's resource constraint, ``weight · sum over cell types of the mean over its cells of E[C(cell)]``, with
    ``E[C(cell)] = sum over edges and ops of p(op) · cost(op)`` and ``p`` the relaxation's probabilities
    (``softmax(alpha)``); ``cost`` is each op's cost in that cell (:func:`op_costs`, :func:`combine`). Its gradient
    pushes probability towards cheaper ops in proportion to their cost difference.

    The costs are read once, from one forward of a zero image of ``image_size`` pixels in evaluation mode (each
    edge's input channels and resolution; the candidate ops named by the space), and kept for the fit; the forward
    leaves the random generators, the batch-norm statistics and the sampling stream as they were.

    Args:
        weight: η (SNAS-Series' default for the closed-form expectation, 1e-4; a schedule may move it).
        cost: ``"params"``, ``"flops"``, ``"mac"`` or their ``"combined"`` mix (the authors' default).
        image_size: The side of the input images (32 for CIFAR-10, 8 for the quickstart's digits): the resolution
            the FLOPs and MAC are counted at.

    Note:
        Deviations: the closed form instead of the authors' sampled estimates (see the module docstring); the cells
        of each type are averaged whatever their number (the authors divide by 6 and 2, the 8-cell supernet's
        counts); the NAS-Bench-201 convolutions (``nor_conv_KxK``) take the authors' ``ReLUConvBN`` formula.
    """

    tunable: ClassVar[Mapping[str, Range]] = {"weight": NON_NEGATIVE}

    def __init__(self, weight: float = 1e-4, cost: Cost = "combined", image_size: int = 32) -> None:
        super().__init__(weight)
        if cost not in ("params", "flops", "mac", "combined"):
            raise ConfigurationError(f"ResourceConstraint: cost={cost!r}; use 'params', 'flops', 'mac' or 'combined' "
                                     "(the authors' mix).")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ConfigurationError(f"ResourceConstraint: image_size={image_size!r} must be the side of the input "
                                     "images in pixels (32 for CIFAR-10).")
        self.cost = cost
        self.image_size = image_size
        self._table: dict[str, torch.Tensor] | None = None
        self._table_of: int | None = None

    def penalty(self, space: SearchSpace) -> torch.Tensor:
        table = self.costs(space)
        total = 0.0
        for cell, costs in table.items():
            alpha = space.arch[cell]
            probs = space.relaxation.probs(alpha)  # (edges, ops)
            total = total + (probs * costs.to(device=alpha.device, dtype=probs.dtype)).sum()
        return total

    def costs(self, space: SearchSpace) -> dict[str, torch.Tensor]:
        """The cost of every op of every edge, averaged over the cells of each type: ``{cell type: (edges, ops)}``
        (float64, CPU), measured once per space."""
        if self._table is None or self._table_of != id(space):
            self._table, self._table_of = self._measure(space), id(space)
        return self._table

    def _measure(self, space: SearchSpace) -> dict[str, torch.Tensor]:
        check_edges(space, "ResourceConstraint")
        stem = _first_conv(space)
        cells = edge_inputs(space, (stem.in_channels, self.image_size, self.image_size), "ResourceConstraint")
        return {cell: self._table_of_cells(space, cell, cells) for cell, cells in cells.items()}

    def _table_of_cells(self, space: SearchSpace, cell: str, cells: list[list[tuple[nn.Module, tuple[int, ...]]]]
                        ) -> torch.Tensor:
        rows = _edge_ops(space, cell, len(cells[0]))
        table = torch.zeros(len(rows), len(rows[0]), dtype=torch.float64)
        for edges in cells:
            for e, (mixed, (channels, height, _)) in enumerate(edges):
                stride = int(getattr(mixed, "stride", 1))
                for j, name in enumerate(rows[e]):
                    table[e, j] += combine(*op_costs(name, channels, height, stride), self.cost)
        return table / len(cells)


def _edge_ops(space: SearchSpace, cell: str, num_edges: int) -> list[list[str]]:
    """The op names of each edge of a cell type, in alpha column order."""
    per_edge = getattr(space, "edge_primitives", None)
    if isinstance(per_edge, dict) and cell in per_edge:
        return [list(row) for row in per_edge[cell]]
    return [list(space.primitives) for _ in range(num_edges)]
