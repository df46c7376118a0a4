"""Derivation: which edges and ops of the supernet form the discrete cell.

DARTS keeps, for each node, the ``k`` incoming edges whose strongest non-``none`` op is strongest, and on
each the strongest non-``none`` op (Liu et al., 2019, Sec. 2.4; k=2 for CNN cells, k=1 for recurrent
ones): :class:`TopK`. Variants derive differently (FairDARTS by a threshold on sigmoid weights, P-DARTS with at
most M skip connections in the normal cell: :meth:`Derivation.for_cell` gives a cell type its own selection); a
derivation is given to the space (``CNNSearchSpace(derivation=...)``) and reads the relaxation's
probabilities of each cell type. With PC-DARTS's edge normalisation the space hands it the probabilities times
each edge's normalised weight instead (the authors' ``genotype()``), so :class:`TopK` then ranks edges as they do.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import argmax_edges, top_k_edges
from darts_pl.parts.base import UNIT_OPEN, Part, Range


class Derivation(Part):
    """Picks the edges of one cell from its probabilities (edges × ops)."""

    def select(self, probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
               first_inputs: int, k: int) -> list[tuple[str, int]]:
        """``[(op, input), ...]``, ``k`` per node, nodes in order (the genotype's edge list)."""
        raise NotImplementedError

    def for_cell(self, cell: str) -> Callable[..., list[tuple[str, int]]]:
        """The selection for cell type ``cell`` (``normal``, ``reduce``): :meth:`select`, unless a derivation treats
        cell types differently."""
        return self.select


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

    tunable: ClassVar[Mapping[str, Range]] = {"threshold": UNIT_OPEN}

    def __init__(self, threshold: float = 0.85) -> None:
        super().__init__()
        self.check(threshold=threshold)
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


class MaxSkips(Derivation):
    """P-DARTS: the DARTS top-``k`` cell with at most ``max_skips`` skip connections (Chen et al., 2019, Sec. 3.3:
    M = 2 in the normal cell). While the derived cell has more, the probability of its weakest chosen
    ``skip_connect`` is set to zero and the cell derived again (so that edge may take its next op, or lose its
    place to another edge), as the authors' ``delete_min_sk_prob`` / ``keep_1_on`` / ``keep_2_branches`` loop in
    ``train_search.py`` does; ties go to the lower edge index.

    A skip connection is only removed from an edge that has another op with a positive probability (an edge
    whose only op besides ``none`` is ``skip_connect`` keeps it, where the authors' loop would not end).

    Args:
        max_skips: The most skip connections a constrained cell keeps (M).
        cells: The cell types constrained (the authors constrain the normal cell only).
    """

    def __init__(self, max_skips: int = 2, cells: Sequence[str] = ("normal",)) -> None:
        super().__init__()
        if max_skips < 0:
            raise ConfigurationError(f"MaxSkips: max_skips={max_skips} must be >= 0 (P-DARTS uses 2).")
        unknown = sorted(set(cells) - {"normal", "reduce"})
        if unknown:
            raise ConfigurationError(f"MaxSkips: cells has {unknown}; use 'normal' and/or 'reduce'.")
        self.max_skips = max_skips
        self.cells = list(cells)

    def for_cell(self, cell: str) -> Callable[..., list[tuple[str, int]]]:
        return self.select if cell in self.cells else TopK().select

    def select(self, probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
               first_inputs: int, k: int) -> list[tuple[str, int]]:
        if "skip_connect" not in primitives:
            return top_k_edges(probs, primitives, num_nodes=num_nodes, first_inputs=first_inputs, k=k)
        skip = list(primitives).index("skip_connect")
        others = [j for j, name in enumerate(primitives) if name not in ("none", "skip_connect")]
        probs = [list(row) for row in probs]  # zeroed in place below
        while True:
            gene = top_k_edges(probs, primitives, num_nodes=num_nodes, first_inputs=first_inputs, k=k)
            rows = _rows_of(gene, num_nodes=num_nodes, first_inputs=first_inputs, k=k)
            chosen = [(probs[row][skip], row) for (op, _), row in zip(gene, rows)
                      if op == "skip_connect" and any(probs[row][j] > 0 for j in others)]
            if sum(op == "skip_connect" for op, _ in gene) <= self.max_skips or not chosen:
                return gene
            _, weakest = min(chosen)  # the lowest probability; ties: the lower edge index
            probs[weakest][skip] = 0.0


class ArgmaxPerEdge(Derivation):
    """NAS-Bench-201: keep every edge, each with its strongest op, ``none`` included (the authors' ``genotype()``
    of their NB201 supernets, an argmax over all ops of each row). Ties go to the lower index."""

    def select(self, probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
               first_inputs: int, k: int) -> list[tuple[str, int]]:
        return argmax_edges(probs, primitives, num_nodes=num_nodes, first_inputs=first_inputs)


def _rows_of(gene: Sequence[tuple[str, int]], *, num_nodes: int, first_inputs: int, k: int) -> list[int]:
    """The alpha row (edge index) of every entry of a ``k``-per-node gene."""
    starts = [sum(first_inputs + i for i in range(node)) for node in range(num_nodes)]
    return [starts[pos // k] + j for pos, (_, j) in enumerate(gene)]
