"""Candidate operations of the DARTS convolutional search space and the blocks derived networks need.

Follows the original DARTS code (Liu et al., 2019, ``cnn/operations.py``): separable convolutions are
applied twice, dilated convolutions once, every conv block is ReLU-conv-BN, and a stride-2 skip
connection is a factorized reduce (two offset 1×1 convolutions). ``OPS`` maps a name to a factory
``(channels, stride, affine) -> nn.Module``.

Every block whose first layer is a ReLU exposes ``preactivated(relu_x)``: the supernet's mixed op
computes ``relu(x)`` once per edge and feeds it to all of them, which is the same maths with less work.
Blocks that end in a BatchNorm also expose ``scaled(relu_x, p)`` = ``p · preactivated(relu_x)``, computed
by that BatchNorm with ``p`` as its affine weight (see ``scaled_batch_norm``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import PARAMETER_FREE

OpFactory = Callable[[int, int, bool], nn.Module]


def scaled_batch_norm(bn: nn.BatchNorm2d, z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``scale · bn(z)`` for a scalar tensor ``scale``, as one batch norm whose affine weight carries ``scale``.

    The same value and the same running-statistics update as ``bn(z)``, but autograd keeps only what the
    batch norm keeps (its input and per-channel statistics): the product ``scale · bn(z)`` would also keep
    the normalised output for the gradient of ``scale``. In the supernet's mixed op that is one activation
    map less per candidate op and edge. Double backward works as for any batch norm.
    """
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average, as nn.BatchNorm2d does
            momentum = 1.0 / float(bn.num_batches_tracked)
    use_batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    pass_stats = not bn.training or bn.track_running_stats
    # A real (C,) tensor, not a stride-0 expand: the CPU channels-last batch-norm backward reads the weight
    # as contiguous memory and would take garbage for the gradient of z.
    weight = scale.expand(z.shape[1]).contiguous() if bn.weight is None else bn.weight * scale
    bias = None if bn.bias is None else bn.bias * scale
    return F.batch_norm(z, bn.running_mean if pass_stats else None, bn.running_var if pass_stats else None,
                        weight, bias, use_batch_stats, momentum, bn.eps)


def scaled(body: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``scale · body(x)``, folding ``scale`` into the final BatchNorm when ``body`` is an ``nn.Sequential``
    ending in one (``scaled_batch_norm``); otherwise the product."""
    if not isinstance(body, nn.Sequential) or not isinstance(body[-1], nn.BatchNorm2d):
        return body(x) * scale
    *layers, bn = body
    for layer in layers:
        x = layer(x)
    return scaled_batch_norm(bn, x, scale)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _phases(x: torch.Tensor, d: int, stride: int) -> torch.Tensor:
    """The inputs of a dilation-``d`` conv as non-dilated ones: the d×d polyphase components of ``x``
    stacked on the batch dimension (stride 1), or the one component a stride-``d`` conv reads."""
    fmt = _memory_format(x)
    if stride == d:
        return x[:, :, ::d, ::d].contiguous(memory_format=fmt)
    n, c, h, w = x.shape
    return (x.reshape(n, c, h // d, d, w // d, d).permute(3, 5, 0, 1, 2, 4)
            .reshape(d * d * n, c, h // d, w // d).contiguous(memory_format=fmt))


def _unphase(y: torch.Tensor, d: int, stride: int, shape: torch.Size, fmt: torch.memory_format) -> torch.Tensor:
    """Inverse of ``_phases`` for an input of ``shape`` (for stride ``d``: scattered into zeros)."""
    if stride == d:
        out = y.new_zeros(shape).contiguous(memory_format=fmt)
        out[:, :, ::d, ::d] = y
        return out
    _, c, h, w = y.shape
    return (y.reshape(d, d, shape[0], c, h, w).permute(2, 3, 4, 0, 5, 1)
            .reshape(shape[0], c, h * d, w * d).contiguous(memory_format=fmt))


class _DepthwiseConv(torch.autograd.Function):
    """A depthwise conv (stride 1, or stride = dilation > 1) whose CPU backward avoids the slow kernels.

    The CPU backward of depthwise convs that are dilated or larger than 3×3 is many times slower than
    their forward. Here the input gradient is the forward conv of the output gradient with the flipped
    kernel, and the weight gradient of a dilation-``d`` conv is, where that is faster
    (``_depthwise_weight_grad``), that of a plain conv of the ``d × d`` polyphase components
    (``_phases``: with padding a multiple of ``d``, output pixel ``(d·i + a, d·j + b)`` reads only input
    pixels of phase ``(a, b)``; a stride-``d`` conv reads phase ``(0, 0)`` only). Same sums, other
    kernels. The input is kept for the backward only when the weight needs a gradient (the alpha-only
    passes of the search do not); the backward is made of differentiable ops, so double backward works.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)
        ctx.conf = (stride, padding, dilation, x.shape, _memory_format(x))
        if stride == 1:
            return F.conv2d(x, weight, padding=padding, dilation=dilation, groups=x.shape[1])
        return F.conv2d(_phases(x, dilation, stride), weight, padding=padding // dilation, groups=x.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None, None]:
        x, weight = ctx.saved_tensors
        stride, padding, d, shape, fmt = ctx.conf
        channels, k = shape[1], weight.shape[-1]
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x = grad_w = None
        flipped = weight.flip(-2, -1)
        if stride == 1:
            if need_x:
                grad_x = F.conv2d(grad, flipped, padding=d * (k - 1) - padding, dilation=d, groups=channels)
            if need_w:
                grad_w = _depthwise_weight_grad(grad, x, weight, padding, d)
        else:  # a stride-1 undilated conv of phase (0, 0)
            p = padding // d
            if need_x:
                grad_x = _unphase(F.conv2d(grad, flipped, padding=k - 1 - p, groups=channels), d, stride, shape, fmt)
            if need_w:
                x_in = _phases(x, d, stride)
                grad_w = torch.ops.aten.convolution_backward(
                    grad.contiguous(memory_format=_memory_format(x_in)), x_in, weight, None, [1, 1], [p, p],
                    [1, 1], False, [0, 0], channels, [False, True, False])[1]
        return grad_x, grad_w, None, None, None


def _depthwise_weight_grad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, padding: int,
                           d: int) -> torch.Tensor:
    """The weight gradient of a stride-1 depthwise conv, by the fastest of three routes measured on CPU:
    undilated, the conv's own kernel (channels-last); dilated on sizes divisible by ``d`` whose phases are
    at least as large as the kernel, a plain conv of the polyphase components; otherwise the dilated
    kernel in the default memory format (several times faster there than in channels-last)."""
    channels, k = x.shape[1], weight.shape[-1]
    if d == 1:
        x_in, grad_in, p, dilation = x, grad.contiguous(memory_format=_memory_format(x)), padding, 1
    elif padding % d == 0 and all(size % d == 0 and size // d >= k for size in x.shape[-2:]):
        x_in = _phases(x, d, 1)
        grad_in = _phases(grad, d, 1).contiguous(memory_format=_memory_format(x_in))
        p, dilation = padding // d, 1
    else:
        x_in, grad_in, p, dilation = x.contiguous(), grad.contiguous(), padding, d
    return torch.ops.aten.convolution_backward(grad_in, x_in, weight, None, [1, 1], [p, p], [dilation, dilation],
                                               False, [0, 0], channels, [False, True, False])[1]


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``groups == in_channels == out_channels`` (a depthwise conv).

    On CPU its backward avoids the slow depthwise kernels (``_DepthwiseConv``) where the shape allows:
    stride 1 with padding at most ``dilation · (kernel - 1)``, or stride = dilation ``d`` > 1 with padding
    a multiple of ``d``. Otherwise, and on other devices, it is ``nn.Conv2d``. Under autocast it computes
    in the autocast dtype, as ``nn.Conv2d`` does.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1) -> None:
        super().__init__(channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.device.type == "cpu" and torch.is_grad_enabled() and self._fast_backward(x)):
            return super().forward(x)
        conf = (self.stride[0], self.padding[0], self.dilation[0])
        if not torch.is_autocast_enabled("cpu"):
            return _DepthwiseConv.apply(x, self.weight, *conf)
        # Autocast does not reach a custom Function's backward, which runs after the autocast region with
        # the float32 weight it kept: cast both inputs as autocast casts those of a conv (float64 stays),
        # and run the Function in that one dtype. The cast's own backward returns float32 gradients.
        dtype = torch.get_autocast_dtype("cpu")
        x, weight = (t.to(dtype) if t.dtype == torch.float32 else t for t in (x, self.weight))
        with torch.autocast("cpu", enabled=False):
            return _DepthwiseConv.apply(x, weight, *conf)

    def _fast_backward(self, x: torch.Tensor) -> bool:
        (s, s2), (d, d2), (k, k2), padding = self.stride, self.dilation, self.kernel_size, self.padding
        if s != s2 or d != d2 or k != k2 or not isinstance(padding, tuple) or padding[0] != padding[1]:
            return False
        p = padding[0]
        if s == 1:
            return p <= d * (k - 1)
        return s == d and p % d == 0


class PointwiseConv2d(nn.Conv2d):
    """A 1×1 convolution without bias (``nn.Conv2d(c_in, c_out, 1, stride)``, the same parameters and state dict).

    On the CPU a strided one runs as the stride-1 convolution of ``x[:, :, ::s, ::s]``: the same sums, and
    oneDNN never sees a strided 1×1 convolution. Its AVX2 backward-weights kernel for strided 1×1
    convolutions (``jit_avx2_1x1_convolution_bwd_weights_t``, oneDNN 3.x as bundled with torch 2.14) writes
    past the end of a heap buffer when the input has fewer than 8 channels and one thread runs it: a heap
    corruption that aborts Python later, at an unrelated ``free`` (``docs/upstream/onednn-strided-1x1-bwd-
    weights.md`` has the reproduction and the sweep). PC-DARTS's partial channels and small supernets build
    exactly such convolutions in the stride-2 skip connection (``FactorizedReduce``).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride
        if x.device.type != "cpu" or (sh, sw) == (1, 1):
            return super().forward(x)
        return F.conv2d(x[:, :, ::sh, ::sw], self.weight)  # (B, C_out, ceil(H/sh), ceil(W/sw)), as the strided conv


def conv2d(c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    """``nn.Conv2d`` without bias; a :class:`PointwiseConv2d` for an unpadded 1×1 convolution."""
    if kernel_size == 1 and padding == 0:
        return PointwiseConv2d(c_in, c_out, stride)
    return nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)


class PreActivated(nn.Module):
    """A block computing ``body(relu(x))``; ``preactivated`` skips the ReLU for a caller that did it."""

    body: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.preactivated(F.relu(x))

    def preactivated(self, relu_x: torch.Tensor) -> torch.Tensor:
        return self.body(relu_x)

    def scaled(self, relu_x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``scale · preactivated(relu_x)`` for a scalar tensor ``scale`` (see ``scaled_batch_norm``)."""
        return scaled(self.body, relu_x, scale)


class ReLUConvBN(PreActivated):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv2d(c_in, c_out, kernel_size, stride, padding),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(PreActivated):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            DepthwiseConv2d(c_in, kernel_size, stride=stride, padding=padding, dilation=dilation),
            PointwiseConv2d(c_in, c_out),
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

    def scaled(self, relu_x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.second.scaled(F.relu(self.first.preactivated(relu_x)), scale)


class FactorizedReduce(PreActivated):
    """Halve the resolution with two 1×1 stride-2 convs, the second offset by one pixel."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ConfigurationError(f"FactorizedReduce needs an even number of output channels, got c_out={c_out}; "
                             "use an even channel count (e.g. --model.space.init_args.channels 16).")
        self.conv_1 = PointwiseConv2d(c_in, c_out // 2, stride=2)
        self.conv_2 = PointwiseConv2d(c_in, c_out // 2, stride=2)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def preactivated(self, relu_x: torch.Tensor) -> torch.Tensor:
        return self.bn(self._halves(relu_x))

    def scaled(self, relu_x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return scaled_batch_norm(self.bn, self._halves(relu_x), scale)

    def _halves(self, relu_x: torch.Tensor) -> torch.Tensor:
        # Odd sizes: the offset branch is one pixel shorter; pad it back (the original assumes even sizes).
        a = self.conv_1(relu_x)
        b = self.conv_2(relu_x[:, :, 1:, 1:])
        if b.shape[-2:] != a.shape[-2:]:
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return torch.cat([a, b], dim=1)


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


class NoiseOp(nn.Module):
    """RobustDARTS's ``noise`` op (Zela et al., 2020, space S4; the authors' ``NoiseOp(stride, 0., 1.)``): Gaussian
    noise of the edge's output shape, independent of the input, drawn anew at every forward, in training and in
    evaluation alike (the authors' op has no eval mode). A stride-2 edge gives noise of the shape of
    ``x[:, :, ::2, ::2]``. No weights; the gradient reaching ``x`` through it is zero.

    The noise comes from torch's default generator of ``x``'s device (as dropout's does), so a checkpoint's saved
    generator states make a resumed run draw what the uninterrupted one would.

    Args:
        stride: 1, or 2 on the edges reading a reduction cell's inputs.
        mean: Mean of the noise (0 in S4).
        std: Standard deviation of the noise (1 in S4).
    """

    #: Every forward draws new values: an unrolled (second-order) step would compare passes with different draws.
    draws_noise = True

    def __init__(self, stride: int, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.stride = stride
        self.mean = mean
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape_of = x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]
        return torch.empty_like(shape_of).normal_(self.mean, self.std)  # (B, C, H / stride, W / stride)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, mean={self.mean}, std={self.std}"


class _MaxPoolRecomputingIndices(torch.autograd.Function):
    """2-D max pooling that keeps only its input for the backward and finds the argmax again there.

    ``F.max_pool2d`` keeps an int64 index per output element (twice the size of a float32 output map);
    recomputing them costs one pooling pass in the backward. Twice differentiable: the backward is made
    of differentiable ops, so double backward (the exact Hessian of the second-order step) works.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.pool = (kernel_size, stride, padding)
        return F.max_pool2d(x, kernel_size, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (x,) = ctx.saved_tensors
        k, s, p = ctx.pool
        with torch.no_grad():
            _, indices = F.max_pool2d(x, k, s, p, return_indices=True)
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [k, k], [s, s], [p, p], [1, 1], False,
                                                                 indices)
        return grad_x, None, None, None


class MaxPool(nn.MaxPool2d):
    """``nn.MaxPool2d`` (square kernel, no dilation) whose backward recomputes the argmax instead of storing it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = self.dilation != 1 or self.ceil_mode or not all(
            isinstance(v, int) for v in (self.kernel_size, self.stride, self.padding))
        if plain or not (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        return _MaxPoolRecomputingIndices.apply(x, self.kernel_size, self.stride, self.padding)


class ResNetBasicblock(nn.Module):
    """NAS-Bench-201's residual block between stages (Dong & Yang, 2020; the authors' ``ResNetBasicblock``):
    two ReLU-conv3×3-BN blocks, the first with ``stride``, plus a shortcut: 2×2 average pooling and a 1×1 conv
    (no BN) when ``stride`` is 2, a 1×1 ReLU-conv-BN when only the channels change, else the identity.

    Args:
        c_in: Input channels.
        c_out: Output channels.
        stride: 1 or 2.
        affine: Affine BatchNorm (the benchmark's networks, search and training alike, use affine blocks here).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigurationError(f"ResNetBasicblock: stride={stride}; use 1 or 2.")
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine)
        if stride == 2:
            self.downsample: nn.Module | None = nn.Sequential(
                nn.AvgPool2d(2, stride=2, padding=0), PointwiseConv2d(c_in, c_out))
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1, 1, 0, affine)
        else:
            self.downsample = None
        self.out_channels = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class GlobalAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(1)`` as the mean over H, W, shape ``(B, C, 1, 1)``: the same values, and a
    backward that CUDA runs deterministically (adaptive pooling's has no deterministic CUDA kernel, so
    ``--trainer.deterministic true`` would raise on a GPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)


def _pool(kind: str) -> OpFactory:
    def make(c: int, stride: int, affine: bool) -> nn.Module:
        if kind == "max":
            return MaxPool(3, stride=stride, padding=1)
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
    # NAS-Bench-201's convolutions (its none, skip_connect and avg_pool_3x3 are the entries above at equal channels;
    # its search cell puts no BatchNorm after the pooling, see darts_pl.search.nb201).
    "nor_conv_1x1": lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine),
    "nor_conv_3x3": lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine),
    # RobustDARTS's S4: standard Gaussian noise in place of the op's output.
    "noise": lambda c, stride, affine: NoiseOp(stride, 0.0, 1.0),
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
    """Ops with no weights (skip connections, pooling, RobustDARTS's ``noise``); a cell full of them is a collapsed
    cell."""
    return name in PARAMETER_FREE
