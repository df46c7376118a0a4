"""The NAS-Bench-201 search space (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020), as the supernet of the authors' DARTS and GDAS baselines
(``TinyNetworkDarts`` / ``TinyNetworkGDAS`` with ``NAS201SearchCell`` in AutoDL-Projects).

The cell is a complete DAG over ``num_nodes`` nodes (4: node 0 is the cell input, nodes 1-3 are computed):
node ``i`` is the sum over ``j < i`` of the mixed op of edge ``j -> i`` applied to node ``j``; the cell output
is the last node. Its 6 edges (rows of ``arch["cell"]``, in the order ``0->1, 0->2, 1->2, 0->3, 1->3, 2->3``,
the authors' sorted ``"i<-j"`` keys) choose among ``none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3`` (``darts_pl.genotypes.NB201_PRIMITIVES``). The macro network: a 3×3 conv stem with BN, three
stages of ``num_cells`` cells (N=5) at ``C``, ``2C`` and ``4C`` channels (C=16) joined by residual blocks of
stride 2 (``darts_pl.ops.ResNetBasicblock``), then BN, ReLU, global pooling and a linear classifier. Every
cell of the network shares one architecture tensor, ``arch["cell"]`` (edges × ops).

The genotype keeps every edge with its strongest op, ``none`` included (:class:`ArgmaxPerEdge`, the authors'
``genotype()``), and is written in the benchmark's architecture string
(``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|``), which NAS-Bench-201 and NATS-Bench look up.

Notes (as the authors' search models, unlike the DARTS space):
    * BatchNorm in the cells has no affine parameters; whether it keeps running statistics is an option
      (``track_running_stats``, the authors' ``BN`` script argument; their documented runs use 1). The stem,
      the residual blocks and the final BN are affine.
    * The pooling op is a plain 3×3 average pooling: no BatchNorm follows it inside the mixed op.
    * Deviation: the authors' search convolutions carry a bias (``bias=not affine``), which the BatchNorm
      right after them cancels exactly in training mode; here they have none (the same function, 2 fewer
      parameters per convolution).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import NB201_PRIMITIVES, NB201Genotype, derive_nb201
from darts_pl.networks.nb201 import build_macro
from darts_pl.ops import GlobalAvgPool, make_op
from darts_pl.parts import ArgmaxPerEdge, Derivation, Edge, EdgeNormalization, EdgeWeights, OpWrapper, Relaxation, TopK
from darts_pl.search.base import LossOutput, SearchSpace, Stream, check_primitives, init_alpha, per_edge
from darts_pl.search.mixed_op import MixedOp


def _untrack_running_stats(module: nn.Module) -> None:
    """BatchNorms in ``module`` normalise with batch statistics always, as ``track_running_stats=False`` builds them."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats = False
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                m.register_buffer(name, None)


def nb201_mixed_op(channels: int, primitives: Sequence[str], edge: Edge, wrappers: Sequence[OpWrapper] = ()) -> MixedOp:
    """The candidate ops of one NB201 edge (stride 1): the DARTS mixed op without the BatchNorm it puts after
    pooling ops (the authors' NB201 cell has none)."""
    return MixedOp(edge.op_channels(channels), 1, primitives, edge.build_extra(channels, 1), wrappers,
                   pool_batch_norm=False)


class NB201SearchCell(nn.Module):
    """The NAS-Bench-201 search cell: node ``i`` = sum over ``j < i`` of the mixed op of edge ``j -> i`` on node ``j``.

    Args:
        channels: Channels of the cell (input, nodes and output alike).
        num_nodes: Nodes, the input included (4).
        primitives: Candidate ops on every edge.
        edge: How an edge combines its ops (``WeightedSum``, ``SampledOp``...).
        track_running_stats: Whether the cell's BatchNorms keep running statistics.
        wrappers: The space's op wrappers.
    """

    def __init__(self, channels: int, num_nodes: int, primitives: Sequence[str], edge: Edge,
                 track_running_stats: bool = True, wrappers: Sequence[OpWrapper] = ()) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        num_edges = num_nodes * (num_nodes - 1) // 2
        self.edges = nn.ModuleList(nb201_mixed_op(channels, primitives, edge, wrappers) for _ in range(num_edges))
        if not track_running_stats:
            _untrack_running_stats(self)

    def forward(self, x: torch.Tensor, weights: EdgeWeights, edge: Edge) -> torch.Tensor:
        rows, index, scales = per_edge(weights)
        nodes = [x]
        e = 0
        for i in range(1, self.num_nodes):
            node = None
            for j in range(i):
                y = edge(self.edges[e], nodes[j], rows[e], index[e], scales[e])
                node = y if node is None else node.add_(y)  # edge outputs are fresh: sum in place
                e += 1
            nodes.append(node)
        return nodes[-1]  # (B, C, H, W)


class NB201SearchSpace(SearchSpace):
    """The NAS-Bench-201 supernet, one architecture tensor shared by all its cells (``arch["cell"]``).

    Args:
        num_classes: Classes of the data (linked from the data module by the CLI).
        in_channels: Image channels (3 for CIFAR, 1 for grayscale digits).
        channels: Channels C of the first stage (16 in the benchmark); the stages have C, 2C, 4C.
        num_cells: Cells per stage, N (5 in the benchmark).
        num_nodes: Nodes per cell, the input included (4 in the benchmark: 6 edges).
        primitives: Candidate ops on every edge, names from ``darts_pl.ops.OPS``.
        track_running_stats: The cells' BatchNorms keep running statistics (the authors' ``BN`` argument; 1 in
            their documented runs). Without them, evaluation normalises with the batch's statistics.
        alpha_init: ``"randn"`` (authors' code: ``alpha_init_scale · N(0, 1)``) or ``"zeros"``.
        alpha_init_scale: Scale of the random alpha initialisation.
        channels_last: Run convolutions in channels-last memory format (the same results up to rounding).
        label_smoothing: Label smoothing of the cross-entropy (0 in the benchmark).
        relaxation: Alphas → edge weights and probabilities (``Softmax``, DARTS, when omitted).
        edge: How an edge combines its ops (``WeightedSum``, DARTS, when omitted; GDAS on NB201 is
            ``SampledOp(other_weights=True)``, the authors' ``forward_gdas``).
        derivation: Probabilities → cell (``ArgmaxPerEdge``, the benchmark's, when omitted; ``TopK`` keeps every
            edge with its strongest op other than ``none``).
        op_wrappers: Parts applied to some ops' outputs.
        edge_normalization: PC-DARTS's edge normalisation (a weight per edge, softmax over each node's inputs).

    Raises:
        ConfigurationError: A size out of range, an unknown primitive, a derivation that does not name one op per
            edge, or a sampling edge with a relaxation that samples nothing.
    """

    per_cell_weights: ClassVar[bool] = True

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        num_cells: int = 5,
        num_nodes: int = 4,
        primitives: Sequence[str] = NB201_PRIMITIVES,
        track_running_stats: bool = True,
        alpha_init: Literal["randn", "zeros"] = "randn",
        alpha_init_scale: float = 1e-3,
        channels_last: bool = True,
        label_smoothing: float = 0.0,
        relaxation: Relaxation | None = None,
        edge: Edge | None = None,
        derivation: Derivation | None = None,
        op_wrappers: list[OpWrapper] | None = None,
        edge_normalization: EdgeNormalization | None = None,
    ) -> None:
        super().__init__(relaxation, derivation if derivation is not None else ArgmaxPerEdge(), edge, op_wrappers,
                         edge_normalization)
        if not isinstance(self.derivation, (ArgmaxPerEdge, TopK)):
            raise ConfigurationError(
                f"NB201SearchSpace: derivation={type(self.derivation).__name__} does not name one op per edge; a "
                "NAS-Bench-201 cell keeps every edge: use darts_pl.search.ArgmaxPerEdge (the benchmark's, `none` "
                "included) or darts_pl.search.TopK (the strongest op other than `none`).")
        _check_sizes(num_classes=num_classes, in_channels=in_channels, channels=channels, num_cells=num_cells,
                     num_nodes=num_nodes)
        self.num_classes = num_classes
        self.num_nodes = num_nodes
        self._primitives = list(primitives)
        check_primitives("NB201SearchSpace", self._primitives)
        for name in self._primitives:
            make_op(name, 2, 1, False)  # fail early, listing the known names, on an unknown primitive
        self.channels_last = channels_last
        self.label_smoothing = label_smoothing

        c = build_macro(self, in_channels, channels, num_cells, lambda width: NB201SearchCell(
            width, num_nodes, self._primitives, self.edge, track_running_stats, self.op_wrappers))
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(c, num_classes)
        self.add_cells({"cell": init_alpha(num_nodes * (num_nodes - 1) // 2, len(self._primitives), alpha_init,
                                           alpha_init_scale)},
                       in_degrees=list(range(1, num_nodes)), init=alpha_init, init_scale=alpha_init_scale)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def primitives(self) -> list[str]:
        return list(self._primitives)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = self.edge_weights()["cell"]  # (edges, ops), one sample per forward, shared by every cell
        feature = self.stem(x)
        for cell in self.cells:
            if isinstance(cell, NB201SearchCell):
                feature = cell(feature, self.cell_edge_weights("cell", weights), self.edge)
            else:  # a residual block between stages
                feature = cell(feature)
        out = self.global_pooling(self.lastact(feature)).flatten(1)  # (B, 4C)
        return self.classifier(out)  # (B, classes)

    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        x, y = batch
        logits = self.logits(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return LossOutput(loss, logits.detach(), y)

    def edge_labels(self) -> list[str]:
        return [f"{j}->{i}" for i in range(1, self.num_nodes) for j in range(i)]

    def edge_modules(self) -> list[tuple[str, int, nn.Module]]:
        return [("cell", row, mixed) for cell in self.cells if isinstance(cell, NB201SearchCell)
                for row, mixed in enumerate(cell.edges)]

    def genotype(self) -> NB201Genotype:
        probs = self.derivation_probs()["cell"].tolist()
        return derive_nb201(probs, num_nodes=self.num_nodes, primitives=self._primitives,
                            select=self.derivation.select)


def _check_sizes(**sizes: int) -> None:
    minimum = {"num_classes": 2, "in_channels": 1, "channels": 1, "num_cells": 1, "num_nodes": 2}
    for name, value in sizes.items():
        if value < minimum[name]:
            raise ConfigurationError(
                f"NB201SearchSpace: {name}={value} is too small; use {name} >= {minimum[name]}"
                f"{' (4 in the benchmark)' if name == 'num_nodes' else ''}.")
