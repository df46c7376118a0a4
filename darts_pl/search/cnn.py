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

PC-DARTS (Xu et al., 2020) adds two parts: partial channels are an edge (``edge=PartialChannel(k)``); edge
normalisation (``edge_normalization=EdgeNormalization()``, or ``true``) adds a second architecture tensor per cell
type, ``arch["normal_edges"]`` and ``arch["reduce_edges"]`` (one value per edge, softmax over each node's incoming
edges), which scales every edge's output and multiplies into the probabilities the derivation reads. Its ImageNet
search network has a stem of three stride-2 convolutions (``stem="imagenet"``, the authors'
``model_search_imagenet.py``). P-DARTS's skip dropout is an op wrapper (``op_wrappers=[SkipDropout(p)]``, or the
``skip_dropout`` rate).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import PRIMITIVES, Genotype, derive_cnn
from darts_pl.ops import FactorizedReduce, GlobalAvgPool, ReLUConvBN, make_op
from darts_pl.parts import Derivation, Edge, EdgeNormalization, EdgeWeights, OpWrapper, Relaxation, SkipDropout
from darts_pl.search.base import LossOutput, SearchSpace, Stream, check_primitives, init_alpha, per_edge
from darts_pl.search.mixed_op import MixedOp


class SearchCell(nn.Module):
    def __init__(self, num_nodes: int, multiplier: int, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool, primitives: Sequence[Sequence[str]], edge: Edge,
                 wrappers: Sequence[OpWrapper] = ()) -> None:
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
        self.edges = nn.ModuleList(MixedOp(edge.op_channels(channels), s, ops, edge.build_extra(channels, s),
                                           wrappers) for s, ops in zip(strides, primitives))  # ops: per edge

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: EdgeWeights, edge: Edge) -> torch.Tensor:
        rows, index, scales = per_edge(weights)
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.num_nodes):
            node = None
            for j, h in enumerate(states):
                e = offset + j
                y = edge(self.edges[e], h, rows[e], index[e], scales[e])
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
        edge_normalization: PC-DARTS's edge normalisation (an ``EdgeNormalization`` part, or ``true`` for one): a
            weight per edge, ``softmax`` over each node's incoming edges, scales the edge's output; the genotype is
            derived from ``probabilities × edge weight`` (the authors' ``genotype()``), by the space's
            ``derivation``. Initialised as the alphas (``alpha_init``) unless the part says otherwise.
        stem: ``"cifar"``: one 3×3 convolution (DARTS); ``"imagenet"``: PC-DARTS's ImageNet search stem, two
            stride-2 3×3 convolutions (``stem_multiplier · channels / 2``, then ``· channels`` wide) giving the
            first cell's ``c_{k-2}``, and a third (ReLU, stride-2 conv, BN) giving its ``c_{k-1}``: the input is
            8× smaller at the first cell, whose ``c_{k-2}`` is reduced as after a reduction cell.
        edge_primitives: The candidate ops of each edge, per cell type: ``{"normal": [[op, ...] per edge], "reduce":
            ...}``, one row per edge in alpha row order (:meth:`edge_labels`), names from ``primitives``, every row of
            a cell type equally long (a cell type left out gets ``primitives`` on every edge). The alphas of a cell
            type are then ``(edges, row length)``, column ``j`` of row ``e`` being the op
            ``edge_primitives[cell][e][j]``, and only those ops are built (P-DARTS's pruned stages, or a space
            pruned by hand). :meth:`edge_probs` still has one column per ``primitives`` name (zero for an op an
            edge does not have), so monitors, the alpha history and derivation read every stage alike.
        op_wrappers: Parts applied to some ops' outputs (``SkipDropout``: P-DARTS).
        skip_dropout: A shorthand for ``op_wrappers: [SkipDropout(p)]`` (P-DARTS; 0 adds none). A schedule moves the
            rate through the target ``space.skip_dropout.p``.
        alpha_columns: How ``edge_primitives`` shapes the alphas. ``"edge"``: one column per op of the edge (P-DARTS's
            stages, which start their alphas afresh). ``"primitives"``: one column per name of ``primitives`` on
            every edge, as before the ops were pruned (DrNAS's progressive learning): an op an edge lacks is not built
            and gets weight 0, the edge's other weights are renormalised (the authors' masked ``process_step_matrix``),
            and its alpha stays in the tensor (the regularizers and the optimizer still see it).
    """

    per_cell_weights: ClassVar[bool] = True

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
        edge_normalization: bool | EdgeNormalization = False,
        stem: Literal["cifar", "imagenet"] = "cifar",
        relaxation: Relaxation | None = None,
        edge: Edge | None = None,
        derivation: Derivation | None = None,
        edge_primitives: dict[str, list[list[str]]] | None = None,
        op_wrappers: list[OpWrapper] | None = None,
        skip_dropout: float = 0.0,
        alpha_columns: Literal["edge", "primitives"] = "edge",
    ) -> None:
        wrappers = list(op_wrappers or [])
        if skip_dropout:
            wrappers.append(SkipDropout(skip_dropout))
        normalization = EdgeNormalization() if edge_normalization is True else edge_normalization or None
        super().__init__(relaxation, derivation, edge, wrappers, normalization)
        _check_sizes(num_classes=num_classes, in_channels=in_channels, channels=channels,
                     num_cells=num_cells, num_nodes=num_nodes, multiplier=multiplier)
        self.num_classes = num_classes
        self.num_nodes = num_nodes
        self.multiplier = multiplier
        self._primitives = list(primitives)
        check_primitives("CNNSearchSpace", self._primitives)
        for name in self._primitives:
            make_op(name, 2, 1, False)  # fail early, listing the known names, on an unknown primitive
        num_edges = sum(2 + i for i in range(num_nodes))
        self._edge_primitives = check_edge_primitives(edge_primitives, self._primitives, num_edges, num_nodes)
        self.alpha_columns = _check_alpha_columns(alpha_columns, self.relaxation)
        built = self._edge_primitives if alpha_columns == "edge" else {  # masked layout: absent ops are not built
            cell: [[name if name in row else "none" for name in self._primitives] for row in rows]
            for cell, rows in self._edge_primitives.items()}
        self._op_masks = {cell: torch.tensor([[name in row for name in self._primitives] for row in rows])
                          for cell, rows in self._edge_primitives.items()
                          if alpha_columns == "primitives" and any(set(row) != set(self._primitives) for row in rows)}
        self.channels_last = channels_last
        self.label_smoothing = label_smoothing

        c_stem = stem_multiplier * channels
        self.stem, self.stem1 = _stem(stem, in_channels, c_stem)
        c_prev_prev, c_prev, c_curr = c_stem, c_stem, channels
        self.cells = nn.ModuleList()
        reduction_prev = self.stem1 is not None  # c_{k-2} of the first cell is twice the size of c_{k-1}
        for i in range(num_cells):
            reduction = i in (num_cells // 3, 2 * num_cells // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(num_nodes, multiplier, c_prev_prev, c_prev, c_curr, reduction, reduction_prev,
                                         built["reduce" if reduction else "normal"], self.edge,
                                         self.op_wrappers))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, multiplier * c_curr
        self.global_pooling = GlobalAvgPool()
        self.classifier = nn.Linear(c_prev, num_classes)

        self.add_cells({cell: init_alpha(num_edges, len(built[cell][0]), alpha_init, alpha_init_scale)
                        for cell in ("normal", "reduce")},  # (edges, ops of each edge)
                       in_degrees=[2 + i for i in range(num_nodes)], init=alpha_init, init_scale=alpha_init_scale)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def primitives(self) -> list[str]:
        return list(self._primitives)

    @property
    def edge_primitives(self) -> dict[str, list[list[str]]]:
        """The candidate ops of every edge per cell type, in alpha column order."""
        return {cell: [list(row) for row in rows] for cell, rows in self._edge_primitives.items()}

    @property
    def op_masks(self) -> dict[str, torch.Tensor]:
        """With ``alpha_columns="primitives"``, the ops every edge has, ``{cell: (edges, len(primitives)) bool}``, for
        the cell types where some edge lacks an op (``{}`` otherwise)."""
        return {cell: mask.clone() for cell, mask in self._op_masks.items()}

    def edge_probs(self) -> dict[str, torch.Tensor]:
        """The relaxation's probabilities, one column per name of :attr:`primitives`: ``(edges, len(primitives))``,
        zero for an op an edge does not have (see ``edge_primitives``)."""
        probs = super().edge_probs()  # {cell: (edges, ops of each edge)}
        return {cell: self._primitive_columns(cell, p) for cell, p in probs.items()}

    def op_probs(self) -> dict[str, torch.Tensor]:
        return {cell: self._primitive_columns(cell, p) for cell, p in super().op_probs().items()}

    def _primitive_columns(self, cell: str, probs: torch.Tensor) -> torch.Tensor:
        """A cell type's probabilities in one column per name of :attr:`primitives`, zero for ops an edge lacks."""
        mask = self._op_masks.get(cell)
        if mask is not None:  # (edges, len(primitives)) already: the ops an edge lacks are masked out
            return self._masked(probs, mask)
        rows = self._edge_primitives[cell]
        if self.alpha_columns == "primitives" or [list(row) for row in rows] == [self._primitives] * len(rows):
            return probs
        columns = torch.tensor([[self._primitives.index(op) for op in row] for row in rows], device=probs.device)
        return probs.new_zeros(len(rows), len(self._primitives)).scatter(1, columns, probs)  # (edges, len(primitives))

    def restrict_weights(self, cell: str, weights: EdgeWeights) -> EdgeWeights:
        mask = self._op_masks.get(cell)
        return weights if mask is None else weights._replace(weights=self._masked(weights.weights, mask))

    def _masked(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``values`` (edges, ops) with the ops an edge lacks set to 0, the others renormalised per edge when the
        relaxation's values sum to one (DrNAS's pruned ``process_step_matrix``: masked, then divided by the sum)."""
        kept = values * mask.to(values.device)  # (edges, ops)
        return kept / kept.sum(-1, keepdim=True) if self.relaxation.normalized else kept

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = self.edge_weights()  # {cell type: (edges, ops)}, one sample per forward
        s0 = self.stem(x)
        s1 = self.stem1(s0) if self.stem1 is not None else s0
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, self.cell_edge_weights(kind, weights[kind]), self.edge)
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

    def edge_modules(self) -> list[tuple[str, int, nn.Module]]:
        return [("reduce" if cell.reduction else "normal", row, mixed) for cell in self.cells
                for row, mixed in enumerate(cell.edges)]

    def genotype(self) -> Genotype:
        probs = self.derivation_probs()  # with edge normalisation: probability × edge weight (PC-DARTS)
        return derive_cnn(probs["normal"].tolist(), probs["reduce"].tolist(), num_nodes=self.num_nodes,
                          multiplier=self.multiplier, primitives=self._primitives,
                          select=self.derivation.for_cell("normal"), reduce_select=self.derivation.for_cell("reduce"))


def _check_alpha_columns(alpha_columns: str, relaxation: Relaxation) -> str:
    if alpha_columns not in ("edge", "primitives"):
        raise ConfigurationError(f"CNNSearchSpace: alpha_columns={alpha_columns!r}; use 'edge' (one alpha per op of "
                                 "each edge) or 'primitives' (one per name of primitives, absent ops masked).")
    if alpha_columns == "primitives" and relaxation.samples:
        raise ConfigurationError(f"CNNSearchSpace: alpha_columns='primitives' masks the ops an edge lacks, but "
                                 f"relaxation={type(relaxation).__name__} samples one op per edge and could sample a "
                                 "masked one; use alpha_columns 'edge' with it.")
    return alpha_columns


def _stem(kind: str, in_channels: int, c_stem: int) -> tuple[nn.Module, nn.Module | None]:
    """The stem giving the first cell's inputs: (the module giving ``c_{k-2}``, the one giving ``c_{k-1}`` from it,
    or none when both inputs are the same)."""
    if kind == "cifar":
        return nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)), None
    if kind == "imagenet":  # the authors' stem0 and stem1 (their in-place ReLU gives the same values)
        stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c_stem // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_stem // 2),
            nn.ReLU(), nn.Conv2d(c_stem // 2, c_stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        stem1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c_stem, c_stem, 3, stride=2, padding=1, bias=False),
                              nn.BatchNorm2d(c_stem))
        return stem0, stem1
    raise ConfigurationError(f"CNNSearchSpace: unknown stem={kind!r}; use 'cifar' (DARTS) or 'imagenet' (PC-DARTS's "
                             "ImageNet search network).")


def check_edge_primitives(edge_primitives: dict[str, list[list[str]]] | None, primitives: Sequence[str],
                          num_edges: int, num_nodes: int) -> dict[str, list[list[str]]]:
    """``edge_primitives`` checked against the space (``primitives`` on every edge of a cell type left out).

    Raises:
        ConfigurationError: an unknown cell type or op name, a wrong number of rows, an empty row, a row with
            ``none`` alone or an op twice, rows of unequal length.
    """
    given = dict(edge_primitives or {})
    unknown = sorted(set(given) - {"normal", "reduce"})
    if unknown:
        raise ConfigurationError(f"CNNSearchSpace: edge_primitives has cell types {unknown}; use 'normal' and/or "
                                 "'reduce' (a cell type left out gets every op of `primitives` on every edge).")
    out = {}
    for cell in ("normal", "reduce"):
        rows = given.get(cell)
        if rows is None:
            out[cell] = [list(primitives) for _ in range(num_edges)]
            continue
        where = f"CNNSearchSpace: edge_primitives[{cell!r}]"
        if len(rows) != num_edges:
            raise ConfigurationError(f"{where} has {len(rows)} rows; a cell of {num_nodes} nodes has {num_edges} "
                                     "edges: give one list of op names per edge, in alpha row order (c_{k-2}->0, "
                                     "c_{k-1}->0, c_{k-2}->1, ...).")
        for e, row in enumerate(rows):
            _check_edge_row(f"{where}[{e}]", row, primitives)
            if len(row) != len(rows[0]):
                raise ConfigurationError(f"{where}[{e}] has {len(row)} ops, edge 0 has {len(rows[0])}; every edge of "
                                         "a cell type needs the same number of ops (its alphas are one (edges, ops) "
                                         "tensor).")
        out[cell] = [list(row) for row in rows]
    return out


def _check_edge_row(where: str, row: Sequence[str], primitives: Sequence[str]) -> None:
    if isinstance(row, str) or not row:
        raise ConfigurationError(f"{where} is {row!r}; give a non-empty list of op names.")
    for name in row:
        if name not in primitives:
            raise ConfigurationError(f"{where}: unknown op {name!r}; known (primitives): {', '.join(primitives)}.")
    if len(set(row)) != len(row):
        raise ConfigurationError(f"{where} = {list(row)} names an op twice; list each op once.")
    if all(name == "none" for name in row):
        raise ConfigurationError(f"{where} = {list(row)} has no op besides 'none'; keep at least one other op on "
                                 "every edge.")


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
