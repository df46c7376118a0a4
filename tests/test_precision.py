"""Mixed precision (bf16 autocast, tested on CPU: the same code paths as on GPU): the custom autograd ops
run under autocast, training and search run with ``precision="bf16-mixed"``, and the second-order
Hessian term is evaluated outside autocast (in float64 when asked)."""
from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from darts_pl.data import DigitsDataModule
from darts_pl.modules import LitClassifier, LitSearch
from darts_pl.ops import DepthwiseConv2d, MaxPool
from darts_pl.search import CNNSearchSpace
from darts_pl.strategies import FirstOrder, SecondOrder

BF16 = torch.bfloat16


def autocast(enabled: bool = True) -> torch.autocast:
    return torch.autocast("cpu", dtype=BF16, enabled=enabled)


@pytest.mark.parametrize(("kernel", "dilation", "stride"), [(3, 1, 1), (5, 1, 2), (3, 2, 1), (5, 2, 2)])
def test_depthwise_conv_under_bf16_autocast_equals_conv2d(kernel: int, dilation: int, stride: int) -> None:
    """Forward under autocast, backward after it (as Lightning's bf16-mixed does), and double backward."""
    padding = dilation * (kernel - 1) // 2
    conv = DepthwiseConv2d(4, kernel, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(2, 4, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert conv._fast_backward(x) == (stride == 1 or stride == dilation)
    with autocast():
        got = conv(x)
        expected = F.conv2d(x, conv.weight, stride=stride, padding=padding, dilation=dilation, groups=4)
    assert got.dtype == expected.dtype == BF16
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    g = torch.randn_like(got)
    ours = torch.autograd.grad(got, (x, conv.weight), g, create_graph=True)
    theirs = torch.autograd.grad(expected, (x, conv.weight), g, create_graph=True)
    # The exact gradients of the bf16-rounded inputs (float64): ours are at least as close to them as conv2d's
    # own bf16 backward (whose rounding depends on the CPU's kernels), or within a bf16 step of the largest value.
    x64, w64 = (t.detach().to(BF16).double().requires_grad_() for t in (x, conv.weight))
    y64 = F.conv2d(x64, w64, stride=stride, padding=padding, dilation=dilation, groups=4)
    exact = torch.autograd.grad(y64, (x64, w64), g.double())
    for a, b, t in zip(ours, theirs, exact):
        assert a.dtype == torch.float32  # gradients of float32 leaves stay float32
        step = 2.0 ** -7 * float(t.abs().max())  # the bf16 spacing at the largest value
        assert float((a.double() - t).abs().max()) <= max(float((b.double() - t).abs().max()), step)
    second = torch.autograd.grad(ours[1].square().sum(), x)[0]
    second_theirs = torch.autograd.grad(theirs[1].square().sum(), x)[0]
    exact_w = torch.autograd.grad(F.conv2d(x64, w64, stride=stride, padding=padding, dilation=dilation, groups=4),
                                  w64, g.double(), create_graph=True)[0]
    second_exact = torch.autograd.grad(exact_w.square().sum(), x64)[0]
    step = 2.0 ** -7 * float(second_exact.abs().max())
    error, error_theirs = (float((v.double() - second_exact).abs().max()) for v in (second, second_theirs))
    assert error <= max(2 * error_theirs, 4 * step)


def test_max_pool_under_bf16_autocast_equals_max_pool2d() -> None:
    x = torch.randn(2, 4, 8, 8).requires_grad_()
    with autocast():
        h = F.conv2d(x, torch.randn(4, 4, 1, 1))  # bf16, as the pool's input is in a network under autocast
        got, expected = MaxPool(3, stride=1, padding=1)(h), F.max_pool2d(h, 3, 1, 1)
    assert torch.equal(got, expected)
    g = torch.randn_like(got)
    ours = torch.autograd.grad(got, x, g, retain_graph=True)[0]
    assert ours.dtype == torch.float32 and torch.equal(ours, torch.autograd.grad(expected, x, g)[0])


def _trainer(tmp_path: Path) -> L.Trainer:
    return L.Trainer(accelerator="cpu", precision="bf16-mixed", max_epochs=1, limit_train_batches=2,
                     limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path)


def test_lit_classifier_trains_with_bf16_mixed(tmp_path: Path) -> None:
    model = LitClassifier("DARTS_V2", channels=4, num_cells=3, num_classes=10, in_channels=1, auxiliary=False)
    before = copy.deepcopy(model.network.state_dict())
    _trainer(tmp_path).fit(model, DigitsDataModule(mode="train", batch_size=16))
    changed = [name for name, p in model.network.named_parameters() if not torch.equal(p, before[name])]
    assert len(changed) == len(list(model.network.parameters()))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.network.parameters())


@pytest.mark.parametrize("strategy", [FirstOrder(), SecondOrder(), SecondOrder(hessian="exact"),
                                      SecondOrder(float64_hessian=True)], ids=["first", "fd", "exact", "fd64"])
def test_search_runs_with_bf16_mixed(tmp_path: Path, strategy: FirstOrder | SecondOrder) -> None:
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    alphas = [a.detach().clone() for a in space.arch_parameters()]
    model = LitSearch(space, strategy)
    _trainer(tmp_path).fit(model, DigitsDataModule(batch_size=16))
    for before, after in zip(alphas, space.arch_parameters()):
        assert torch.isfinite(after).all() and not torch.equal(before, after)


def _supernet_case() -> tuple[CNNSearchSpace, tuple, list[str], list[torch.Tensor], list[torch.Tensor]]:
    torch.manual_seed(0)
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g))
    names, weights = map(list, zip(*space.named_weight_parameters()))
    v = [torch.randn(w.shape, generator=g) for w in weights]
    return space, batch, names, weights, v


@pytest.mark.parametrize("float64_hessian", [False, True])
def test_hessian_term_is_evaluated_outside_autocast(float64_hessian: bool) -> None:
    """Under bf16 the central difference is noise (eps = 0.01/||v|| moves the weights by less than bf16
    resolves): the term is the same under autocast as without it, and in float64 when asked."""
    space, batch, names, weights, v = _supernet_case()
    strategy = SecondOrder(float64_hessian=float64_hessian)
    alphas = space.arch_parameters()
    plain = strategy._finite_difference_hvp(space, batch, names, weights, alphas, v)
    with autocast():
        mixed = strategy._finite_difference_hvp(space, batch, names, weights, alphas, v)
    for a, b in zip(mixed, plain):
        assert a.dtype == (torch.float64 if float64_hessian else torch.float32)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    if float64_hessian:  # the same as the whole computation in float64
        space64 = copy.deepcopy(space).double()
        names64, weights64 = map(list, zip(*space64.named_weight_parameters()))
        batch64 = (batch[0].double(), batch[1])
        expected = SecondOrder()._finite_difference_hvp(space64, batch64, names64, weights64,
                                                        space64.arch_parameters(), [x.double() for x in v])
        for a, b in zip(mixed, expected):  # measured: 8e-9 relative (float32 passes: 1.5e-5)
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_exact_hessian_term_is_evaluated_outside_autocast() -> None:
    space, batch, _, weights, v = _supernet_case()
    alphas = space.arch_parameters()
    plain = SecondOrder._exact_hvp(space, batch, weights, alphas, v)
    with autocast():
        mixed = SecondOrder._exact_hvp(space, batch, weights, alphas, v)
    for a, b in zip(mixed, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
