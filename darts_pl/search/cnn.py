"""The DARTS convolutional search space: a supernet of mixed-op cells (Liu et al., 2019, Sec. 2.1).

Follows the original ``cnn/model_search.py``: a 3×3 conv stem with ``stem_multiplier · channels``
channels, ``num_cells`` cells with reduction cells at 1/3 and 2/3 of the depth (channels doubled there),
``num_nodes`` intermediate nodes per cell each summing a mixed op over every earlier state, the
cell output the concatenation of the last ``multiplier`` nodes, then global pooling and a linear head.

Notes (deviations from the paper's text, as in the original code):
    * BatchNorm has no affine parameters during search, so the op scaling stays with the alphas;
      pooling ops are followed by such a BatchNorm inside the mixed op.
    * Alphas are initialised to ``1e-3 · N(0, 1)`` by default (the paper says zeros: ``alpha_init="zeros"``).
    * The ``none`` op contributes exactly zero, so the mixed op never runs it (no tensor is allocated);
      its alpha still takes part in the softmax and receives a gradient through it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import PRIMITIVES, Genotype, derive_cnn
from darts_pl.ops import FactorizedReduce, GlobalAvgPool, ReLUConvBN, make_op
from darts_pl.search.base import LossOutput, SearchSpace, Stream, init_alpha
from darts_pl.search.derivation import Derivation
from darts_pl.search.edges import Edge, MixedOp, WeightedSum
from darts_pl.search.relaxation import EdgeWeights, Relaxation


class SearchCell(nn.Module):
    def __init__(self, num_nodes: int, multiplier: int, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool, primitives: Sequence[str], edge: Edge) -> None:
        super().__init__()
        self.reduction = reduction
        self.num_nodes = num_nodes
        self.multiplier = multiplier
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=False)
        strides = [2 if reduction and j < 2 else 1 for i in range(num_nodes) for j in range(2 + i)]
        self.edges = nn.ModuleList(MixedOp(channels, s, primitives, edge.build_extra(channels, s)) for s in strides)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: EdgeWeights, edge: Edge) -> torch.Tensor:
        rows = [row.unbind(0) for row in weights.weights.unbind(0)]  # (edges, ops) -> per-edge scalars
        index = weights.index.tolist() if weights.index is not None else [None] * len(rows)  # one host sync
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.num_nodes):
            node = None
            for j, h in enumerate(states):
                e = offset + j
                y = edge(self.edges[e], h, rows[e], index[e])
                node = y if node is None else node.add_(y)  # edge outputs are fresh: sum in place
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self.multiplier:], dim=1)  # (B, multiplier·C, H, W)


class CNNSearchSpace(SearchSpace):
    """The DARTS CIFAR-10 supernet.

    Args:
        num_classes: Classes of the data (linked from the data module by the CLI).
        in_channels: Image channels (3 for CIFAR-10, 1 for grayscale digits).
        channels: Initial channels C (16 in the paper's search).
        num_cells: Cells in the network (8 in the paper's search); reductions at 1/3 and 2/3.
        num_nodes: Intermediate nodes per cell (4).
        multiplier: How many of the last nodes form the cell output (4).
        stem_multiplier: Stem width as a multiple of ``channels`` (3).
        primitives: Candidate ops on every edge, names from ``darts_pl.ops.OPS``.
        alpha_init: ``"randn"`` (original code: ``alpha_init_scale · N(0, 1)``) or ``"zeros"`` (paper).
        alpha_init_scale: Scale of the random alpha initialisation.
        relaxation: Alphas → edge weights and probabilities (``Softmax``, DARTS, when omitted).
        edge: How an edge combines its ops (``WeightedSum``, DARTS, when omitted).
        derivation: Probabilities → genotype (``TopK``, DARTS, when omitted).
        channels_last: Run convolutions in channels-last memory format: the same results up to float
            rounding, and faster on CPU (on this project's 2-core benchmark, when it was introduced, the
            supernet's forward+backward took about 0.6x the time of the default format).
        label_smoothing: Label smoothing of the cross-entropy (0 in the paper's search).
    """

    task = "classification"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        num_cells: int = 8,
        num_nodes: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        primitives: Sequence[str] = PRIMITIVES,
        alpha_init: Literal["randn", "zeros"] = "randn",
        alpha_init_scale: float = 1e-3,
        channels_last: bool = True,
        label_smoothing: float = 0.0,
        relaxation: Relaxation | None = None,
        edge: Edge | None = None,
        derivation: Derivation | None = None,
    ) -> None:
        super().__init__(relaxation, derivation)
        self.edge = edge if edge is not None else WeightedSum()
        if self.edge.needs_index and not self.relaxation.samples:
            raise ConfigurationError(
                f"CNNSearchSpace: edge={type(self.edge).__name__} runs the sampled op of each edge, but the relaxation "
                f"{type(self.relaxation).__name__} samples none; use a sampling relaxation (GumbelSoftmax) or "
                "edge=WeightedSum.")
        _check_sizes(num_classes=num_classes, in_channels=in_channels, channels=channels,
                     num_cells=num_cells, num_nodes=num_nodes, multiplier=multiplier)
        self.num_classes = num_classes
        self.num_nodes = num_nodes
        self.multiplier = multiplier
        self._primitives = list(primitives)
        for name in self._primitives:
            make_op(name, 2, 1, False)  # fail early, listing the known names, on an unknown primitive
        self.channels_last = channels_last
        self.label_smoothing = label_smoothing

        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev_prev, c_prev, c_curr = c_stem, c_stem, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(num_cells):
            reduction = i in (num_cells // 3, 2 * num_cells // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(num_nodes, multiplier, c_prev_prev, c_prev, c_curr, reduction,
                                         reduction_prev, self._primitives, self.edge))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, multiplier * c_curr
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(c_prev, num_classes)

        num_edges = sum(2 + i for i in range(num_nodes))
        self.arch["normal"] = init_alpha(num_edges, len(self._primitives), alpha_init, alpha_init_scale)
        self.arch["reduce"] = init_alpha(num_edges, len(self._primitives), alpha_init, alpha_init_scale)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def primitives(self) -> list[str]:
        return list(self._primitives)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = self.edge_weights()  # {cell type: (edges, ops)}, one sample per forward
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"], self.edge)
        return self.classifier(self.global_pooling(s1).flatten(1))  # (B, classes)

    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        x, y = batch
        logits = self.logits(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return LossOutput(loss, logits.detach(), y)

    def edge_labels(self) -> list[str]:
        names = ["c_{k-2}", "c_{k-1}"]
        labels = []
        for i in range(self.num_nodes):
            labels += [f"{names[j] if j < 2 else j - 2}->{i}" for j in range(2 + i)]
        return labels

    def genotype(self) -> Genotype:
        probs = self.edge_probs()
        return derive_cnn(probs["normal"].tolist(), probs["reduce"].tolist(), num_nodes=self.num_nodes,
                          multiplier=self.multiplier, primitives=self._primitives, select=self.derivation.select)


def _check_sizes(**sizes: int) -> None:
    minimum = {"num_classes": 2, "in_channels": 1, "channels": 2, "num_cells": 3, "num_nodes": 1, "multiplier": 1}
    for name, value in sizes.items():
        if value < minimum[name]:
            why = " (the reduction cells sit at 1/3 and 2/3 of the depth, and a normal cell is needed too)" \
                if name == "num_cells" else ""
            raise ConfigurationError(
                f"CNNSearchSpace: {name}={value} is too small{why}; use {name} >= {minimum[name]}.")
    if sizes["multiplier"] > sizes["num_nodes"]:
        raise ConfigurationError(
            f"CNNSearchSpace: multiplier={sizes['multiplier']} exceeds num_nodes={sizes['num_nodes']}; "
            "the cell output concatenates the last `multiplier` nodes, so use multiplier <= num_nodes.")
