"""The alpha gradients: first order, second order (Eq. 7-8) against an exact Hessian-vector product and
against an original-style reference implementation written out step by step."""
from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.search import CNNSearchSpace
from darts_pl.search.base import LossOutput, SearchSpace, Stream
from darts_pl.strategies import FirstOrder, SecondOrder

from .conftest import REPO


class SmoothSpace(SearchSpace):
    """A tiny space whose loss is smooth in its weights (softplus, tanh, avg-pool-like means)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 5)
        self.ops = nn.ModuleList(nn.Linear(5, 5) for _ in range(3))
        self.out = nn.Linear(5, 3)
        self.arch["mix"] = nn.Parameter(0.3 * torch.randn(2, 3))

    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        x, y = batch
        h = F.softplus(self.inp(x))
        for row in F.softmax(self.arch["mix"], -1):
            h = row[0] * F.softplus(self.ops[0](h)) + row[1] * torch.tanh(self.ops[1](h)) + row[2] * self.ops[2](h)
        logits = self.out(h)
        return LossOutput(F.cross_entropy(logits, y), logits.detach(), y)

    def edge_probs(self) -> dict[str, torch.Tensor]:
        return {"mix": F.softmax(self.arch["mix"], -1).detach()}

    def genotype(self) -> Any:
        return None


def sgd_with_momentum_state(space: SearchSpace, lr: float = 0.05) -> torch.optim.SGD:
    opt = torch.optim.SGD(space.weight_parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    for p in space.weight_parameters():
        opt.state[p]["momentum_buffer"] = 0.1 * torch.randn_like(p)
    return opt


def batches(dtype: torch.dtype = torch.float64) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(3)
    train = (torch.randn(16, 6, generator=g, dtype=dtype), torch.randint(0, 3, (16,), generator=g))
    val = (torch.randn(16, 6, generator=g, dtype=dtype), torch.randint(0, 3, (16,), generator=g))
    return train, val


def test_finite_difference_matches_exact_hessian_vector_product_float64() -> None:
    torch.manual_seed(0)
    space = SmoothSpace().double()
    opt = sgd_with_momentum_state(space)
    train, val = batches()
    fd = SecondOrder(hessian="finite_difference").arch_gradients(space, train, val, opt).grads
    exact = SecondOrder(hessian="exact").arch_gradients(space, train, val, opt).grads
    first = FirstOrder().arch_gradients(space, train, val, opt).grads
    for a, b, c in zip(fd, exact, first):
        assert (a - b).norm() / b.norm() < 1e-3
        # the implicit term is not negligible, so the comparison above is meaningful
        assert (b - c).norm() / b.norm() > 1e-3


def test_exact_hvp_is_the_mixed_second_derivative() -> None:
    """The exact option against torch.func's full Hessian on the smooth model."""
    torch.manual_seed(0)
    space = SmoothSpace().double()
    train, _ = batches()
    names = [n for n, _ in space.named_weight_parameters()]
    params = {n: p.detach() for n, p in space.named_parameters()}
    v = {n: torch.randn_like(params[n]) for n in names}

    def loss(alpha: torch.Tensor, flat_w: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(space, {**params, **flat_w, "arch.mix": alpha}, (train, "train")).loss

    def directional(alpha: torch.Tensor) -> torch.Tensor:
        weights = {n: params[n] for n in names}
        grads = torch.func.grad(loss, argnums=1)(alpha, weights)
        return sum((grads[n] * v[n]).sum() for n in names)

    expected = torch.func.grad(directional)(params["arch.mix"])
    got = SecondOrder._exact_hvp(space, train, space.weight_parameters(), space.arch_parameters(),
                                 [v[n] for n in names])[0]
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_first_order_is_the_val_gradient_and_computes_no_weight_grad() -> None:
    space = SmoothSpace().double()
    train, val = batches()
    grads = FirstOrder().arch_gradients(space, train, val, sgd_with_momentum_state(space)).grads
    expected = torch.autograd.grad(space(val).loss, space.arch_parameters())
    assert torch.equal(grads[0], expected[0])
    assert all(p.grad is None for p in space.parameters())


@pytest.mark.parametrize("hessian", ["finite_difference", "exact"])
def test_live_weights_bit_identical_after_second_order(hessian: str) -> None:
    space = CNNSearchSpace(channels=4, num_cells=3)
    opt = sgd_with_momentum_state(space)
    before = {n: p.detach().clone() for n, p in space.named_parameters()}
    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    step = SecondOrder(hessian=hessian).arch_gradients(space, batch, batch, opt)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in step.grads)
    for n, p in space.named_parameters():
        assert torch.equal(p, before[n]), n
        assert p.grad is None, n


# reference_darts.py against the authors' Architect (quark0/darts): tests/goldens/darts.py
def _reference():
    bench = REPO.parent / "shared" / "bench"
    if not (bench / "reference_darts.py").is_file():
        pytest.skip("reference implementation not found")
    sys.path.insert(0, str(bench))
    try:
        import reference_darts
    finally:
        sys.path.remove(str(bench))
    return reference_darts


def test_second_order_equals_reference_step_by_step_on_the_supernet() -> None:
    """Eq. 7-8 on the real supernet, against an original-style implementation (deep-copied virtual
    network, in-place w±), in float64 so the finite difference is not dominated by rounding."""
    ref_mod = _reference()
    torch.manual_seed(0)
    ref_net = ref_mod.SearchNet(C=4, num_classes=10, layers=3).double()
    space = CNNSearchSpace(num_classes=10, channels=4, num_cells=3).double()
    ours, theirs = space.weight_parameters(), list(ref_net.parameters())
    assert [p.shape for p in ours] == [p.shape for p in theirs]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            a.copy_(b)
        space.arch["normal"].copy_(ref_net.alphas[0])
        space.arch["reduce"].copy_(ref_net.alphas[1])
    ref_net.alphas = [a.detach().double().requires_grad_() for a in ref_net.alphas]
    ref = ref_mod.RefSearch(ref_net, lr=0.025, momentum=0.9, wd=3e-4)
    opt = torch.optim.SGD(ours, lr=0.025, momentum=0.9, weight_decay=3e-4)
    for a, b in zip(ours, theirs):
        buf = 0.1 * torch.randn_like(a)
        opt.state[a]["momentum_buffer"] = buf
        ref.w_opt.state[b]["momentum_buffer"] = buf.clone()
    g = torch.Generator().manual_seed(1)
    xt, yt = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g)
    xv, yv = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g)

    expected = ref.unrolled_alpha_grad(xt, yt, xv, yv)
    got = SecondOrder().arch_gradients(space, (xt, yt), (xv, yv), opt).grads
    first = FirstOrder().arch_gradients(space, (xt, yt), (xv, yv), opt).grads
    for a, b, c in zip(got, expected, first):
        assert (a - b).norm() / b.norm() < 1e-7
        assert (b - c).norm() / b.norm() > 1e-4  # the unrolled gradient differs from first order


def original_unrolled_alpha_grads(space: CNNSearchSpace, opt: torch.optim.SGD, train: tuple, val: tuple,
                                  lr: float, momentum: float, wd: float, r: float = 1e-2) -> list[torch.Tensor]:
    """The original code's ``Architect._backward_step_unrolled``, written out as it does it: a deep-copied network
    at ``w' = w - lr (momentum · buf + dL_train/dw + wd · w)``, ``v = dL_val(w')/dw'``, then the finite difference
    with ``w`` moved in place to ``w ± R v``, ``R = r / ||v||``, divided by ``2R`` (paper Eq. 7-8)."""
    weights = space.weight_parameters()
    loss = space(train, "train").loss
    dtheta = torch.autograd.grad(loss, weights)
    unrolled = copy.deepcopy(space)
    with torch.no_grad():
        for w_new, w, g in zip(unrolled.weight_parameters(), weights, dtheta):
            buf = opt.state[w]["momentum_buffer"]
            w_new.copy_(w - lr * (momentum * buf + g + wd * w))
    unrolled_loss = unrolled(val, "val").loss
    grads = torch.autograd.grad(unrolled_loss, [*unrolled.arch_parameters(), *unrolled.weight_parameters()])
    n_arch = len(space.arch_parameters())
    dalpha, vector = grads[:n_arch], grads[n_arch:]
    radius = r / torch.cat([v.flatten() for v in vector]).norm()
    with torch.no_grad():
        for w, v in zip(weights, vector):
            w.add_(radius * v)
    grads_p = torch.autograd.grad(space(train, "train").loss, space.arch_parameters())
    with torch.no_grad():
        for w, v in zip(weights, vector):
            w.sub_(2 * radius * v)
    grads_n = torch.autograd.grad(space(train, "train").loss, space.arch_parameters())
    with torch.no_grad():
        for w, v in zip(weights, vector):
            w.add_(radius * v)
    return [a - lr * (p - n) / (2 * radius) for a, p, n in zip(dalpha, grads_p, grads_n)]


def test_second_order_equals_the_original_step_written_out() -> None:
    """Eq. 7-8 on the real supernet in float64, against the original code's step written out in this file (a
    deep-copied virtual network, in-place w±): needs nothing outside the repository."""
    torch.manual_seed(0)
    space = CNNSearchSpace(num_classes=10, channels=4, num_cells=3).double()
    opt = torch.optim.SGD(space.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    for w in space.weight_parameters():
        opt.state[w]["momentum_buffer"] = 0.1 * torch.randn_like(w)
    g = torch.Generator().manual_seed(1)
    train = (torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g))
    val = (torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g))
    buffers = [b.clone() for b in space.buffers()]
    expected = original_unrolled_alpha_grads(space, opt, train, val, lr=0.025, momentum=0.9, wd=3e-4)
    with torch.no_grad():  # the reference's forwards moved the batch-norm statistics; start from the same ones
        for b, saved in zip(space.buffers(), buffers):
            b.copy_(saved)
    got = SecondOrder().arch_gradients(space, train, val, opt).grads
    first = FirstOrder().arch_gradients(space, train, val, opt).grads
    for a, b, c in zip(got, expected, first):
        assert (a - b).norm() / b.norm() < 1e-7
        assert (b - c).norm() / b.norm() > 1e-4  # the unrolled gradient differs from first order


def test_float64_hessian_option_runs_on_float32_model() -> None:
    torch.manual_seed(0)
    space = SmoothSpace()
    opt = sgd_with_momentum_state(space)
    train, val = batches(torch.float32)
    g64 = SecondOrder(float64_hessian=True).arch_gradients(space, train, val, opt).grads
    exact = SecondOrder(hessian="exact").arch_gradients(space, train, val, opt).grads
    assert g64[0].dtype == torch.float32
    assert (g64[0] - exact[0]).norm() / exact[0].norm() < 1e-3


def test_different_group_learning_rates_are_refused() -> None:
    space = SmoothSpace()
    params = space.weight_parameters()
    opt = torch.optim.SGD([{"params": params[:2], "lr": 0.1}, {"params": params[2:], "lr": 0.2}])
    train, val = batches(torch.float32)
    with pytest.raises(ValueError, match="different learning rates"):
        SecondOrder().arch_gradients(space, train, val, opt)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="hessian='cg'"):
        SecondOrder(hessian="cg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon_scale=0"):
        SecondOrder(epsilon_scale=0)


# ----------------------------------------------------------------------------- the weight optimizer's virtual step
WEIGHT_OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05),
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=3e-4),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=3e-4, nesterov=True),
    "sgd_dampening": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.5, 0.999), weight_decay=1e-3),
    "adam_amsgrad": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, foreach=False),
    "adam_decoupled": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1),
}


def stepped(name: str, space: SearchSpace, steps: int) -> torch.optim.Optimizer:
    """The optimizer after ``steps`` real steps on random gradients (momentum buffers, moments, step counts)."""
    opt = WEIGHT_OPTIMIZERS[name](space.weight_parameters())
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        for p in space.weight_parameters():
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        opt.step()
    space.zero_grad(set_to_none=True)
    return opt


@pytest.mark.parametrize("steps", [0, 3], ids=["fresh", "with_state"])
@pytest.mark.parametrize("name", sorted(WEIGHT_OPTIMIZERS))
def test_virtual_step_equals_the_step_of_a_copied_optimizer(name: str, steps: int) -> None:
    import copy

    from darts_pl.strategies.second_order import virtual_step

    torch.manual_seed(0)
    space = SmoothSpace().double()
    opt = stepped(name, space, steps)
    params = space.weight_parameters()
    grads = [torch.randn_like(p) for p in params]
    state_before = copy.deepcopy(opt.state_dict())
    live_before = [p.detach().clone() for p in params]
    got = virtual_step(opt, params, grads).weights
    twin_params, twin = copy.deepcopy((params, opt))
    for p, g in zip(twin_params, grads):
        p.grad = g.clone()
    twin.step()
    for a, b in zip(got, twin_params):
        torch.testing.assert_close(a, b.detach(), rtol=1e-14, atol=1e-15)
        assert not torch.equal(a, b.detach() - 1e-3)  # sanity: a real comparison
    for a, b in zip(params, live_before):  # nothing live moved
        assert torch.equal(a, b) and a.grad is None
    after = opt.state_dict()
    assert after["param_groups"] == state_before["param_groups"]
    for key, state in state_before["state"].items():
        for k, value in state.items():
            assert torch.equal(torch.as_tensor(after["state"][key][k]), torch.as_tensor(value)), (key, k)


def unrolled_objective(space: SearchSpace, opt: torch.optim.Optimizer, alpha: torch.Tensor, train: Any,
                       val: Any) -> float:
    """L_val(w', alpha) with w' one real step of a deep copy of the weight optimizer at alpha."""
    import copy

    twin_space, twin = copy.deepcopy((space, opt))
    with torch.no_grad():
        twin_space.arch["mix"].copy_(alpha)
    weights = twin_space.weight_parameters()
    for p, g in zip(weights, torch.autograd.grad(twin_space(train).loss, weights)):
        p.grad = g
    twin.step()
    with torch.no_grad():
        return float(twin_space(val).loss)


@pytest.mark.parametrize("name", sorted(WEIGHT_OPTIMIZERS))
def test_unrolled_gradient_is_the_derivative_through_the_optimizer_step(name: str) -> None:
    """d/dalpha L_val(w'(alpha), alpha), w' the weight optimizer's own step, by central differences of the
    real step (float64) against the exact Hessian option and the paper's finite difference."""
    torch.manual_seed(0)
    space = SmoothSpace().double()
    opt = stepped(name, space, 3)
    train, val = batches()
    alpha, h = space.arch["mix"].detach().clone(), 1e-5
    expected = torch.zeros_like(alpha)
    for i in range(alpha.numel()):
        e = torch.zeros_like(alpha).view(-1)
        e[i] = h
        e = e.view_as(alpha)
        expected.view(-1)[i] = (unrolled_objective(space, opt, alpha + e, train, val)
                                - unrolled_objective(space, opt, alpha - e, train, val)) / (2 * h)
    exact = SecondOrder(hessian="exact").arch_gradients(space, train, val, opt).grads[0]
    fd = SecondOrder().arch_gradients(space, train, val, opt).grads[0]
    first = FirstOrder().arch_gradients(space, train, val, opt).grads[0]
    torch.testing.assert_close(exact, expected, rtol=1e-6, atol=1e-9)
    assert (fd - expected).norm() / expected.norm() < 1e-3
    assert (first - expected).norm() / expected.norm() > 1e-3  # the unrolled term matters here


def test_weight_optimizers_without_a_virtual_step_are_refused() -> None:
    space = SmoothSpace()
    train, val = batches(torch.float32)
    with pytest.raises(ValueError, match=r"weight optimizer RMSprop.*SGD, Adam and AdamW.*FirstOrder"):
        SecondOrder().arch_gradients(space, train, val, torch.optim.RMSprop(space.weight_parameters()))
    with pytest.raises(ValueError, match=r"maximize=True"):
        SecondOrder().arch_gradients(space, train, val, torch.optim.SGD(space.weight_parameters(), lr=0.1,
                                                                         maximize=True))
