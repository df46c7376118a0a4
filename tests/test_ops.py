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
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in op.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_preactivated_equals_forward() -> None:
    x = torch.randn(2, 8, 6, 6)
    for name in ("sep_conv_3x3", "dil_conv_5x5", "skip_connect"):
        op = make_op(name, 8, 2, affine=False)
        assert torch.equal(op(x), op.preactivated(torch.relu(x))), name


def test_unknown_primitive_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"Unknown primitive 'sep_conv_9x9'; known: none, max_pool_3x3"):
        get_op("sep_conv_9x9")


def test_search_primitives_are_all_known() -> None:
    assert set(PRIMITIVES) <= set(OPS)


def test_factorized_reduce_odd_size_and_odd_channels() -> None:
    assert FactorizedReduce(4, 6)(torch.randn(1, 4, 7, 7)).shape == (1, 6, 4, 4)
    with pytest.raises(ValueError, match="c_out=5"):
        FactorizedReduce(4, 5)
