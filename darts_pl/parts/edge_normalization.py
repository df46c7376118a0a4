"""Edge normalisation (PC-DARTS; Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient
Architecture Search", ICLR 2020, Sec. 3.3, Eq. 3): one more architecture value per edge, a softmax over each node's
incoming edges, that scales the edge's whole output and multiplies into the probabilities the derivation reads
(the authors' ``genotype()``), so which inputs a node keeps no longer depends on the partial-channel sampling alone.

A part given to the search space (``CNNSearchSpace(edge_normalization=EdgeNormalization())``, or ``true``). It
owns the construction of its tensors, which the space keeps with its other architecture tensors in ``space.arch``
as ``<cell>_edges`` (so the arch optimizer, DDP, checkpoints and monitors pick them up), and it computes the
scales from them (:meth:`scales`); the space hands every edge its scale (``EdgeWeights.scale``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.parts.base import Part


def tensor_name(cell: str) -> str:
    """The key of a cell type's edge values in ``space.arch``."""
    return f"{cell}_edges"


class EdgeNormalization(Part):
    """Per-edge weights ``softmax`` over each node's incoming edges (PC-DARTS's betas).

    Args:
        init: ``"randn"`` (``init_scale · N(0, 1)``, the authors' ``1e-3 · randn``) or ``"zeros"``; ``None`` takes the
            space's alpha initialisation.
        init_scale: Scale of the random initialisation; ``None`` takes the space's.
    """

    def __init__(self, init: Literal["randn", "zeros"] | None = None, init_scale: float | None = None) -> None:
        super().__init__()
        self.init = init
        self.init_scale = init_scale

    def build(self, cells: Sequence[str], num_edges: int, init: str, init_scale: float) -> dict[str, nn.Parameter]:
        """The architecture tensors to register, ``{"<cell>_edges": (edges,)}``, after the op tensors (normal before
        reduce, as the authors' betas)."""
        from darts_pl.search.base import init_alpha

        kind = self.init or init
        scale = self.init_scale if self.init_scale is not None else init_scale
        return {tensor_name(cell): nn.Parameter(init_alpha(num_edges, 1, kind, scale)[:, 0]) for cell in cells}

    def scales(self, arch: Mapping[str, torch.Tensor], cells: Sequence[str],
               in_degrees: Sequence[int]) -> dict[str, torch.Tensor]:
        """``{cell: (edges,)}``: for each node, the softmax of its incoming edges' values (paper Eq. 3).

        Args:
            arch: The space's architecture tensors.
            cells: The cell types.
            in_degrees: The incoming edges of each node, in edge-row order.
        """
        return {cell: torch.cat([F.softmax(beta, dim=-1) for beta in arch[tensor_name(cell)].split(list(in_degrees))])
                for cell in cells}
