"""Candidate operations of the DARTS convolutional search space and the blocks derived networks need.

Follows the original DARTS code (Liu et al., 2019, ``cnn/operations.py``): separable convolutions are
applied twice, dilated convolutions once, every conv block is ReLU-conv-BN, and a stride-2 skip
connection is a factorized reduce (two offset 1×1 convolutions). ``OPS`` maps a name to a factory
``(channels, stride, affine) -> nn.Module``.

Every block whose first layer is a ReLU exposes ``preactivated(relu_x)``: the supernet's mixed op
computes ``relu(x)`` once per edge and feeds it to all of them, which is the same maths with less work.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError

OpFactory = Callable[[int, int, bool], nn.Module]



class PreActivated(nn.Module):
    """A block computing ``body(relu(x))``; ``preactivated`` skips the ReLU for a caller that did it."""

    body: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.preactivated(F.relu(x))

    def preactivated(self, relu_x: torch.Tensor) -> torch.Tensor:
        return self.body(relu_x)


class ReLUConvBN(PreActivated):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(PreActivated):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, kernel_size=1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(PreActivated):
    """Two stacked ReLU-depthwise-pointwise-BN blocks; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.first = DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine)
        self.second = DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine)

    def preactivated(self, relu_x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first.preactivated(relu_x))


class FactorizedReduce(PreActivated):
    """Halve the resolution with two 1×1 stride-2 convs, the second offset by one pixel."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ConfigurationError(f"FactorizedReduce needs an even number of output channels, got c_out={c_out}; "
                             "use an even channel count (e.g. --model.space.init_args.channels 16).")
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def preactivated(self, relu_x: torch.Tensor) -> torch.Tensor:
        # Odd sizes: the offset branch is one pixel shorter; pad it back (the original assumes even sizes).
        a = self.conv_1(relu_x)
        b = self.conv_2(relu_x[:, :, 1:, 1:])
        if b.shape[-2:] != a.shape[-2:]:
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


class Conv7x1_1x7(PreActivated):
    """The factorized 7×7 convolution the original code offers for derived cells."""

    def __init__(self, c: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros at the output resolution. The supernet never runs it (it adds nothing)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return torch.zeros_like(x)
        return torch.zeros_like(x[:, :, :: self.stride, :: self.stride])


def _pool(kind: str) -> OpFactory:
    def make(c: int, stride: int, affine: bool) -> nn.Module:
        if kind == "max":
            return nn.MaxPool2d(3, stride=stride, padding=1)
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    return make


def _skip(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)


OPS: dict[str, OpFactory] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": _pool("max"),
    "avg_pool_3x3": _pool("avg"),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
    "conv_7x1_1x7": lambda c, stride, affine: Conv7x1_1x7(c, stride, affine),
}
"""Candidate op factories by name: ``OPS[name](channels, stride, affine)``."""


def get_op(name: str | OpFactory) -> OpFactory:
    """The factory for ``name``; a callable is returned as is. Unknown names list the known ones."""
    if callable(name):
        return name
    try:
        return OPS[name]
    except KeyError:
        raise ConfigurationError(f"Unknown primitive {name!r}; known: {', '.join(OPS)}.") from None


def make_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    return get_op(name)(channels, stride, affine)


def is_parameter_free(name: str) -> bool:
    """Ops with no weights (skip connections and pooling); a cell full of them is a collapsed cell."""
    return name in ("skip_connect", "max_pool_3x3", "avg_pool_3x3")
