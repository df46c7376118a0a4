"""Starting a supernet from a narrower one: DrNAS's progressive learning (Chen et al., "DrNAS: Dirichlet Neural
Architecture Search", ICLR 2021, Sec. 3.3; the authors' ``net2wider.py`` and the ``wider`` methods of
``DARTS-space/operations.py``, called by ``Network.wider`` in ``DARTS-space/model_search.py``).

Between DrNAS's two stages the partial-channel fraction grows (K = 6 → 4), so every candidate op of every edge gets
wider (``C/6`` → ``C/4`` channels). The authors widen each op in place, net2net-style, by appending copies of
channels picked at random (``torch.randint``): a depthwise convolution appends copies of some of its filters; the
pointwise convolution after it appends the matching input columns (the same picks) and copies of some of its output
rows (new picks); the batch norm after that appends the running statistics of those rows. The copies are not divided
among the duplicates, so the wider op does not compute the narrower one's function (nor could it: the channels an
edge sends through its ops change with K). Every op of every edge is widened, pruned or not, cells and edges in
order, ops in the edge's order, so the picks of the ops kept depend on all those drawn before them.

:func:`widening_plan` reproduces this for darts_pl's op modules: for every tensor of the new supernet, the tensor of
the old one it comes from and the concatenations that widen it (:class:`Widen`), with the picks drawn from a seeded
generator in the authors' order (their op-by-op ``torch.randint`` calls on the global generator: with the same seed,
the same picks). The same plan widens the optimizer's per-parameter state (the momentum buffers, as the authors'
``configure_optimizer``).

Notes (the authors' code, reproduced as written):
    * ``FactorizedReduce`` (the stride-2 skip connection) widens each of its two convolutions' inputs with picks of
      their own, and its batch norm with the two output picks concatenated, as if both indexed the first half of its
      channels (their ``BNWider(self.bn, new_C_out, index=torch.cat([index1, index2]))``).
    * The second depthwise convolution of a separable convolution picks its own channels: they need not line up with
      the batch-norm channels before it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.ops import DilConv, FactorizedReduce, ReLUConvBN, SepConv, Zero

Steps = tuple[tuple[int, torch.Tensor], ...]
"""Widening steps: for each ``(dim, index)`` in turn, ``torch.cat([t, t.index_select(dim, index)], dim)``."""


@dataclass(frozen=True)
class Widen:
    """Where one tensor of the new supernet comes from: ``source`` (a key of the old state dict) and the steps that
    widen it (none: a copy)."""

    source: str
    steps: Steps = ()

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        for dim, index in self.steps:
            tensor = torch.cat([tensor, tensor.index_select(dim, index.to(tensor.device))], dim)
        return tensor


@dataclass
class _Picks:
    """The authors' ``torch.randint(low=0, high=old, size=(new - old,))``, from a generator of our own."""

    generator: torch.Generator
    drawn: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, old: int, new: int, where: str) -> torch.Tensor:
        if new < old:
            raise ConfigurationError(f"widening {where}: the new supernet has {new} channels where the old one has "
                                     f"{old}; a stage can only widen its ops (lower the partial-channel K, or keep "
                                     "it).")
        index = torch.randint(0, old, (new - old,), generator=self.generator)
        self.drawn.append(index)
        return index


def _bn(prefix: str, bn: nn.BatchNorm2d, index: torch.Tensor) -> dict[str, Steps]:
    keys = [name for name in ("weight", "bias", "running_mean", "running_var") if getattr(bn, name) is not None]
    return {f"{prefix}{name}": ((0, index),) for name in keys}


def _dil_conv(prefix: str, op: DilConv, channels: int, picks: _Picks) -> dict[str, Steps]:
    """The authors' ``DilConv.wider``: depthwise filters, the pointwise conv's inputs (same picks) and outputs, BN."""
    depthwise, pointwise, bn = op.body
    a = picks(depthwise.weight.shape[0], channels, prefix + "body.0")
    b = picks(pointwise.weight.shape[0], channels, prefix + "body.1")
    return {f"{prefix}body.0.weight": ((0, a),), f"{prefix}body.1.weight": ((1, a), (0, b)), **_bn(f"{prefix}body.2.",
                                                                                                   bn, b)}


def _relu_conv_bn(prefix: str, op: ReLUConvBN, channels: int, picks: _Picks) -> dict[str, Steps]:
    """The authors' ``ReLUConvBN.wider``: the conv's inputs, then its outputs, and the BN with the output picks."""
    conv, bn = op.body
    i = picks(conv.weight.shape[1], channels, prefix + "body.0 (inputs)")
    o = picks(conv.weight.shape[0], channels, prefix + "body.0")
    return {f"{prefix}body.0.weight": ((1, i), (0, o)), **_bn(f"{prefix}body.1.", bn, o)}


def _factorized_reduce(prefix: str, op: FactorizedReduce, channels: int, picks: _Picks) -> dict[str, Steps]:
    """The authors' ``FactorizedReduce.wider``: each conv's inputs and outputs with picks of their own; the BN with
    the two output picks concatenated (their code)."""
    steps: dict[str, Steps] = {}
    outputs = []
    for name in ("conv_1", "conv_2"):
        weight = getattr(op, name).weight
        i = picks(weight.shape[1], channels, f"{prefix}{name} (inputs)")
        o = picks(weight.shape[0], channels // 2, f"{prefix}{name}")
        steps[f"{prefix}{name}.weight"] = ((1, i), (0, o))
        outputs.append(o)
    return steps | _bn(f"{prefix}bn.", op.bn, torch.cat(outputs))


def op_steps(op: nn.Module, channels: int, picks: _Picks, prefix: str = "") -> dict[str, Steps]:
    """The widening steps of every tensor of one candidate op (keys relative to the op, with ``prefix``) to
    ``channels`` channels, drawing its picks in the authors' order; tensors it leaves out are copied.

    Raises:
        ConfigurationError: an op with weights whose widening the authors do not define.
    """
    if isinstance(op, SepConv):  # two DilConv blocks: the authors' conv1, conv2, bn1, then conv3, conv4, bn2
        return (_dil_conv(f"{prefix}first.", op.first, channels, picks)
                | _dil_conv(f"{prefix}second.", op.second, channels, picks))
    if isinstance(op, DilConv):
        return _dil_conv(prefix, op, channels, picks)
    if isinstance(op, FactorizedReduce):
        return _factorized_reduce(prefix, op, channels, picks)
    if isinstance(op, ReLUConvBN):
        return _relu_conv_bn(prefix, op, channels, picks)
    if isinstance(op, nn.Sequential) and isinstance(op[-1], nn.BatchNorm2d) and len(op) == 2:  # pooling + BN
        return _bn(f"{prefix}1.", op[-1], picks(op[-1].num_features, channels, f"{prefix}1"))
    if isinstance(op, (nn.Identity, Zero, nn.MaxPool2d, nn.AvgPool2d)):
        return {}
    if not any(True for _ in op.parameters()) and not any(b is not None for b in op.buffers()):
        return {}
    raise ConfigurationError(f"widening: no rule widens a {type(op).__name__} op (rules: separable and dilated "
                             "convolutions, ReLU-conv-BN, factorized reduce, pooling with BN, skip); keep the stages' "
                             "op channels equal, or leave that op out.")


def _edge_plan(old_prefix: str, old: nn.Module, new_prefix: str, new: nn.Module, picks: _Picks) -> dict[str, Widen]:
    """Every op of the old edge widened in its order (picks drawn for each); the ops the new edge has are mapped."""
    channels = new.channels
    new_position = {new.primitives[column]: k for k, column in enumerate(new.columns)}
    plan: dict[str, Widen] = {}
    for k, (column, op) in enumerate(zip(old.columns, old.ops)):
        name = old.primitives[column]
        steps = op_steps(op, channels, picks)
        if name not in new_position:
            continue  # pruned: drawn, as the authors widen every op, and dropped
        target = new_position[name]
        for key in op.state_dict():
            plan[f"{new_prefix}ops.{target}.{key}"] = Widen(f"{old_prefix}ops.{k}.{key}", steps.get(key, ()))
    return plan


def widening_plan(old: nn.Module, new: nn.Module, generator: torch.Generator) -> dict[str, Widen]:
    """For every key of ``new.state_dict()`` (a search space), where its value comes from in ``old.state_dict()``.

    The candidate ops of every edge are widened as the authors' ``Network.wider`` does (:func:`op_steps`); every
    other tensor (stem, preprocessing, classifier, architecture tensors, the parts' states) is copied.

    Args:
        old: The previous stage's search space.
        new: This stage's, the same network with ops as wide or wider (and some ops pruned).
        generator: Where the channel picks are drawn from.

    Raises:
        ConfigurationError: the two spaces' edges do not line up (other cells or nodes), or a tensor outside the
            ops has another shape.
    """
    old_edges, new_edges = old.edge_modules(), new.edge_modules()
    if [(c, r) for c, r, _ in old_edges] != [(c, r) for c, r, _ in new_edges]:
        raise ConfigurationError(f"widening: the previous stage's supernet has {len(old_edges)} edges, this one "
                                 f"{len(new_edges)} (or other cell types); keep num_cells and num_nodes between "
                                 "stages.")
    old_names = {id(m): name for name, m in old.named_modules()}
    new_names = {id(m): name for name, m in new.named_modules()}
    picks = _Picks(generator)
    plan: dict[str, Widen] = {}
    for (_, _, a), (_, _, b) in zip(old_edges, new_edges):
        plan |= _edge_plan(f"{old_names[id(a)]}.", a, f"{new_names[id(b)]}.", b, picks)
    edge_prefixes = tuple(f"{new_names[id(b)]}.ops." for _, _, b in new_edges)
    for key in new.state_dict():
        if key not in plan and not key.startswith(edge_prefixes):
            plan[key] = Widen(key)
    return plan


def widen_state(plan: Mapping[str, Widen], old_state: Mapping[str, object],
                new_state: Mapping[str, object]) -> dict[str, object]:
    """``new_state``'s keys with values from ``old_state`` by ``plan``; refuses a shape the plan does not produce.

    A part's own state (``_extra_state``) the old supernet lacks keeps its new value.
    """
    out: dict[str, object] = {}
    for key, current in new_state.items():
        widen = plan.get(key)
        if widen is None or widen.source not in old_state:
            if key.endswith("_extra_state"):
                out[key] = current
                continue
            source = widen.source if widen is not None else key
            raise ConfigurationError(f"widening: the previous stage's supernet has no {source!r} for {key!r}; the "
                                     "stages must search the same network (other ops, cells or parts).")
        value = old_state[widen.source]
        if torch.is_tensor(value):
            value = widen.apply(value)
            if torch.is_tensor(current) and value.shape != current.shape:
                raise ConfigurationError(f"widening: {key!r} is {tuple(current.shape)} in this stage's supernet and "
                                         f"{tuple(value.shape)} from the previous one; only the candidate ops' "
                                         "channels may grow between stages.")
        out[key] = value
    return out
