from __future__ import annotations

import pytest
import torch

from darts_pl.genotypes import PRIMITIVES
from darts_pl.ops import Zero
from darts_pl.search import CNNSearchSpace
from darts_pl.search.mixed_op import MixedOp


def tiny_space(**kwargs) -> CNNSearchSpace:
    args = {"num_classes": 10, "channels": 4, "num_cells": 3} | kwargs
    return CNNSearchSpace(**args)


def test_alphas_are_registered_parameters_of_the_paper_shape() -> None:
    space = CNNSearchSpace()  # the paper's size: 8 cells, 16 channels
    names = [n for n, _ in space.named_arch_parameters()]
    assert names == ["arch.normal", "arch.reduce"]
    assert space.arch["normal"].shape == (14, 8) and space.arch["reduce"].shape == (14, 8)
    assert space.arch["normal"].abs().max() < 1e-2  # 1e-3 * N(0, 1)
    arch = {id(p) for p in space.arch_parameters()}
    weights = {id(p) for p in space.weight_parameters()}
    assert not arch & weights
    assert arch | weights == {id(p) for p in space.parameters()}
    assert sum(1 for c in space.cells if c.reduction) == 2
    assert [i for i, c in enumerate(space.cells) if c.reduction] == [2, 5]


def test_zero_init_option() -> None:
    space = tiny_space(alpha_init="zeros")
    assert torch.count_nonzero(space.arch["normal"]) == 0


def test_every_weight_and_alpha_gets_a_gradient() -> None:
    space = tiny_space()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    out = space((x, y))
    out.loss.backward()
    for name, p in space.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # the 'none' column gets its gradient through the softmax
    assert space.arch["normal"].grad[:, PRIMITIVES.index("none")].abs().sum() > 0


def test_none_op_is_not_run() -> None:
    space = tiny_space()
    edges = [m for m in space.modules() if isinstance(m, MixedOp)]
    assert edges and all(len(e.ops) == len(PRIMITIVES) - 1 for e in edges)
    assert not any(isinstance(m, Zero) for m in space.modules())
    assert all(PRIMITIVES.index("none") not in e.columns for e in edges)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_mixed_op_equals_weighted_sum_of_all_ops(stride: int, channels_last: bool) -> None:
    """Value, gradients (input and alphas), double backward and BN running statistics of the mixed op
    (probabilities folded into each op's final BatchNorm, sums in place) against the plain formula
    sum_k p_k * op_k(x) of Eq. 2 run on a copy of the same modules, in float64."""
    import copy

    from darts_pl.ops import make_op

    torch.manual_seed(1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    mixed = MixedOp(4, stride, PRIMITIVES).double().to(memory_format=fmt)
    plain = copy.deepcopy(mixed)
    alpha = torch.randn(len(PRIMITIVES), dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 4, 8, 8, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()

    probs = torch.softmax(alpha, 0)
    got = mixed.weighted_sum(x, probs.unbind(0))
    expected = probs[0] * make_op("none", 4, stride, False)(x)  # every op, 'none' included
    for column, op in zip(plain.columns, plain.ops):
        expected = expected + probs[column] * op(x)
    assert got.shape == (3, 4, 8 // stride, 8 // stride)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)

    g = torch.randn_like(got).contiguous(memory_format=fmt)
    v = torch.randn_like(x)
    grads = []
    for out in (got, expected):
        dx, da = torch.autograd.grad(out, (x, alpha), g, create_graph=True, retain_graph=True)
        (mixed_second,) = torch.autograd.grad((dx * v).sum(), alpha, retain_graph=True)  # d/da (v . dout/dx)
        grads.append((dx, da, mixed_second))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert grads[0][2].abs().sum() > 0

    for (name, a), b in zip(mixed.named_buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)
    assert any(b.dtype == torch.float64 and (b != 0).any() and (b != 1).any() for b in mixed.buffers())


def test_channels_last_gives_the_same_loss() -> None:
    torch.manual_seed(0)
    a = tiny_space(channels_last=False)
    b = tiny_space(channels_last=True)
    b.load_state_dict(a.state_dict())
    batch = (torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,)))
    assert torch.allclose(a(batch).loss, b(batch).loss, atol=1e-5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_cells": 2}, "num_cells=2 is too small"),
    ({"multiplier": 5}, "multiplier=5 exceeds num_nodes=4"),
    ({"primitives": ["none", "sep_conv_9x9"]}, "Unknown primitive 'sep_conv_9x9'"),
])
def test_bad_sizes_and_primitives(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_space(**kwargs)


def test_edge_labels() -> None:
    labels = tiny_space().edge_labels()
    assert labels[:5] == ["c_{k-2}->0", "c_{k-1}->0", "c_{k-2}->1", "c_{k-1}->1", "0->1"]
    assert len(labels) == 14
