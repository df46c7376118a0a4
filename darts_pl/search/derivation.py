"""Derivation: which edges and ops of the supernet form the discrete cell.

DARTS keeps, for each node, the ``k`` incoming edges whose strongest non-``none`` op is strongest, and on
each the strongest non-``none`` op (Liu et al., 2019, Sec. 2.4; k=2 for CNN cells, k=1 for recurrent
ones): :class:`TopK`. Variants derive differently (FairDARTS by a threshold on sigmoid weights); a
derivation is given to the space (``CNNSearchSpace(derivation=...)``) and reads the relaxation's
probabilities of each cell type.
"""
from __future__ import annotations

from collections.abc import Sequence

from darts_pl.genotypes import top_k_edges


class Derivation:
    """Picks the edges of one cell from its probabilities (edges × ops)."""

    def select(self, probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
               first_inputs: int, k: int) -> list[tuple[str, int]]:
        """``[(op, input), ...]``, ``k`` per node, nodes in order (the genotype's edge list)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class TopK(Derivation):
    """DARTS: the ``k`` strongest incoming edges per node by their strongest non-``none`` op; ties go to the
    lower index."""

    def select(self, probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
               first_inputs: int, k: int) -> list[tuple[str, int]]:
        return top_k_edges(probs, primitives, num_nodes=num_nodes, first_inputs=first_inputs, k=k)


class JointTopK(Derivation):
    """GDAS: the ``k`` strongest (edge, op) pairs of each node over every incoming edge and non-``none`` op,
    ranked jointly, so both picks may read the same input (the authors' ``genotype()`` in the DARTS space).
    Ties keep the (input, op) order."""

    def select(self, probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
               first_inputs: int, k: int) -> list[tuple[str, int]]:
        gene: list[tuple[str, int]] = []
        start = 0
        for node in range(num_nodes):
            n_in = first_inputs + node
            pairs = [(probs[start + j][op], j, op) for j in range(n_in)
                     for op in range(len(primitives)) if primitives[op] != "none"]
            ranked = sorted(range(len(pairs)), key=lambda i: (-pairs[i][0], i))[:k]
            gene += [(primitives[pairs[i][2]], pairs[i][1]) for i in ranked]
            start += n_in
        return gene


class Threshold(Derivation):
    """FairDARTS: the DARTS top-``k`` edges of each node, each kept only if its strongest op's weight reaches
    ``threshold`` (the authors' ``threshold_sparse`` parse on sigmoid weights, threshold 0.85).

    A node may so keep fewer than ``k`` edges, or none. The genotype keeps ``k`` entries per node: a dropped
    edge is written ``("none", input)`` (it contributes zero, as the authors' cell skips it), and a node left
    with no edge is left out of ``concat`` (as the authors' cell ignores isolated nodes).

    Args:
        threshold: The weight an op must reach to be kept.
    """

    def __init__(self, threshold: float = 0.85) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"Threshold: threshold={threshold} must be in (0, 1) (FairDARTS uses 0.85).")
        self.threshold = threshold

    def select(self, probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
               first_inputs: int, k: int) -> list[tuple[str, int]]:
        gene = top_k_edges(probs, primitives, num_nodes=num_nodes, first_inputs=first_inputs, k=k)
        start, out = 0, []
        for node in range(num_nodes):
            for op, j in gene[node * k:(node + 1) * k]:
                strong = probs[start + j][list(primitives).index(op)] >= self.threshold
                out.append((op, j) if strong else ("none", j))
            start += first_inputs + node
        return out
