"""ReinMax, SNAS (the concrete relaxation and its resource constraint) and Λ-DARTS (the alignment of the cells'
gradients in the weight step) against values computed by their authors' code on fixed inputs, and the behaviour that
defines each.

Expected numbers come from running, in float64 on the CPU: ReinMax's ``reinmax`` (microsoft/ReinMax,
``tests/goldens/reinmax.py``); SNAS's search network, op costs and temperature scheduler (SNAS-Series/SNAS-Series
``Analysis/snas``, the code the paper links to) and ConfigurableOptimizer's ``SNASSampler`` (``tests/goldens/snas.py``);
Λ-DARTS's weight step (dr-faustus/Lambda-DARTS ``sota/cnn``, ``tests/goldens/lambda_darts.py``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError, NonFiniteError
from darts_pl.modules import LitSearch
from darts_pl.parts import CellGradientAlignment, Concrete, LinearSchedule, ReinMax, ResourceConstraint, SampledOp
from darts_pl.parts.resource import combine, op_costs
from darts_pl.search import CNNSearchSpace, MixedOp, NB201SearchSpace, RNNSearchSpace
from darts_pl.strategies import SecondOrder

from .conftest import tiny_space

F64 = torch.float64
EIGHT_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5"]
SEVEN_OPS = EIGHT_OPS[1:]


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fn(x)


def image_batch(n: int = 4, channels: int = 1, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, channels, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


# ----------------------------------------------------------------------------------------------- ReinMax
# expected values: tests/goldens/reinmax.py
def reinmax_inputs() -> dict[str, torch.Tensor]:
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(8, dtype=F64)[None, :]
    return {"alpha": 0.8 * torch.sin(1.1 * e + 0.6 * k) + 0.3 * torch.cos(0.4 * e * k),
            "coef": torch.cos(0.7 * e - 0.45 * k + 0.3)}


INDEX = [0, 2, 0, 7, 0, 4, 1, 6, 2, 7, 5, 5, 3, 5]
REINMAX_GRAD = {
    1.0: {0: [0.292006041760924, 0.00241072301024833, -0.0125760500406531, -0.0457895908549297, -0.0696948951781319,
              -0.068106718863388, -0.0545274053788157, -0.0437221044552537],
          4: [-0.688435705338289, 0.00270048112982735, 0.00916728314755669, 0.0393543497748524, 0.126444658362626,
              0.162682163795556, 0.15738628238258, 0.19070048674529],
          13: [-0.269127652189213, -0.173349324377679, -0.0684621134939602, -0.0253045614954238, -0.00997024512823715,
               0.519987824180775, 0.0102708805900876, 0.0159551919136494]},
    2.5: {0: [0.361949593886118, 0.00743244306599779, -0.0104470180496138, -0.029435205175971, -0.0516425795488262,
              -0.0776673824699538, -0.0964534127265517, -0.103736438981199],
          4: [-0.607137780063363, -0.0123884511847786, 0.00595641608862783, 0.0534089569909775, 0.116746898163856,
              0.138389052933574, 0.147859956599038, 0.157164950472069],
          13: [-0.144370062677461, -0.135528696857084, -0.0960371151975574, -0.0503696554054889, -0.0166609958111544,
               0.398432960447356, 0.0213082813445824, 0.023225284156807]},
}


@pytest.mark.parametrize("tau", [1.0, 2.5])
def test_reinmax_sample_and_gradient_match_the_authors_reinmax(tau: float) -> None:
    """Seeded 3, the relaxation draws what ``reinmax`` draws after ``torch.manual_seed(3)``; the weights are exactly
    one-hot and their gradient is ReinMax's."""
    v = reinmax_inputs()
    alpha = v["alpha"].clone().requires_grad_()
    out = ReinMax(tau=tau, seed=3)(alpha)
    assert out.index.tolist() == INDEX
    assert torch.equal(out.weights.detach(), nn.functional.one_hot(out.index, 8).to(F64))
    (grad,) = torch.autograd.grad((out.weights * v["coef"]).sum(), alpha)
    for row, expected in REINMAX_GRAD[tau].items():
        torch.testing.assert_close(grad[row], torch.tensor(expected, dtype=F64), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(grad.sum(-1), torch.zeros(14, dtype=F64), rtol=0, atol=1e-14)  # softmax-invariant


def test_reinmax_gradient_on_a_sampled_edge() -> None:
    """Only the sampled op of an edge runs (``SampledOp``); its gradient at the weights is zero elsewhere, and the
    alpha gradient of that edge is the authors' for that upstream gradient (1.7 at op 0 of row 4)."""
    v = reinmax_inputs()
    alpha = v["alpha"].clone().requires_grad_()
    out = ReinMax(tau=1.0, seed=3)(alpha)
    mixed = MixedOp(2, 1, ["none"] * 8)
    fns = [Fn(lambda x: 1.7 * x) for _ in range(8)]
    mixed.ops, mixed.columns, mixed.shares_relu = nn.ModuleList(fns), list(range(8)), [False] * 8
    mixed._any_relu, mixed._position, mixed.wrappers = False, {c: c for c in range(8)}, [[] for _ in range(8)]
    y = SampledOp()(mixed, torch.ones(1, 1, 1, 1, dtype=F64), out.weights[4].unbind(0), int(out.index[4]))
    assert [f.calls for f in fns] == [1, 0, 0, 0, 0, 0, 0, 0]  # the sampled op (0) alone
    (grad,) = torch.autograd.grad(y.sum(), alpha)
    expected = [0.79650746064022, -0.0390531904904808, -0.0379519964195606, -0.0814999188750465, -0.169706420953197,
                -0.166690753210803, -0.139338202947618, -0.162266977743513]
    torch.testing.assert_close(grad[4], torch.tensor(expected, dtype=F64), rtol=1e-10, atol=1e-14)
    assert not grad[torch.arange(14) != 4].any()


def test_reinmax_temperature_is_at_least_one_and_alphas_must_be_finite() -> None:
    with pytest.raises(ConfigurationError, match=r"ReinMax: tau=0\.5 is out of range; it must be >= 1"):
        ReinMax(tau=0.5)
    with pytest.raises(ConfigurationError, match=r"sets 0\.5 at epoch 3 of 4.*tau must be >= 1"):
        LitSearch(tiny_space(relaxation=ReinMax(), edge=SampledOp()),
                  schedules=[LinearSchedule("space.relaxation.tau", 2.0, 0.5, span="epochs_minus_one")]
                  ).check_fit(__import__("lightning").Trainer(max_epochs=4, logger=False))
    with pytest.raises(NonFiniteError, match=r"ReinMax cannot sample.*NOT finite"):
        ReinMax()(torch.full((3, 4), math.nan))


def test_reinmax_runs_on_the_cnn_and_nas_bench_201_spaces_and_the_rnn_space_refuses_it() -> None:
    for space in (tiny_space(relaxation=ReinMax(seed=2), edge=SampledOp()),
                  NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1,
                                   relaxation=ReinMax(seed=2), edge=SampledOp(other_weights=True))):
        space(image_batch()).loss.backward()
        assert all(torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0 for a in space.arch_parameters())
        assert space.stochastic and space.unused_parameters
        with pytest.raises(ConfigurationError, match="cannot be combined with parts that draw noise"):
            LitSearch(space, SecondOrder())
    with pytest.raises(ConfigurationError, match="RNNSearchSpace: relaxation=ReinMax samples one op"):
        RNNSearchSpace(num_tokens=10, emb_size=8, hidden_size=8, relaxation=ReinMax())


# ----------------------------------------------------------------------------------------------- SNAS
# expected values: tests/goldens/snas.py
def concrete_inputs() -> dict[str, torch.Tensor]:
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(8, dtype=F64)[None, :]
    return {"alpha": 0.6 * torch.cos(0.9 * e + 0.5 * k) - 0.2 * torch.sin(0.3 * e * k),
            "u": 0.02 + 0.96 * (0.5 + 0.5 * torch.sin(2.3 * e + 1.7 * k + 0.4)),
            "coef": torch.sin(0.6 * e + 0.35 * k - 0.1)}


CONCRETE = {
    1.0: {"row0": [0.141943272524097, 0.553084012000003, 0.0256311159883098, 0.0167317411285091, 0.179816651591184,
                   0.060209965523092, 0.00564055114167872, 0.0169426901031262],
          "row9": [0.0750699479061054, 0.00382561981031969, 0.00507700569837853, 0.0647350472624843,
                   0.0228478765489514, 0.00235848061024569, 0.0169783027818803, 0.809107719381635],
          "grad9": [-0.120210363344604, -0.00520574864543578, -0.00532303463014719, -0.045462062041885,
                    -0.00832106039027802, -0.00017735541261284, 0.00220147700340041, 0.182498147461562]},
    0.3: {"row0": [0.0103781825930724, 0.966144924224232, 3.45379837941547e-05, 8.3344264230088e-06,
                   0.0228299494180657, 0.00059515925300605, 2.22233946688845e-07, 8.68986745992978e-06],
          "row9": [0.000361361867148313, 1.77307850773953e-08, 4.55422108253387e-08, 0.000220556657395268,
                   6.85290563645341e-06, 3.53587014397813e-09, 2.54704247573261e-06, 0.999408614718478],
          "grad9": [-0.00219948567640055, -9.3703959547744e-08, -1.93272809225602e-07, -0.000681494056649284,
                    -1.34517897277252e-05, -3.53451073782025e-09, -8.06746079109336e-07, 0.00289552878013612]},
}


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_concrete_sample_matches_the_authors_and_configurable_optimizer(tau: float) -> None:
    """SNAS-Series' ``_get_categ_mask`` with its uniform draws fixed to ``U`` (ConfigurableOptimizer's sampler gives
    the same to the last bit with its exponential draws fixed to ``-log U``)."""
    v = concrete_inputs()
    alpha = v["alpha"].clone().requires_grad_()
    sample = Concrete.soft_sample(alpha, -torch.log(-torch.log(v["u"])), tau)
    for row in (0, 9):
        torch.testing.assert_close(sample[row], torch.tensor(CONCRETE[tau][f"row{row}"], dtype=F64), rtol=1e-10,
                                   atol=1e-15)
    (grad,) = torch.autograd.grad((sample * v["coef"]).sum(), alpha)
    torch.testing.assert_close(grad[9], torch.tensor(CONCRETE[tau]["grad9"], dtype=F64), rtol=1e-9, atol=1e-15)


def test_concrete_draws_from_its_own_generator_and_runs_every_op() -> None:
    alpha = concrete_inputs()["alpha"]
    relaxation = Concrete(tau=0.5, seed=7)
    torch.manual_seed(7)
    exponential = torch.empty(14, 8, dtype=F64).exponential_()
    torch.manual_seed(123)
    expected_global = torch.rand(2)
    torch.manual_seed(123)
    weights = relaxation(alpha).weights
    assert torch.equal(torch.rand(2), expected_global)  # the global generator is left alone
    torch.testing.assert_close(weights, Concrete.soft_sample(alpha, -exponential.log(), 0.5), rtol=0, atol=0)
    assert not Concrete.samples and Concrete.stochastic and torch.equal(relaxation.probs(alpha), alpha.softmax(-1))


def test_snas_temperature_schedule() -> None:
    """ConfigurableOptimizer's ``(1 - epoch / epochs) · (1 - 0.03) + 0.03`` (SNAS-Series' Temp_Scheduler draws the
    same line over a fixed 150 epochs, one epoch ahead: 0.99353 at its first epoch)."""
    schedule = LinearSchedule("space.relaxation.tau", 1.0, 0.03, span="epochs")
    expected = {0: 1.0, 1: 0.9806, 25: 0.515, 49: 0.0494}
    assert {e: schedule.value(e, 50) for e in expected} == pytest.approx(expected, rel=1e-13)


OPS_8C_8PX = {1: [(0.0, 0.0, 0.0), (0.0, 4608.0, 1024.0), (0.0, 4608.0, 1024.0), (0.0, 0.0, 1024.0),
                  (272.0, 17408.0, 4368.0), (528.0, 33792.0, 4624.0), (136.0, 8704.0, 2184.0),
                  (264.0, 16896.0, 2312.0)],
              2: [(0.0, 0.0, 0.0), (0.0, 1152.0, 640.0), (0.0, 1152.0, 640.0), (64.0, 1024.0, 1216.0),
                  (272.0, 4352.0, 1680.0), (528.0, 8448.0, 1936.0), (136.0, 2176.0, 1032.0), (264.0, 4224.0, 1160.0)]}
OPS_16C_4PX = {1: [(0.0, 0.0, 0.0), (0.0, 2304.0, 512.0), (0.0, 2304.0, 512.0), (0.0, 0.0, 512.0),
                   (800.0, 12800.0, 2848.0), (1312.0, 20992.0, 3360.0), (400.0, 6400.0, 1424.0),
                   (656.0, 10496.0, 1680.0)],
               2: [(0.0, 0.0, 0.0), (0.0, 576.0, 320.0), (0.0, 576.0, 320.0), (256.0, 1024.0, 832.0),
                   (800.0, 3200.0, 1504.0), (1312.0, 5248.0, 2016.0), (400.0, 1600.0, 848.0), (656.0, 2624.0, 1104.0)]}


def test_resource_costs_match_the_authors_operations() -> None:
    """Size, FLOPs and MAC of every op, from SNAS-Series' ``operations.py``. The space's reduction cells (8 channels
    on 8 px inputs, 16 on 4 px) average them: their stride-2 edges from the cell's inputs cost the authors' values, the
    stride-1 edges between its nodes run at half the input's resolution."""
    for (channels, height), table in (((8, 8), OPS_8C_8PX), ((16, 4), OPS_16C_4PX)):
        for stride, expected in table.items():
            assert [op_costs(name, channels, height, stride) for name in EIGHT_OPS] == expected
    space = CNNSearchSpace(num_classes=10, in_channels=3, channels=4, num_cells=3)
    for cost in ("params", "flops", "mac", "combined"):
        reduce = ResourceConstraint(cost=cost, image_size=8).costs(space)["reduce"]
        for row in (0, 1, 2, 3, 5, 6, 9, 10):  # the edges from c_{k-2} and c_{k-1}: stride 2
            expected = [(combine(*a, cost) + combine(*b, cost)) / 2 for a, b in zip(OPS_8C_8PX[2], OPS_16C_4PX[2])]
            torch.testing.assert_close(reduce[row], torch.tensor(expected, dtype=F64), rtol=1e-15, atol=0)
        for row in (4, 7, 8, 11, 12, 13):  # from the cell's nodes, at 4 px and 2 px
            expected = [(combine(*op_costs(n, 8, 4, 1), cost) + combine(*op_costs(n, 16, 2, 1), cost)) / 2
                        for n in EIGHT_OPS]
            torch.testing.assert_close(reduce[row], torch.tensor(expected, dtype=F64), rtol=1e-15, atol=0)


def test_resource_constraint_matches_the_authors_expected_cost() -> None:
    """Their network's closed-form expected cost (``method='discrete'``, ``separation='all'``) of one normal cell (4
    channels, 8 px, 3 input channels): the normal cell's term here, its op costs and its gradient."""
    space = CNNSearchSpace(num_classes=10, in_channels=3, channels=4, num_cells=3).to(F64)
    with torch.no_grad():
        space.arch["normal"].copy_((0.5 * torch.sin(0.8 * torch.arange(14 * 8, dtype=F64))).reshape(14, 8))
    constraint = ResourceConstraint(weight=1.0, image_size=8)
    costs = constraint.costs(space)["normal"]
    edge0 = [(0.0, 0.0, 0.0), (0.0, 2304.0, 512.0), (0.0, 2304.0, 512.0), (0.0, 0.0, 512.0),
             (104.0, 6656.0, 2152.0), (232.0, 14848.0, 2280.0), (52.0, 3328.0, 1076.0), (116.0, 7424.0, 1140.0)]
    torch.testing.assert_close(costs[0], torch.tensor([combine(*c, "combined") for c in edge0], dtype=F64))
    normal = (space.arch["normal"].softmax(-1) * costs).sum()
    assert float(normal.detach()) == pytest.approx(601.45812487202, rel=1e-12)
    (grad,) = torch.autograd.grad(normal, space.arch["normal"])
    torch.testing.assert_close(grad[2], torch.tensor(
        [-5.41669779061076, -6.9702633617377, -7.35147512190952, -5.82222394640032, 5.96161163374669,
         12.8445077694188, 0.640918083031905, 6.11362273446089], dtype=F64), rtol=1e-11, atol=1e-12)
    reduce = (space.arch["reduce"].softmax(-1) * constraint.costs(space)["reduce"]).sum()
    torch.testing.assert_close(constraint(space), normal + reduce)  # the types' terms, summed
    assert float(ResourceConstraint(weight=1e-4, image_size=8)(space).detach()) == pytest.approx(
        1e-4 * float((normal + reduce).detach()))


def test_resource_measurement_leaves_the_run_as_it_was() -> None:
    """One evaluation-mode forward reads the costs: the sampling stream, the global generator, the batch-norm
    statistics and the mode are as before, with a sampling edge too (every edge is costed, sampled or not)."""
    space = tiny_space(relaxation=ReinMax(seed=2), edge=SampledOp())
    twin = tiny_space(relaxation=ReinMax(seed=2), edge=SampledOp())
    twin.load_state_dict(space.state_dict())
    buffers = [b.clone() for b in space.buffers()]
    torch.manual_seed(5)
    costs = ResourceConstraint(image_size=8).costs(space)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), after)
    assert space.training and all(torch.equal(a, b) for a, b in zip(buffers, space.buffers()))
    assert torch.equal(space.edge_weights()["normal"].index, twin.edge_weights()["normal"].index)
    assert all((c[:, 1:] > 0).all() and (c[:, 0] == 0).all() for c in costs.values())  # 'none' is free
    nb201 = NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1)
    assert ResourceConstraint(image_size=8).costs(nb201)["cell"].shape == (6, 5)


def test_resource_constraint_refusals() -> None:
    with pytest.raises(ConfigurationError, match="RNNSearchSpace has no edges of candidate ops to cost"):
        ResourceConstraint()(RNNSearchSpace(num_tokens=10, emb_size=8, hidden_size=8))
    with pytest.raises(ConfigurationError, match="no cost formula for the op 'noise'"):
        ResourceConstraint(image_size=8)(tiny_space(primitives=["noise", "sep_conv_3x3"]))
    with pytest.raises(ConfigurationError, match="cost='latency'"):
        ResourceConstraint(cost="latency")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- Λ-DARTS
# expected values: tests/goldens/lambda_darts.py
def lambda_inputs() -> dict[str, torch.Tensor]:
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(7, dtype=F64)[None, :]
    i = torch.arange(2 * 3 * 8 * 8, dtype=F64)
    return {"alpha_n": 0.4 * torch.sin(1.2 * e + 0.8 * k), "alpha_r": 0.4 * torch.cos(0.7 * e - 0.5 * k),
            "x": (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i)).reshape(2, 3, 8, 8), "y": torch.tensor([3, 7])}


def projections(grads: list[torch.Tensor]) -> list[float]:
    flat = torch.cat([g.flatten() for g in grads])
    i = torch.arange(flat.numel(), dtype=F64)
    return [float(flat @ torch.sin(0.13 * i)), float(flat @ torch.cos(0.029 * i + 1.0)), float(flat.norm())]


AUTHORS_STEP = {
    "corr": {"loss": 10.49317404033, "corr": 0.1145053183832, "plain": [3.96940706935, -35.31587489096, 41.29494424397],
             "full": [-91.83836695682, -116.5237639572, 156.5727785233],
             "classifier_bias": [0.007132261520673, 0.03164321713674, 0.2707543683271, -0.4308046220112,
                                 0.00158673951795, 0.0362776829412, 0.3603712938883, -0.4053759552921,
                                 0.003693250618734, 0.1247217633525]},
    "signcorr": {"loss": 10.49317404033, "corr": 0.1145053183832,
                 "plain": [3.96940706935, -35.31587489096, 41.29494424397],
                 "full": [-161.4985159529, -185.0747408947, 236.443521398],
                 "classifier_bias": [0.007076373003728, 0.03177312113358, 0.2706951250619, -0.4312721348312,
                                     0.001575603031058, 0.03649231451081, 0.3607417183894, -0.4058903372022,
                                     0.003687287313014, 0.12512092959]},
}


def lambda_module(kind: str, weight: float = 0.25) -> tuple[LitSearch, list[torch.Tensor]]:
    """The authors' 5-cell, 4-channel DARTS supernet (their space s5: 7 ops) with the golden's weights and alphas."""
    v = lambda_inputs()
    space = CNNSearchSpace(num_classes=10, in_channels=3, channels=4, num_cells=5, primitives=SEVEN_OPS,
                           channels_last=False).to(F64)
    weights = space.weight_parameters()
    with torch.no_grad():
        for n, p in enumerate(weights):  # the golden's fill_sin, in parameter order
            p.copy_((torch.sin(torch.arange(p.numel(), dtype=F64) * 0.7 + n) * 0.5).reshape(p.shape))
        space.arch["normal"].copy_(v["alpha_n"])
        space.arch["reduce"].copy_(v["alpha_r"])
    term = CellGradientAlignment(weight=weight, epsilon=1e-3, kind=kind, cell_types=["normal"])  # type: ignore[arg-type]
    return LitSearch(space, weight_terms=[term]), weights


def backward(loss: torch.Tensor, inputs: list[torch.Tensor]) -> None:
    loss.backward(inputs=inputs)


@pytest.mark.parametrize("kind", ["corr", "signcorr"])
def test_cell_gradient_alignment_matches_the_authors_weight_step(kind: str) -> None:
    """The weight step's gradients with the term (λ 0.25, ε0 1e-3), and without it (λ 0): the authors' train() on
    their supernet, to the rounding the finite difference amplifies."""
    v, expected = lambda_inputs(), AUTHORS_STEP[kind]
    module, weights = lambda_module(kind)
    out = module._weight_gradients((v["x"], v["y"]), weights, backward)
    assert float(out.loss.detach()) == pytest.approx(expected["loss"], rel=1e-11)
    torch.testing.assert_close(torch.tensor(projections([w.grad for w in weights]), dtype=F64),
                               torch.tensor(expected["full"], dtype=F64), rtol=1e-9, atol=0)
    torch.testing.assert_close(weights[-1].grad, torch.tensor(expected["classifier_bias"], dtype=F64), rtol=1e-9,
                               atol=1e-12)
    assert float(module.weight_terms[0].metrics["cell_gradient_cosine_normal"]) == pytest.approx(expected["corr"],
                                                                                                  rel=1e-9)
    plain, weights = lambda_module(kind, weight=0.0)
    plain._weight_gradients((v["x"], v["y"]), weights, backward)
    torch.testing.assert_close(torch.tensor(projections([w.grad for w in weights]), dtype=F64),
                               torch.tensor(expected["plain"], dtype=F64), rtol=1e-10, atol=0)


def test_lambda_schedule_is_linear_to_the_last_epoch() -> None:
    schedule = LinearSchedule("weight_terms.0.weight", 0.0, 0.125, span="epochs_minus_one")
    assert [schedule.value(e, 50) for e in (0, 1, 25, 49)] == pytest.approx(
        [0.0, 0.00255102040816327, 0.0637755102040816, 0.125], rel=1e-13)


def count_forwards(space: CNNSearchSpace) -> list[int]:
    calls = [0]
    space.classifier.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_alignment_runs_two_more_passes_and_none_at_weight_zero() -> None:
    """The per-cell gradients come from the step's own backward; the finite difference costs two forward/backward
    passes, skipped while the schedule holds the weight at 0. A type with one cell has nothing to align (a warning)."""
    for weight, passes in ((0.5, 3), (0.0, 1)):
        space = tiny_space(num_cells=5)
        calls = count_forwards(space)
        module = LitSearch(space, weight_terms=[CellGradientAlignment(weight=weight)])
        module._weight_gradients(image_batch(), space.weight_parameters(), backward)
        assert calls[0] == passes
    space = tiny_space()  # 3 cells: one normal cell
    module = LitSearch(space, weight_terms=[CellGradientAlignment(weight=0.5, cell_types=["normal"])])
    calls = count_forwards(space)
    with pytest.warns(UserWarning, match="no aligned cell type has two cells"):
        module._weight_gradients(image_batch(), space.weight_parameters(), backward)
    assert calls[0] == 1


def test_alignment_works_on_the_nas_bench_201_space() -> None:
    """All NAS-Bench-201 cells share one alpha (as the authors' NAS-Bench-201 code aligns them all)."""
    space = NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1)
    module = LitSearch(space, weight_terms=[CellGradientAlignment(weight=0.5)])
    weights = space.weight_parameters()
    module._weight_gradients(image_batch(), weights, backward)
    with_term = [w.grad.clone() for w in weights]
    assert -1 <= float(module.weight_terms[0].metrics["cell_gradient_cosine_cell"]) <= 1
    for w in weights:
        w.grad = None
    LitSearch(space)._weight_gradients(image_batch(), weights, backward)
    assert any(not torch.allclose(a, w.grad) for a, w in zip(with_term, weights))


def test_alignment_refusals() -> None:
    with pytest.raises(ConfigurationError, match="RNNSearchSpace does not run its cells' op weights one cell at"):
        LitSearch(RNNSearchSpace(num_tokens=10, emb_size=8, hidden_size=8),
                  weight_terms=[CellGradientAlignment()])
    with pytest.raises(ConfigurationError, match=r"cell_types=\['cell'\] names \['cell'\].*normal, reduce"):
        LitSearch(tiny_space(), weight_terms=[CellGradientAlignment(cell_types=["cell"])])
    with pytest.raises(ConfigurationError, match=r"CellGradientAlignment evaluates the step's loss again.*"
                                                 r"relaxation Concrete"):
        LitSearch(tiny_space(relaxation=Concrete()), weight_terms=[CellGradientAlignment()])
    with pytest.raises(ConfigurationError, match=r"CellGradientAlignment: epsilon=0\.0 is out of range"):
        CellGradientAlignment(epsilon=0.0)
    with pytest.raises(ConfigurationError, match="does not give its cells' edge weights one cell at a time"):
        with RNNSearchSpace(num_tokens=10, emb_size=8, hidden_size=8).per_cell(lambda c, i, w: w):
            pass


@pytest.mark.slow
def test_alignment_with_second_order_and_a_perturbation(tmp_path: Path) -> None:
    """The term is deterministic, so the unrolled strategy runs with it; with SDARTS's perturbation its passes run at
    the step's perturbed edge weights (drawn once)."""
    import lightning as L

    from darts_pl.data import DigitsDataModule
    from darts_pl.strategies import RandomPerturbation

    for strategy, perturbation in ((SecondOrder(), None), (None, RandomPerturbation(epsilon=0.3))):
        space = tiny_space(num_cells=5)
        module = LitSearch(space, strategy, perturbation=perturbation,
                           weight_terms=[CellGradientAlignment(weight=0.5)])
        trainer = L.Trainer(default_root_dir=tmp_path, accelerator="cpu", max_epochs=1, limit_train_batches=2,
                            limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)
        trainer.fit(module, DigitsDataModule(batch_size=16))
        assert all(torch.isfinite(p).all() for p in space.parameters())
