from __future__ import annotations

import pytest
import torch

from darts_pl.genotypes import PRIMITIVES
from darts_pl.ops import OPS, FactorizedReduce, get_op, make_op


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_shape_and_gradient(name: str, stride: int) -> None:
    op = make_op(name, 8, stride, affine=True)
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    y = op(x)
    assert y.shape == (2, 8, 8 // stride, 8 // stride)
    if name == "none":
        assert torch.count_nonzero(y) == 0
        return
    if name == "noise":  # independent of x, no weights (tests/test_robust_spaces.py checks its draws)
        assert not y.requires_grad and not list(op.parameters())
        return
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in op.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_preactivated_equals_forward() -> None:
    x = torch.randn(2, 8, 6, 6)
    for name in ("sep_conv_3x3", "dil_conv_5x5", "skip_connect"):
        op = make_op(name, 8, 2, affine=False)
        assert torch.equal(op(x), op.preactivated(torch.relu(x))), name


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [False, True])
def test_scaled_batch_norm_equals_scale_times_batch_norm(training: bool, affine: bool) -> None:
    import copy

    from darts_pl.ops import scaled_batch_norm

    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(5, affine=affine).double().train(training)
    if affine:
        torch.nn.init.normal_(bn.weight)
        torch.nn.init.normal_(bn.bias)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    ref = copy.deepcopy(bn)
    z = torch.randn(4, 5, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    scale = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    got, expected = scaled_batch_norm(bn, z, scale), scale * ref(z)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(got).contiguous(memory_format=torch.channels_last)
    ours, theirs = [z, scale, *bn.parameters()], [z, scale, *ref.parameters()]
    for a, b in zip(torch.autograd.grad(got, ours, g), torch.autograd.grad(expected, theirs, g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(bn.buffers(), ref.buffers()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_keeps_no_indices_and_equals_max_pool2d(stride: int, channels_last: bool) -> None:
    from darts_pl.ops import MaxPool

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        got = MaxPool(3, stride=stride, padding=1)(x)
    assert [t.dtype for t in saved] == [torch.float64]  # the input only: no int64 argmax indices
    expected = torch.nn.MaxPool2d(3, stride=stride, padding=1)(x)
    assert torch.equal(got, expected)
    g = torch.randn_like(got)
    assert torch.equal(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(expected, x, g)[0])
    assert torch.autograd.gradgradcheck(MaxPool(3, stride=stride, padding=1), (x,))


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [12, 8, 7])  # 12: dilated weight gradient by phases; 8, 7: by the dilated kernel
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_conv_equals_conv2d(kernel: int, dilation: int, stride: int, size: int,
                                      channels_last: bool) -> None:
    """The CPU backward of DepthwiseConv2d (flipped-kernel input gradient, polyphase weight gradient of
    dilated convs) against F.conv2d's, first and second derivatives, in float64."""
    import torch.nn.functional as F

    from darts_pl.ops import DepthwiseConv2d, _DepthwiseConv

    torch.manual_seed(0)
    padding = dilation * (kernel - 1) // 2
    conv = DepthwiseConv2d(3, kernel, stride=stride, padding=padding, dilation=dilation).double()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 3, size, size + 2, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    uses_fast_path = conv._fast_backward(x)
    # the paper's shapes take the fast path: stride 1, and stride 2 = dilation, on any size
    assert uses_fast_path == (stride == 1 or stride == dilation)
    got = conv(x)
    expected = F.conv2d(x, conv.weight, stride=stride, padding=padding, dilation=dilation, groups=3)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, (x, conv.weight), g), torch.autograd.grad(expected, (x, conv.weight), g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    saved: list[tuple[int, ...]] = []
    conv.weight.requires_grad_(False)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        conv(x)
    conv.weight.requires_grad_(True)
    if uses_fast_path:  # an input-only backward keeps the weight only
        assert saved == [tuple(conv.weight.shape)]
    if uses_fast_path and channels_last:  # second derivatives (slow to check; the format changes no maths)
        small = x[:1].detach().requires_grad_()
        assert torch.autograd.gradgradcheck(lambda t, w: _DepthwiseConv.apply(t, w, stride, padding, dilation),
                                            (small, conv.weight))


def test_unknown_primitive_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"Unknown primitive 'sep_conv_9x9'; known: none, max_pool_3x3"):
        get_op("sep_conv_9x9")


def test_search_primitives_are_all_known() -> None:
    assert set(PRIMITIVES) <= set(OPS)


def test_factorized_reduce_odd_size_and_odd_channels() -> None:
    assert FactorizedReduce(4, 6)(torch.randn(1, 4, 7, 7)).shape == (1, 6, 4, 4)
    with pytest.raises(ValueError, match="c_out=5"):
        FactorizedReduce(4, 5)


@pytest.mark.parametrize("shape", [(4, 64, 8, 8), (3, 576, 7, 7), (2, 16, 1, 1), (5, 33, 5, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_global_avg_pool_equals_adaptive_avg_pool(shape: tuple[int, ...], channels_last: bool) -> None:
    """The same values and gradients as ``AdaptiveAvgPool2d(1)``, with a backward CUDA runs deterministically."""
    from darts_pl.ops import GlobalAvgPool

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
    got, expected = GlobalAvgPool()(x), torch.nn.AdaptiveAvgPool2d(1)(x)
    assert got.shape == expected.shape == (*shape[:2], 1, 1)
    assert torch.equal(got, expected)
    g = torch.randn_like(got)
    assert torch.equal(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(expected, x, g)[0])
