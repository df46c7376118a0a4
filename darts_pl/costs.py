"""Costs of a supernet's candidate ops, counted from the ops themselves at the shapes the space's edges see.

One forward of a zero image, in evaluation mode, records the input shape of every edge (the forward leaves the random
generators, the batch-norm statistics, the sampling stream and the mode as they were). Each candidate op is then built
as a derived network builds it (``make_op(name, channels, stride, affine=True)``: the search's ops differ only by the
affine parameters of their BatchNorms) and costed alone, per image:

* ``"flops"``: the multiply-accumulates of its ``nn.Conv2d`` and ``nn.Linear`` layers on a zero tensor of the edge's
  input shape, counted by forward hooks (``output elements · in_channels / groups · kernel area`` for a convolution,
  ``output elements · in_features`` for a linear layer), in millions (MFLOPs, one multiply-add counted once, the unit
  DARTS and its successors report). BatchNorm, pooling, ReLU and additions are not counted (``torch.utils.
  flop_counter.FlopCounterMode`` counts the same layers, as twice the multiply-adds);
* ``"params"``: ``sum(p.numel())`` over the op's parameters, in millions;
* ``"latency"``: milliseconds from a user's table (:class:`LatencyTable`).

``none`` costs nothing. The costs of a cell type are summed over its cells (``{cell type: (edges, len(primitives))}``,
float64), so ``sum p · cost`` is the expected cost of the whole supernet's cells under the probabilities ``p``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.ops import make_op

if TYPE_CHECKING:
    from darts_pl.search.base import SearchSpace

Kind = Literal["flops", "params", "latency"]
UNITS: dict[str, str] = {"flops": "MFLOPs", "params": "M params", "latency": "ms"}
"""The unit of each kind of cost (per image, summed over the cells)."""

EdgeShapes = dict[str, list[list[tuple[nn.Module, tuple[int, ...]]]]]
"""``{cell type: [per cell of that type, in order: [(its MixedOp, its input shape (C, H, W)) per edge]]}``."""


class _EdgeInputs:
    """Records, during one forward, each cell's edges: their candidate-op module and input shape, by cell type."""

    def __init__(self) -> None:
        self.cells: EdgeShapes = {}
        self._edges: list[tuple[nn.Module, tuple[int, ...]]] | None = None

    def on_cell(self, cell: str, position: int, weights: torch.Tensor) -> torch.Tensor:
        self._edges = []
        self.cells.setdefault(cell, []).append(self._edges)
        return weights

    def on_edge(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        mixed, x = args[0], args[1]
        if self._edges is not None:
            self._edges.append((mixed, tuple(x.shape[1:])))


def check_edges(space: SearchSpace, owner: str) -> None:
    """Refuse, naming ``owner``, a space whose cells have no edges of candidate-op modules (the recurrent space)."""
    if not space.has_edges or space.edge is None or not space.per_cell_weights:
        raise ConfigurationError(f"{owner}: {type(space).__name__} has no edges of candidate ops to cost; use it with "
                                 "CNNSearchSpace or NB201SearchSpace.")


def edge_inputs(space: SearchSpace, input_shape: Sequence[int], owner: str) -> EdgeShapes:
    """Every edge of every cell with its input shape, from one evaluation-mode forward of a zero image of
    ``input_shape`` (``(channels, height, width)``); ``owner`` names the part in the error of a space without edges.

    Raises:
        ConfigurationError: the space's cells have no edges of candidate-op modules (the recurrent space).
    """
    check_edges(space, owner)
    recorder = _EdgeInputs()
    first = next((m.weight for m in space.modules() if isinstance(m, nn.Conv2d)), None)
    first = first if first is not None else next(space.parameters())
    device = first.device
    x = torch.zeros(1, *input_shape, device=device, dtype=first.dtype)
    batch = (x, torch.zeros(1, dtype=torch.long, device=device))
    rng = [device] if device.type == "cuda" else []
    was_training, seen = space.training, space.input_shape
    handle = space.edge.register_forward_pre_hook(recorder.on_edge)
    try:
        with torch.random.fork_rng(devices=rng), torch.no_grad(), space.per_cell(recorder.on_cell):
            space.eval()
            space(batch, "val")
    finally:
        handle.remove()
        space.train(was_training)
        space.input_shape = seen
    return recorder.cells


def count_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of the ``nn.Conv2d`` and ``nn.Linear`` layers of ``module`` on one zero input of
    ``input_shape`` (``(C, H, W)``), counted by forward hooks."""
    total = 0

    def conv(layer: nn.Conv2d, args: tuple[Any, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        total += out[0].numel() * per_output

    def linear(layer: nn.Linear, args: tuple[Any, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * layer.in_features

    handles = [m.register_forward_hook(conv) for m in module.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear) for m in module.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            module.eval()
            module(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class LatencyTable:
    """Per-op latencies in milliseconds, read from a JSON file in one of two forms:

    * ``{"sep_conv_3x3": 0.21, "max_pool_3x3": 0.05, ...}``: one latency per op, wherever it runs;
    * ``{"sep_conv_3x3": {"16x32x32/1": 0.21, "32x16x16/2": 0.12}, ...}``: per edge input, keyed
      ``"<channels>x<height>x<width>/<stride>"`` (the shapes a cell type's edges see: the ops of a cell are costed at
      its channels and resolution).

    Every op of the space but ``none`` (which costs nothing) must be listed; the two forms may be mixed by op.

    Raises:
        ConfigurationError: the file is missing or unreadable, not JSON, not an object of numbers (or of objects of
            numbers), or a latency is negative.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        where = f"CostRegularizer: latency_table={self.path!r}"
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise ConfigurationError(f"{where} does not exist; give the path of a JSON file of op latencies in "
                                     "milliseconds, e.g. {\"sep_conv_3x3\": 0.21, ...}.") from None
        except OSError as err:
            raise ConfigurationError(f"{where} cannot be read ({err.strerror}); give a readable JSON file.") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigurationError(f"{where} is not valid JSON ({err}); write it as {{\"op name\": milliseconds, "
                                     "...}.") from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"{where} holds a {type(data).__name__}; write it as {{\"op name\": milliseconds, "
                                     "...}.")
        for op, value in data.items():
            values = value.values() if isinstance(value, dict) else [value]
            if not all(_is_latency(v) for v in values):
                raise ConfigurationError(f"{where}: the entry of {op!r} is {value!r}; give a latency in milliseconds "
                                         "(a number >= 0) or {\"<C>x<H>x<W>/<stride>\": milliseconds, ...}.")
        self.table: dict[str, Any] = data

    def latency(self, op: str, input_shape: Sequence[int], stride: int) -> float:
        """The latency of ``op`` on an edge of ``input_shape`` and ``stride``.

        Raises:
            ConfigurationError: the op, or its shape in the per-shape form, is not in the table.
        """
        if op == "none":
            return 0.0
        where = f"CostRegularizer: latency_table={self.path!r}"
        if op not in self.table:
            raise ConfigurationError(f"{where} has no latency for the op {op!r} of the space; add \"{op}\": "
                                     "milliseconds to the file, or remove the op from the space's primitives.")
        entry = self.table[op]
        if not isinstance(entry, dict):
            return float(entry)
        key = f"{'x'.join(str(d) for d in input_shape)}/{stride}"
        if key not in entry:
            raise ConfigurationError(f"{where} has no latency for {op!r} at the edge input {key!r}; add \"{key}\": "
                                     f"milliseconds to its entry (it lists {sorted(entry)}).")
        return float(entry[key])


def _is_latency(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def op_costs(space: SearchSpace, kind: str, input_shape: Sequence[int] | None = None,
             latency_table: LatencyTable | None = None, owner: str = "CostRegularizer") -> dict[str, torch.Tensor]:
    """The cost of every candidate op (a column per name of ``space.primitives``) on every edge, summed over the
    cells of each cell type: ``{cell type: (edges, len(primitives))}``, float64 on the CPU, in :data:`UNITS`.

    Args:
        space: A space with edges of candidate ops (DARTS CNN, NAS-Bench-201).
        kind: ``"flops"``, ``"params"`` or ``"latency"``.
        input_shape: One example's shape, ``(channels, height, width)``; the last batch's when omitted.
        latency_table: The table of ``kind="latency"``.

    Raises:
        ConfigurationError: an unknown kind, no input shape (the space has seen no image batch), no table for
            latencies or an op missing from it, a space without edges.
    """
    if kind not in UNITS:
        raise ConfigurationError(f"{owner}: metric={kind!r}; use 'flops', 'params' or 'latency'.")
    if kind == "latency" and latency_table is None:
        raise ConfigurationError(f"{owner}: metric='latency' needs latency_table, the path of a JSON file of op "
                                 "latencies in milliseconds.")
    shape = tuple(input_shape) if input_shape is not None else space.input_shape
    if shape is None:
        raise ConfigurationError(f"{owner}: {type(space).__name__} has seen no image batch, so the shapes its edges "
                                 "run at are unknown; run the space on an image batch first (a fit runs one before "
                                 "its first alpha step).")
    primitives = space.primitives
    memo: dict[tuple[str, tuple[int, ...], int], float] = {}

    def cost(name: str, edge_shape: tuple[int, ...], stride: int) -> float:
        key = (name, edge_shape, stride)
        if key not in memo:
            memo[key] = _one_cost(name, edge_shape, stride, kind, latency_table)
        return memo[key]

    tables = {}
    with torch.random.fork_rng(devices=[]):  # building the ops draws their initial weights
        for cell, cells in edge_inputs(space, shape, owner).items():
            table = torch.zeros(len(cells[0]), len(primitives), dtype=torch.float64)  # (edges, len(primitives))
            for edges in cells:
                for e, (mixed, edge_shape) in enumerate(edges):
                    stride = int(getattr(mixed, "stride", 1))
                    for j, name in enumerate(primitives):
                        table[e, j] += cost(name, edge_shape, stride)
            tables[cell] = table
    return tables


def _one_cost(name: str, shape: tuple[int, ...], stride: int, kind: str, table: LatencyTable | None) -> float:
    if name == "none":
        return 0.0
    if kind == "latency":
        assert table is not None
        return table.latency(name, shape, stride)
    op = make_op(name, shape[0], stride, affine=True)
    return (count_macs(op, shape) if kind == "flops" else count_params(op)) / 1e6


def selected_cost(costs: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> float:
    """The cost of the ops a genotype keeps: ``costs`` summed over the ``(edges, len(primitives))`` ``mask``."""
    return float(sum((costs[cell] * mask[cell].to(torch.float64)).sum() for cell in costs if cell in mask))

