"""Convolutional networks built from a found cell, trained from scratch (Liu et al., 2019, Sec. 3.3).

Follows the original DARTS evaluation code (``cnn/model.py``) so that parameter counts match the paper:

* ``NetworkCIFAR``: a 3×3 conv stem to ``3·C`` channels, ``num_cells`` cells with reduction cells
  (channels doubled) at 1/3 and 2/3 of the depth, global average pooling, a linear classifier, and an
  auxiliary head on the output of the cell at 2/3 of the depth (training only).
  DARTS_V2, C=36, 20 cells: 3,349,342 parameters without the auxiliary head (the paper's 3.3M).
* ``NetworkImageNet``: the mobile setting: three stride-2 3×3 stem convs (224 → 28), 14 cells,
  C=48, 7×7 average pooling. DARTS_V2: 4,718,752 parameters without the auxiliary head (the paper's 4.7M).

Inside a cell, every op is built with affine BatchNorm; ops reading the two cell inputs of a reduction
cell have stride 2; the first input is preprocessed by a factorized reduce when the previous cell
reduced (the two inputs then differ in resolution), otherwise by a 1×1 ReLU-conv-BN. During training,
drop path zeroes the output of every op but the identity, per example, with probability
``drop_path_prob`` (a plain attribute; ``DropPathSchedule`` ramps it over the epochs).

``forward`` returns ``(logits, logits_aux)``; ``logits_aux`` is ``None`` in eval mode or without the head.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import Genotype, expect_kind, to_dict
from darts_pl.ops import FactorizedReduce, GlobalAvgPool, ReLUConvBN, make_op

GenotypeSpec = Genotype | str | os.PathLike[str] | Mapping[str, Any]


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole examples of ``x`` with probability ``drop_prob``; scale the kept ones by 1/(1 - p)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)  # (B, 1, 1, 1)
    return x / keep * mask


def cnn_genotype(spec: GenotypeSpec) -> Genotype:
    """A validated CNN genotype from a published name, a ``genotype.json`` path, a mapping or a genotype."""
    genotype = expect_kind(spec, "cnn", "a CNN genotype (DARTS_V1, DARTS_V2 or the genotype.json of a CNN search)")
    return cast(Genotype, genotype)


class Cell(nn.Module):
    """One cell of a derived network: each node sums two ops, each on one earlier state (paper Fig. 1).

    Args:
        genotype: The found cell pair; ``reduce``/``reduce_concat`` are used when ``reduction``.
        c_prev_prev: Channels of the cell's first input (output of cell k-2).
        c_prev: Channels of the cell's second input (output of cell k-1).
        channels: Channels of every node of this cell.
        reduction: Halve the resolution (stride 2 on the ops reading the two inputs).
        reduction_prev: The previous cell reduced, so the first input has twice this cell's input size.
    """

    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0)
        edges = genotype.reduce if reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.indices = [index for _, index in edges]
        self.num_nodes = len(edges) // 2
        self.multiplier = len(self.concat)
        self.ops = nn.ModuleList(
            make_op(name, channels, 2 if reduction and index < 2 else 1, True) for name, index in edges
        )
        # The original skips drop path on identities only (a stride-2 skip is a factorized reduce).
        self.drops = [not isinstance(op, nn.Identity) for op in self.ops]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        drop = self.training and drop_prob > 0.0
        for node in range(self.num_nodes):
            total = None
            for edge in (2 * node, 2 * node + 1):
                h = self.ops[edge](states[self.indices[edge]])
                if drop and self.drops[edge]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, multiplier·C, H, W)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on an intermediate feature map: ReLU, 5×5 average pooling, 1×1 conv to 128,
    BN, ReLU, 2×2 conv to 768, [BN,] ReLU, linear. The feature map must pool down to 2×2."""

    pool_stride = 3
    bn_after_768 = True
    expected = ""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(),
            nn.AvgPool2d(5, stride=self.pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if self.bn_after_768:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [(n - 5) // self.pool_stride + 1 for n in x.shape[-2:]]
        if min(x.shape[-2:]) < 5 or pooled != [2, 2]:
            raise ConfigurationError(
                f"{type(self).__name__} needs {self.expected} feature maps, got {tuple(x.shape[-2:])}; "
                "use the input size the network is designed for, or auxiliary=False.")
        return self.classifier(self.features(x).flatten(1))  # (B, classes)


class AuxiliaryHeadCIFAR(AuxiliaryHead):
    """The CIFAR auxiliary head, on the 8×8 output of the second reduction cell (32×32 inputs)."""

    pool_stride = 3
    bn_after_768 = True
    expected = "8×8 (32×32 inputs)"


class AuxiliaryHeadImageNet(AuxiliaryHead):
    """The ImageNet auxiliary head: as the CIFAR one with 5×5 pooling at stride 2.

    Note:
        The original code omits the BatchNorm after the 768-channel conv (a typo kept "for consistency
        with the experiments in the paper"); so does this head. The original's comment says it sees
        14×14 maps, but at 2/3 of the depth (after the second reduction) the mobile network's maps are
        7×7 for 224×224 inputs, and 7×7 is what pools to 2×2 here.
    """

    pool_stride = 2
    bn_after_768 = False
    expected = "7×7 (224×224 inputs)"


class _Network(nn.Module):
    """Shared bookkeeping of the derived networks: the cell stack, the auxiliary head, constructor args."""

    genotype_kind = "cnn"
    """The genotype kind this network is built from."""

    def __init__(self, genotype: GenotypeSpec, channels: int, num_cells: int, num_classes: int,
                 auxiliary: bool, in_channels: int) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, channels=channels, num_cells=num_cells, num_classes=num_classes,
                     in_channels=in_channels)
        self.genotype = cnn_genotype(genotype)
        self.channels = channels
        self.num_cells = num_cells
        self.num_classes = num_classes
        self.auxiliary = auxiliary
        self.in_channels = in_channels
        self.drop_path_prob = 0.0
        self.auxiliary_index = 2 * num_cells // 3

    def _build_cells(self, c_prev_prev: int, c_prev: int, reduction_prev: bool) -> tuple[int, int]:
        """Stack the cells; return (channels of the last cell, channels at the auxiliary head)."""
        self.cells = nn.ModuleList()
        c_curr, c_aux = self.channels, 0
        for i in range(self.num_cells):
            reduction = i in (self.num_cells // 3, 2 * self.num_cells // 3)
            if reduction:
                c_curr *= 2
            cell = Cell(self.genotype, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
            if i == self.auxiliary_index:
                c_aux = c_prev
        return c_prev, c_aux

    def _cells(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.auxiliary_index and self.auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        return s1, logits_aux

    def constructor_args(self) -> dict[str, Any]:
        """Everything needed to build this network again (JSON-ready; the genotype as a mapping)."""
        return {"genotype": to_dict(self.genotype), "channels": self.channels, "num_cells": self.num_cells,
                "num_classes": self.num_classes, "auxiliary": self.auxiliary, "in_channels": self.in_channels}


class NetworkCIFAR(_Network):
    """The CIFAR-10 evaluation network.

    Args:
        genotype: The cell: a ``Genotype``, a published name (``"DARTS_V2"``), a ``genotype.json`` path
            or a mapping.
        channels: Initial channels C (36 in the paper).
        num_cells: Cells (20 in the paper); reduction cells at 1/3 and 2/3 of the depth.
        num_classes: Output classes.
        auxiliary: Build the auxiliary head (used in training only; weight 0.4 in the paper).
        in_channels: Image channels (3; the original code is fixed to 3).
    """

    def __init__(self, genotype: GenotypeSpec, channels: int = 36, num_cells: int = 20, num_classes: int = 10,
                 auxiliary: bool = False, in_channels: int = 3) -> None:
        super().__init__(genotype, channels, num_cells, num_classes, auxiliary, in_channels)
        c_stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev, c_aux = self._build_cells(c_stem, c_stem, reduction_prev=False)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes)
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.stem(x)
        out, logits_aux = self._cells(s, s)
        return self.classifier(self.global_pooling(out).flatten(1)), logits_aux  # (B, classes)


class NetworkImageNet(_Network):
    """The ImageNet network in the mobile setting (224×224 inputs, < 600M multiply-adds).

    Args:
        genotype: The cell (see :class:`NetworkCIFAR`).
        channels: Initial channels C (48 in the paper).
        num_cells: Cells (14 in the paper).
        num_classes: Output classes (1000).
        auxiliary: Build the auxiliary head (used in training only).
        in_channels: Image channels.

    Note:
        As in the original, the classifier pools with a fixed 7×7 window, so inputs must be 224×224
        (the stems divide by 8, the reduction cells by 4).
    """

    def __init__(self, genotype: GenotypeSpec, channels: int = 48, num_cells: int = 14, num_classes: int = 1000,
                 auxiliary: bool = False, in_channels: int = 3) -> None:
        super().__init__(genotype, channels, num_cells, num_classes, auxiliary, in_channels)
        if channels % 2:
            raise ConfigurationError(f"NetworkImageNet: channels={channels} must be even (the first stem conv "
                                     "has channels // 2); use e.g. 48.")
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, channels // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        # stem0 and stem1 differ in resolution, so the first cell treats its inputs as after a reduction.
        c_prev, c_aux = self._build_cells(channels, channels, reduction_prev=True)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadImageNet(c_aux, num_classes)
        self.global_pooling = nn.AvgPool2d(7)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = self.stem0(x)  # (B, C, H/4, W/4)
        s1 = self.stem1(s0)  # (B, C, H/8, W/8)
        out, logits_aux = self._cells(s0, s1)
        if out.shape[-2:] != (7, 7):
            raise ConfigurationError(f"NetworkImageNet needs 224×224 inputs (7×7 before the 7×7 pooling); got "
                                     f"{tuple(x.shape[-2:])} inputs; crop them to 224 (ImageNetDataModule does).")
        return self.classifier(self.global_pooling(out).flatten(1)), logits_aux  # (B, classes)


def count_parameters(network: nn.Module, auxiliary: bool = False) -> int:
    """Number of parameters; the auxiliary head is left out unless ``auxiliary`` (the paper counts so)."""
    return sum(p.numel() for name, p in network.named_parameters()
               if auxiliary or not name.startswith("auxiliary_head."))


def _check_sizes(owner: str, **sizes: int) -> None:
    minimum = {"channels": 2, "num_cells": 3, "num_classes": 1, "in_channels": 1}
    for name, value in sizes.items():
        if value < minimum[name]:
            why = " (reduction cells sit at 1/3 and 2/3 of the depth)" if name == "num_cells" else ""
            raise ConfigurationError(f"{owner}: {name}={value} is too small{why}; use {name} >= {minimum[name]}.")
