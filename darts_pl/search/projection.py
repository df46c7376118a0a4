"""Projections of a space's edge weights: edges fixed to one op or removed, and ops masked out, on top of whatever
the relaxation (or a weight-step hook) gives.

Selection by perturbation (DARTS-PT; Wang et al., "Rethinking Architecture Selection in Differentiable NAS",
ICLR 2021) decides the cell edge by edge on the trained supernet: it evaluates the supernet with one op of an edge
removed, fixes the edge to the op whose removal hurts most, and later removes whole edges. The authors keep a
one-hot row per decided edge (``proj_weights``) that replaces the softmax row in every forward
(``get_projected_weights``), and multiply a row by a 0/1 mask to evaluate the supernet without one op. Here one
object holds both, per cell type: the edge weights of a forward become ``weights · keep + fixed``, where a decided
edge has ``keep = 0`` and ``fixed`` its one-hot row (or zeros if removed), and an op masked for an evaluation has
``keep = 0`` in its column. The space applies it in :meth:`~darts_pl.search.base.SearchSpace.edge_weights` while
``space.projected(projection)`` is active, so the alpha step, the weight step (perturbed or not) and every
evaluation see the decided cell; the rows it fixes get no alpha gradient.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from darts_pl.parts.relaxation import EdgeWeights


class EdgeProjection:
    """Fixed, removed and masked edges of every cell type of a space.

    Args:
        shapes: ``{cell type: (edges, ops)}``, the shapes of the space's architecture tensors (``space.arch[cell]``).

    Note:
        A sampling relaxation's ``index`` (GDAS) is passed on unchanged: selection by perturbation is defined on
        supernets that weight every op.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, int]]) -> None:
        self.keep = {cell: torch.ones(*shape, dtype=torch.float64) for cell, shape in shapes.items()}
        self.fixed = {cell: torch.zeros(*shape, dtype=torch.float64) for cell, shape in shapes.items()}

    def decided(self, cell: str, edge: int) -> bool:
        """Whether ``edge`` is fixed to an op or removed."""
        return not bool(self.keep[cell][edge].any())

    def fix_op(self, cell: str, edge: int, column: int) -> None:
        """From now on ``edge`` runs the op in ``column`` alone, at weight 1."""
        self.keep[cell][edge] = 0.0
        self.fixed[cell][edge] = 0.0
        self.fixed[cell][edge, column] = 1.0

    def remove_edge(self, cell: str, edge: int) -> None:
        """From now on ``edge`` contributes nothing."""
        self.keep[cell][edge] = 0.0
        self.fixed[cell][edge] = 0.0

    def without_op(self, cell: str, edge: int, column: int) -> EdgeProjection:
        """A copy in which the op in ``column`` of ``edge`` is also masked out (weight 0, the other ops as they are)."""
        out = self.copy()
        out.keep[cell][edge, column] = 0.0
        out.fixed[cell][edge, column] = 0.0
        return out

    def without_edge(self, cell: str, edge: int) -> EdgeProjection:
        """A copy in which ``edge`` is also removed."""
        out = self.copy()
        out.remove_edge(cell, edge)
        return out

    def copy(self) -> EdgeProjection:
        out = EdgeProjection({})
        out.keep = {cell: t.clone() for cell, t in self.keep.items()}
        out.fixed = {cell: t.clone() for cell, t in self.fixed.items()}
        return out

    def apply(self, weights: Mapping[str, EdgeWeights]) -> dict[str, EdgeWeights]:
        """``{cell: weights · keep + fixed}`` for the cell types this projection holds; the others as they are."""
        out = dict(weights)
        for cell, given in weights.items():
            if cell in self.keep:
                w = given.weights  # (edges, ops)
                keep, fixed = self.keep[cell].to(w), self.fixed[cell].to(w)
                out[cell] = given._replace(weights=w * keep + fixed)
        return out

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"keep": {c: t.clone() for c, t in self.keep.items()},
                "fixed": {c: t.clone() for c, t in self.fixed.items()}}

    def load_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        self.keep = {c: t.clone().double() for c, t in state["keep"].items()}
        self.fixed = {c: t.clone().double() for c, t in state["fixed"].items()}
