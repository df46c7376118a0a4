"""A NAS-Bench-201 cell trained from scratch in the benchmark's macro network (Dong & Yang, ICLR 2020;
the authors' ``TinyNetwork`` and ``InferCell`` in AutoDL-Projects), so that parameter counts and the network
match the benchmark's.

``NB201Network``: a 3×3 conv stem with BN; three stages of ``num_cells`` cells (N=5) at ``C``, ``2C``, ``4C``
channels (C=16) joined by residual blocks of stride 2 (``darts_pl.ops.ResNetBasicblock``); then BN, ReLU,
global average pooling and a linear classifier. In a cell, node ``i`` sums its ops, each on one earlier node
(node 0 is the cell input), and the cell output is the last node. Every BatchNorm is affine and keeps running
statistics. The all-``nor_conv_3x3`` cell with C=16, N=5 has 1,531,546 parameters on CIFAR-10 (10 classes),
as the benchmark lists.

``forward`` returns ``(logits, None)`` (no auxiliary head), the shape ``LitClassifier`` expects
(``--model.network nb201``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import NB201Genotype, expect_kind
from darts_pl.ops import GlobalAvgPool, ResNetBasicblock, make_op

NB201GenotypeSpec = NB201Genotype | str | os.PathLike[str] | Mapping[str, Any]


def nb201_genotype(spec: NB201GenotypeSpec) -> NB201Genotype:
    """A validated NB201 cell from an architecture string, a ``genotype.json`` path, a mapping or a genotype."""
    genotype = expect_kind(spec, "nb201", "a NAS-Bench-201 cell: an architecture string ('|nor_conv_3x3~0|+|...|') or "
                           "the genotype.json of an NB201 search")
    return cast(NB201Genotype, genotype)


def build_macro(network: nn.Module, in_channels: int, channels: int, num_cells: int,
                make_cell: Callable[[int], nn.Module]) -> int:
    """The benchmark's macro skeleton on ``network``: ``stem`` (conv 3x3 + BN), ``cells`` (3 stages of
    ``num_cells`` cells of ``make_cell(width)``, a residual block halving the size and doubling the width
    between stages) and ``lastact`` (BN + ReLU). Returns the final width."""
    network.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
    network.cells = nn.ModuleList()
    c = channels
    for stage in range(3):
        if stage:
            network.cells.append(ResNetBasicblock(c, 2 * c, 2))
            c *= 2
        for _ in range(num_cells):
            network.cells.append(make_cell(c))
    network.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
    return c


class NB201Cell(nn.Module):
    """One trained cell (the authors' ``InferCell``): node ``i`` = sum of its ops, each on one earlier node.

    Args:
        genotype: The cell.
        channels: Channels of the cell (input, nodes and output alike).
    """

    def __init__(self, genotype: NB201Genotype, channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.inputs: list[list[int]] = []  # per node, the input of each of its layers
        for node in genotype.nodes:
            for op, _ in node:
                self.layers.append(make_op(op, channels, 1, affine=True))
            self.inputs.append([index for _, index in node])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for inputs in self.inputs:
            node = None
            for index in inputs:
                y = self.layers[k](nodes[index])
                node = y if node is None else node + y
                k += 1
            nodes.append(node)
        return nodes[-1]  # (B, C, H, W)


class NB201Network(nn.Module):
    """The NAS-Bench-201 network of one cell.

    Args:
        genotype: The cell: an architecture string, a ``genotype.json`` of an NB201 search, a mapping or a genotype.
        channels: Channels C of the first stage (16 in the benchmark).
        num_cells: Cells per stage, N (5 in the benchmark: 17 blocks with the two residual reductions).
        num_classes: Classes.
        in_channels: Image channels.
        auxiliary: Must be false: the benchmark's network has no auxiliary head.

    Raises:
        GenotypeError: The genotype is not an NB201 cell.
        ConfigurationError: A size out of range, or ``auxiliary=True``.
    """

    genotype_kind = "nb201"
    """The genotype kind this network is built from."""

    def __init__(self, genotype: NB201GenotypeSpec, channels: int = 16, num_cells: int = 5, num_classes: int = 10,
                 in_channels: int = 3, auxiliary: bool = False) -> None:
        super().__init__()
        if auxiliary:
            raise ConfigurationError("NB201Network: auxiliary=True, but the NAS-Bench-201 network has no auxiliary "
                                     "head; set --model.auxiliary false.")
        for name, value, least in (("channels", channels, 1), ("num_cells", num_cells, 1),
                                   ("num_classes", num_classes, 2), ("in_channels", in_channels, 1)):
            if value < least:
                raise ConfigurationError(f"NB201Network: {name}={value} is too small; use {name} >= {least}.")
        self.genotype = nb201_genotype(genotype)
        self.drop_path_prob = 0.0  # the benchmark's recipe has no drop path; kept for LitClassifier's interface
        c = build_macro(self, in_channels, channels, num_cells, lambda width: NB201Cell(self.genotype, width))
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        out = self.global_pooling(self.lastact(feature)).flatten(1)  # (B, 4C)
        return self.classifier(out), None  # (B, classes), no auxiliary logits
