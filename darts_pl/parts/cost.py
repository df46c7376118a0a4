"""A cost regulariser: the expected FLOPs, parameters or latency of the supernet's cells under the current edge
probabilities, added to the alpha loss with a weight, or as a hinge above a budget.

``expected = sum over cells, edges and ops of p(op) · cost(op)``, with ``p`` the relaxation's probabilities
(:meth:`~darts_pl.search.base.SearchSpace.op_probs`: ``softmax(alpha)`` for DARTS, the same probabilities SNAS's
:class:`~darts_pl.parts.resource.ResourceConstraint` weighs) and ``cost`` each candidate op's cost on that edge, counted
from the op itself at the shape the edge sees (:mod:`darts_pl.costs`). Units, per image and summed over the supernet's
cells: MFLOPs (multiply-adds of the convolutions and linear layers, in millions), millions of parameters, or
milliseconds from a latency table. The derived cell's cost is the same sum over the ops its genotype keeps.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
import torch.nn.functional as F

from darts_pl.costs import UNITS, LatencyTable, check_edges, op_costs, selected_cost
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import CellGenotype
from darts_pl.parts.base import NON_NEGATIVE, Range
from darts_pl.parts.regularizers import ArchRegularizer

if TYPE_CHECKING:
    from darts_pl.search.base import SearchSpace


class CostRegularizer(ArchRegularizer):
    """``weight · E[cost]`` or, with a ``budget``, ``weight · relu(E[cost] - budget)``.

    The per-op costs are counted once per space and input shape (one evaluation-mode forward of a zero image of the
    last batch's shape records every edge's input; each op is then costed alone, see :mod:`darts_pl.costs`), and kept
    for the fit. Every epoch the loop logs ``cost/expected_<metric>`` (under the current probabilities) and
    ``cost/derived_<metric>`` (of the ops the derived genotype keeps), and the genotype checkpoint writes the derived
    cost beside each epoch's genotype.

    Args:
        weight: Coefficient of the penalty (a schedule may move it: target ``regularizers.<i>.weight``). With costs
            in millions, 1e-2 moves the alphas about as much as the validation loss on the quickstart.
        metric: ``"flops"`` (MFLOPs: multiply-adds of the convolutions and linear layers, in millions; BatchNorm and
            pooling are not counted), ``"params"`` (millions of parameters) or ``"latency"`` (milliseconds, from
            ``latency_table``).
        latency_table: Path of a JSON file of op latencies in milliseconds, ``{"op": ms}`` or per edge input
            ``{"op": {"<C>x<H>x<W>/<stride>": ms}}`` (:class:`~darts_pl.costs.LatencyTable`); needed with, and only
            with, ``metric="latency"``.
        budget: When given, the penalty is ``relu(expected - budget)``: zero (and no gradient) at or under the budget.
            In the metric's unit, per image, summed over the supernet's cells.

    Raises:
        ConfigurationError: an unknown metric; a latency table missing with ``metric="latency"`` or given without it;
            a missing or malformed table; a negative budget.
    """

    tunable: ClassVar[Mapping[str, Range]] = {"weight": NON_NEGATIVE}

    def __init__(self, weight: float = 1e-2, metric: Literal["flops", "params", "latency"] = "flops",
                 latency_table: str | None = None, budget: float | None = None) -> None:
        super().__init__(weight)
        if metric not in UNITS:
            raise ConfigurationError(f"CostRegularizer: metric={metric!r}; use 'flops', 'params' or 'latency'.")
        if metric == "latency" and latency_table is None:
            raise ConfigurationError("CostRegularizer: metric='latency' needs latency_table, the path of a JSON file "
                                     "of op latencies in milliseconds ({\"sep_conv_3x3\": 0.21, ...}).")
        if metric != "latency" and latency_table is not None:
            raise ConfigurationError(f"CostRegularizer: latency_table={latency_table!r} is read only with "
                                     f"metric='latency' (metric={metric!r}); set metric: latency or remove the table.")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0):
            raise ConfigurationError(f"CostRegularizer: budget={budget!r}; give a cost >= 0 in {UNITS[metric]} per "
                                     "image (summed over the supernet's cells), or leave it unset.")
        self.metric = metric
        self.latency_table = latency_table
        self.budget = None if budget is None else float(budget)
        self._table = LatencyTable(latency_table) if latency_table is not None else None
        self._costs: dict[str, torch.Tensor] | None = None
        self._costs_of: tuple[object, ...] | None = None

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    def costs(self, space: SearchSpace) -> dict[str, torch.Tensor]:
        """Every op's cost on every edge, summed over the cells of each type: ``{cell type: (edges,
        len(primitives))}`` (float64, CPU), counted once per space and input shape."""
        check_edges(space, "CostRegularizer")
        key = (id(space), space.input_shape, len(space.edge_modules()))
        if self._costs is None or self._costs_of != key:
            self._costs = op_costs(space, self.metric, latency_table=self._table, owner="CostRegularizer")
            self._costs_of = key
        return self._costs

    def expected(self, space: SearchSpace) -> torch.Tensor:
        """``sum p · cost`` under the relaxation's probabilities, differentiable in the architecture tensors."""
        costs = self.costs(space)
        total = 0.0
        for cell, probs in space.op_probs().items():
            total = total + (probs * costs[cell].to(device=probs.device, dtype=probs.dtype)).sum()
        return total

    def penalty(self, space: SearchSpace) -> torch.Tensor:
        expected = self.expected(space)
        return expected if self.budget is None else F.relu(expected - self.budget)

    def derived(self, space: SearchSpace, genotype: CellGenotype | None = None) -> float:
        """The cost of the ops ``genotype`` (the space's current one when omitted) keeps."""
        genotype = genotype if genotype is not None else space.genotype()
        return selected_cost(self.costs(space), space.selection_mask(genotype))

    def genotype_metrics(self, space: SearchSpace, genotype: CellGenotype) -> dict[str, float]:
        return {f"cost/derived_{self.metric}": self.derived(space, genotype)}

    def epoch_metrics(self, space: SearchSpace) -> dict[str, float]:
        with torch.no_grad():
            expected = float(self.expected(space))
        return {f"cost/expected_{self.metric}": expected, **self.genotype_metrics(space, space.genotype())}
