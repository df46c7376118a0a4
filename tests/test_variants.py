"""The variants' mechanisms against values computed by their authors' code on fixed inputs, and the behaviour
that defines each method.

Expected numbers were produced by running the authors' own functions (float64, CPU) on the inputs built
here: GDAS (D-X-Y/AutoDL-Projects, ``get_gumbel_prob``, ``MixedOp.forward_gdas``, ``genotype``), FairDARTS
(xiaomi-automl/FairDARTS, ``ConvSeparateLoss``, ``utils.parse`` ``threshold_sparse``), DrNAS
(xiangning-chen/DrNAS, ``process_step_matrix``, ``_get_kl_reg``), β-DARTS (Sunshine-Ye/Beta-DARTS,
``mlc_loss``), SDARTS (xiangning-chen/SmoothDARTS, ``Random_alpha``, ``Linf_PGD_alpha``, ``clip``) and DARTS-
(Meituan-AutoML/DARTS-, ``MixedOp`` with ``auxiliary_skip``, ``DecayScheduler``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import Genotype, derive_cnn
from darts_pl.modules import LitSearch
from darts_pl.schedules import LinearSchedule
from darts_pl.search import (
    AuxiliarySkip,
    CNNSearchSpace,
    Dirichlet,
    GumbelSoftmax,
    JointTopK,
    LossOutput,
    MixedOp,
    SampledOp,
    SearchSpace,
    Sigmoid,
    Threshold,
)
from darts_pl.search.base import Stream
from darts_pl.strategies import (
    AdversarialPerturbation,
    BetaDecay,
    DirichletKL,
    RandomPerturbation,
    SecondOrder,
    ZeroOneLoss,
)
from darts_pl.strategies.perturbation import clip_rows

F64 = torch.float64
SEVEN_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5"]


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def mixed_with(fns: list[Callable[[torch.Tensor], torch.Tensor]], stride: int = 1,
               extra: nn.Module | None = None) -> MixedOp:
    """A MixedOp whose candidate ops are the given functions (as the reference runs substituted ops)."""
    mixed = MixedOp(2, stride, ["none"] * len(fns), extra)
    mixed.ops = nn.ModuleList(Fn(fn) for fn in fns)
    mixed.columns = list(range(len(fns)))
    mixed.shares_relu = [False] * len(fns)
    mixed._any_relu = False
    mixed._position = {c: c for c in mixed.columns}
    mixed.wrappers = [[] for _ in fns]
    return mixed


class ArchOnlySpace(SearchSpace):
    """Two cell types whose loss is a fixed smooth function of the edge weights:
    ``sum_c sum(C_c · P_c^2 + D_c · P_c)`` (the test model of the SDARTS reference vectors)."""

    def __init__(self, normal: torch.Tensor, reduce: torch.Tensor, coefficients: dict[str, tuple]) -> None:
        super().__init__()
        self.add_cells({"normal": nn.Parameter(normal.clone()), "reduce": nn.Parameter(reduce.clone())})
        self.coefficients = coefficients
        self.calls: list[bool] = []

    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        self.calls.append(self.training)
        loss = sum((c * w.weights ** 2 + d * w.weights).sum()
                   for (c, d), w in zip(self.coefficients.values(), self.edge_weights().values()))
        return LossOutput(loss)

    def genotype(self) -> Any:
        return None


# ----------------------------------------------------------------------------------------------- GDAS
# expected values: tests/goldens/gdas.py
def gdas_inputs() -> dict[str, torch.Tensor]:
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(8, dtype=F64)[None, :]
    return {"alpha_n": 0.5 * torch.sin(1.3 * e + 0.7 * k), "alpha_r": 0.5 * torch.cos(0.9 * e - 0.4 * k),
            "exp_n": 0.05 + 2 * (0.5 + 0.5 * torch.sin(0.37 * e * 8 + 1.1 * k + 0.3)),
            "exp_r": 0.05 + 2 * (0.5 + 0.5 * torch.cos(0.23 * e * 8 - 0.8 * k + 0.1)),
            "coef": torch.cos(0.5 * e - 0.3 * k + 0.2)}


GDAS_GRAD = {  # d sum(hardwts · COEF) / d alpha_normal, rows 0, 1, 5
    10.0: {0: [0.00529272560825723, 0.00541879667021588, 0.00473237571885582, 0.00311574635486773,
               0.00015476197330727, -0.00331670024010721, -0.0062017755238733, -0.00919593056152341],
           1: [0.000568977358443947, 0.00306423183071459, 0.00367803450319331, 0.00291453346040731,
               0.00165134817108847, -0.00022803342324087, -0.00310786771384208, -0.00854122418676468],
           5: [-0.00926036445076512, -0.00839427974276304, -0.00691445310677978, -0.00172299778895915,
               0.00186910941391182, 0.00490790968271585, 0.00786262375263437, 0.011652452240005]},
    0.5: {0: [0.000849756238589907, 0.000731357281155033, 0.00131189418189732, 0.00501625907958565,
              -0.00532432802576744, -0.00199271666550568, -0.000317715388026579, -0.000274506701928205],
          1: [0.00322392650962679, 0.321328864892242, 0.0284827950864251, 0.000801198755395664,
              0.0001558533764287, 0.00011068970476627, -8.55299177043988e-06, -0.354094775333114],
          5: [-0.000348724416425167, -0.00287909101835242, -0.00967719834134412, 0.0027447736606586,
              0.000431269621811133, 0.000221268720723844, 0.000440810148062126, 0.00906689162486599]},
}


@pytest.mark.parametrize("tau", [10.0, 0.5])
def test_gdas_hard_gumbel_softmax_matches_the_authors_code(tau: float) -> None:
    v = gdas_inputs()
    alpha = v["alpha_n"].clone().requires_grad_()
    weights, index = GumbelSoftmax.hard_sample(alpha, -v["exp_n"].log(), tau)
    assert index.tolist() == [4, 7, 4, 7, 5, 2, 5, 2, 5, 3, 0, 3, 6, 3]
    assert torch.equal(weights.detach(), torch.nn.functional.one_hot(index, 8).to(F64))  # exactly one-hot in value
    _, index_r = GumbelSoftmax.hard_sample(v["alpha_r"], -v["exp_r"].log(), tau)
    assert index_r.tolist() == [4, 6, 1, 3, 5, 0, 2, 4, 7, 1, 4, 6, 0, 2]
    (grad,) = torch.autograd.grad((weights * v["coef"]).sum(), alpha)  # straight-through: the soft gradient
    for row, expected in GDAS_GRAD[tau].items():
        torch.testing.assert_close(grad[row], torch.tensor(expected, dtype=F64), rtol=1e-9, atol=1e-14)


def test_gdas_sampled_edge_matches_forward_gdas() -> None:
    """Row 0 samples op 4 (x + 1), row 5 op 2 (2x): output and d loss / d alpha_row of the authors' edge."""
    v = gdas_inputs()
    fns = [lambda x: x * 0, lambda x: x, lambda x: 2 * x, lambda x: x ** 2, lambda x: x + 1, lambda x: -x,
           lambda x: 3 * x - 1, lambda x: x ** 3]
    x = torch.tensor([[[[0.5, -1.0], [1.5, 2.0]]]], dtype=F64)
    go = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]], dtype=F64)
    expected = {0: ([1.5, 0.0, 2.5, 3.0], [-0.0230672414251008, -0.0228563908878664, -0.0237451704363588,
                                            -0.0260780954127208, 0.163113273795133, -0.0246332895825661,
                                            -0.0216661370598149, -0.0210669489907048]),
                5: ([1.0, -2.0, 3.0, 4.0], [-0.0355764755871843, -0.0406020947182107, 0.25889082526185,
                                             -0.04022576218705, -0.0353414005024753, -0.0334833463883928,
                                             -0.0342048200693714, -0.0394569258091658])}
    for row, (out_expected, grad_expected) in expected.items():
        alpha = v["alpha_n"].clone().requires_grad_()
        weights, index = GumbelSoftmax.hard_sample(alpha, -v["exp_n"].log(), 10.0)
        out = SampledOp()(mixed_with(fns), x, weights[row].unbind(0), int(index[row]))
        assert out.flatten().tolist() == out_expected
        (grad,) = torch.autograd.grad((out * go).sum(), alpha)
        torch.testing.assert_close(grad[row], torch.tensor(grad_expected, dtype=F64), rtol=1e-9, atol=1e-14)


def test_gdas_nb201_form_adds_the_other_weights_as_scalars() -> None:
    v = gdas_inputs()
    fns = [lambda x: x * 0, lambda x: x, lambda x: 2 * x, lambda x: x ** 2, lambda x: x + 1, lambda x: -x,
           lambda x: 3 * x - 1, lambda x: x ** 3]
    x = torch.tensor([[[[0.5, -1.0], [1.5, 2.0]]]], dtype=F64)
    go = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]], dtype=F64)
    weights, index = GumbelSoftmax.hard_sample(v["alpha_n"], -v["exp_n"].log(), 10.0)
    row = weights[0].detach().clone().requires_grad_()
    out = SampledOp(other_weights=True)(mixed_with(fns), x, row.unbind(0), int(index[0]))
    (grad,) = torch.autograd.grad((out * go).sum(), row)
    assert grad.tolist() == [2.5, 2.5, 2.5, 2.5, 11.75, 2.5, 2.5, 2.5]  # the authors' NB201 cell


def test_gdas_computes_only_the_sampled_ops() -> None:
    space = CNNSearchSpace(num_classes=3, in_channels=1, channels=4, num_cells=3,
                           relaxation=GumbelSoftmax(seed=3), edge=SampledOp())
    calls = {"n": 0}
    for module in space.modules():
        if isinstance(module, MixedOp):
            for op in module.ops:
                op.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    space(_image_batch(), "train").loss.backward()
    edges = sum(isinstance(m, MixedOp) for m in space.modules())
    # one op per edge at most (a sampled 'none' runs nothing); DARTS runs all 7 non-none ops per edge
    assert 0 < calls["n"] <= edges
    assert all(p.grad is not None for p in space.arch.values())


def test_gdas_tau_schedule_matches_the_authors_formula() -> None:
    schedule = LinearSchedule("space.relaxation.tau", 10.0, 0.1, span="epochs_minus_one")
    values = {e: schedule.value(e, 250) for e in (0, 1, 2, 124, 125, 248, 249)}
    expected = {0: 10.0, 1: 9.96024096385542, 2: 9.92048192771084, 124: 5.06987951807229, 125: 5.03012048192771,
                248: 0.139759036144577, 249: 0.0999999999999996}
    for epoch, value in expected.items():
        assert values[epoch] == pytest.approx(value, rel=1e-13)
    assert schedule.value(1, 50) == pytest.approx(9.79795918367347, rel=1e-13)


def test_gdas_joint_top2_derivation_matches_the_authors_genotype() -> None:
    v = gdas_inputs()
    # their DARTS_SPACE column order
    ops = ["none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3",
           "max_pool_3x3"]
    genotype = derive_cnn(torch.softmax(v["alpha_n"], -1).tolist(), torch.softmax(v["alpha_r"], -1).tolist(),
                          primitives=ops, select=JointTopK().select)
    assert genotype.normal == [("skip_connect", 1), ("sep_conv_3x3", 0), ("max_pool_3x3", 0), ("avg_pool_3x3", 1),
                               ("max_pool_3x3", 2), ("sep_conv_3x3", 0), ("max_pool_3x3", 3), ("dil_conv_5x5", 4)]
    assert genotype.reduce == [("skip_connect", 0), ("sep_conv_3x3", 0), ("max_pool_3x3", 2), ("max_pool_3x3", 1),
                               ("skip_connect", 2), ("skip_connect", 1), ("max_pool_3x3", 2), ("max_pool_3x3", 1)]


def test_stochastic_relaxations_refuse_second_order() -> None:
    for relaxation in (GumbelSoftmax(), Dirichlet()):
        edge = SampledOp() if relaxation.samples else None
        space = CNNSearchSpace(num_classes=3, in_channels=1, channels=4, num_cells=3, relaxation=relaxation, edge=edge)
        with pytest.raises(ConfigurationError, match="cannot be combined with parts that draw noise"):
            LitSearch(space, strategy=SecondOrder())


def test_sampled_edge_needs_a_sampling_relaxation() -> None:
    with pytest.raises(ConfigurationError, match="samples none"):
        CNNSearchSpace(num_classes=3, in_channels=1, channels=4, num_cells=3, edge=SampledOp())


# ----------------------------------------------------------------------------------------------- FairDARTS
# expected values: tests/goldens/fair_darts.py
def test_fair_darts_zero_one_loss_matches_the_authors_code() -> None:
    space = ArchOnlySpace(torch.linspace(-3.0, 3.0, 98, dtype=F64).reshape(14, 7),
                          torch.linspace(2.0, -2.5, 98, dtype=F64).reshape(14, 7), {})
    loss = ZeroOneLoss(weight=10.0)(space)
    assert float(loss.detach()) == pytest.approx(-0.861433675595104, rel=1e-12)
    grad_n, grad_r = torch.autograd.grad(loss, [space.arch["normal"], space.arch["reduce"]])
    torch.testing.assert_close(grad_n[0], torch.tensor([0.00208630483, 0.00219204826, 0.002301368176, 0.002414154979,
                                                        0.002530261583, 0.002649499301, 0.002771633577], dtype=F64),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad_n[13, 6], torch.tensor(-0.00208630483, dtype=F64), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad_r[0], torch.tensor(
        [-4.079719441640e-03, -4.170462601750e-03, -4.258466727996e-03, -4.343252662142e-03, -4.424317785959e-03,
         -4.501137324600e-03, -4.573166003154e-03], dtype=F64), rtol=1e-10, atol=1e-14)
    assert float(ZeroOneLoss(weight=1.0, norm="l1").penalty(space)) == pytest.approx(-0.263112705713554, rel=1e-12)


def test_fair_darts_threshold_derivation_matches_threshold_sparse() -> None:
    w = torch.full((14, 7), 0.05, dtype=F64)
    w[0, 3], w[0, 4], w[1, 6] = 0.95, 0.90, 0.86                     # node 2: both edges pass
    w[2, 0], w[3, 2], w[4, 5] = 0.91, 0.97, 0.88                     # node 3: all three pass, two kept
    w[5, 3], w[6, 4], w[7, 1], w[8, 2] = 0.84, 0.70, 0.60, 0.849     # node 4: none passes
    w[9, 3], w[12, 4] = 0.99, 0.50                                   # node 5: one passes
    genotype = derive_cnn(w.tolist(), w.tolist(), primitives=SEVEN_OPS, select=Threshold(0.85).select)
    # the authors' (op, to, from) triplets: sep3 2<-0, dil5 2<-1, skip 3<-1, max 3<-0, sep3 5<-0
    assert genotype.normal == [("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("skip_connect", 1), ("max_pool_3x3", 0),
                               ("none", 3), ("none", 0), ("sep_conv_3x3", 0), ("none", 3)]
    assert genotype.normal_concat == [2, 3, 5]  # node 4 is isolated, as their cell drops it


def test_threshold_genotype_trains_with_dropped_edges() -> None:
    from darts_pl.genotypes import from_dict, to_dict
    from darts_pl.networks import NetworkCIFAR

    genotype = Genotype(normal=[("sep_conv_3x3", 0), ("none", 1), ("skip_connect", 1), ("none", 0),
                                ("none", 3), ("none", 0), ("sep_conv_3x3", 0), ("none", 3)],
                        normal_concat=[2, 3, 5],
                        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4, reduce_concat=[2, 3, 4, 5])
    assert from_dict(to_dict(genotype)) == genotype
    net = NetworkCIFAR(genotype, channels=4, num_classes=3, num_cells=3, in_channels=1)
    assert net(torch.randn(2, 1, 8, 8))[0].shape == (2, 3)


def test_fair_darts_sigmoid_weights_are_independent() -> None:
    alpha = torch.tensor([[0.0, 2.0, -2.0]])
    assert torch.allclose(Sigmoid()(alpha).weights, torch.sigmoid(alpha))
    assert not Sigmoid.normalized and Sigmoid.label == "sigmoid(alpha)"


# ----------------------------------------------------------------------------------------------- DrNAS
# expected values: tests/goldens/drnas.py
def drnas_alphas() -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.linspace(-1.5, 1.5, 98, dtype=F64).reshape(14, 7),
            torch.linspace(1.2, -0.9, 98, dtype=F64).reshape(14, 7).flip(-1))


def test_drnas_dirichlet_sample_matches_the_authors_code() -> None:
    """``torch.manual_seed(0)`` then one sample per cell type, normal first, in their code; here the
    relaxation's own generator seeded 0."""
    alpha_n, alpha_r = (a.clone().requires_grad_() for a in drnas_alphas())
    relaxation = Dirichlet(seed=0)
    w_n, w_r = relaxation(alpha_n).weights, relaxation(alpha_r).weights
    torch.testing.assert_close(w_n[0], torch.tensor([1.99850017502e-07, 0.00504940166016, 0.31558546419,
                                                     0.418781445955, 0.122517811022, 0.0992376091526,
                                                     0.0388280681703], dtype=F64), rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(w_r[1], torch.tensor([0.140500416296, 0.420345520168, 0.0719123401845,
                                                     0.0370887940473, 0.0615435961256, 0.181070365073,
                                                     0.0875389681054], dtype=F64), rtol=1e-9, atol=1e-15)
    c = torch.arange(7, dtype=F64) + 1
    loss = (c * w_n).sum() + (c * w_r).sum()
    assert float(loss.detach()) == pytest.approx(120.525547132, rel=1e-10)
    grad_n, grad_r = torch.autograd.grad(loss, [alpha_n, alpha_r])
    torch.testing.assert_close(grad_n[1], torch.tensor([-1.33059961165, -0.442881970321, -0.0414492609613,
                                                        -0.00790248519681, 0.0772844974096, 0.0355777411069,
                                                        1.23321809069], dtype=F64), rtol=1e-9, atol=1e-14)
    assert float(grad_n.abs().sum()) == pytest.approx(20.7498450141, rel=1e-9)
    assert float(grad_r.abs().sum()) == pytest.approx(20.9686801218, rel=1e-9)
    # the probabilities monitors read: softmax(alpha), as the authors derive
    torch.testing.assert_close(relaxation.probs(alpha_n.detach())[0], torch.tensor(
        [0.129949943292, 0.134031809989, 0.138241892484, 0.142584218173, 0.147062940956, 0.151682345211,
         0.156446849895], dtype=F64), rtol=1e-10, atol=1e-13)
    mean = Dirichlet(probs="mean").probs(alpha_n.detach())[13]
    torch.testing.assert_close(mean[:2], torch.tensor([0.137350871826, 0.139186295503], dtype=F64), rtol=1e-10, atol=0)


def test_drnas_sampling_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    Dirichlet(seed=1)(torch.zeros(4, 3))
    assert torch.equal(torch.rand(3), expected)


def test_drnas_kl_regularizer_matches_the_authors_code() -> None:
    alpha_n, alpha_r = drnas_alphas()
    space = ArchOnlySpace(alpha_n, alpha_r, {})
    loss = DirichletKL(weight=1e-3)(space)
    assert float(loss.detach()) == pytest.approx(0.0308608991861, rel=1e-10)
    grad_n, grad_r = torch.autograd.grad(loss, [space.arch["normal"], space.arch["reduce"]])
    torch.testing.assert_close(grad_n[0], torch.tensor(
        [-0.00277253756895, -0.00261005201414, -0.00245073053481, -0.00229440861528, -0.00214092425879,
         -0.00199011783324, -0.00184183191994], dtype=F64), rtol=1e-9, atol=1e-15)
    assert float(grad_n.sum()) == pytest.approx(-0.0410600135899, rel=1e-9)
    assert float(grad_r.sum()) == pytest.approx(-0.0113487977419, rel=1e-9)


# ----------------------------------------------------------------------------------------------- β-DARTS
# expected values: tests/goldens/beta_darts.py
def test_beta_decay_matches_the_authors_mlc_loss() -> None:
    i = torch.arange(112, dtype=F64)
    space = ArchOnlySpace((torch.linspace(-1.0, 1.0, 112, dtype=F64) + 0.3 * torch.cos(0.91 * i)).reshape(14, 8),
                          (1.5 * torch.sin(0.37 * i)).reshape(14, 8), {})
    loss = BetaDecay(weight=1.0)(space)
    # 2.1063... (normal) + 2.4742... (reduce)
    assert float(loss.detach()) == pytest.approx(4.580497116248925, rel=1e-13)
    grad_n, grad_r = torch.autograd.grad(loss, [space.arch["normal"], space.arch["reduce"]])
    torch.testing.assert_close(grad_n[0], torch.tensor(
        [1.059250059654e-02, 9.605040403324e-03, 7.554871620157e-03, 6.291848268293e-03, 6.479963189401e-03,
         8.180338122421e-03, 1.072117776561e-02, 1.200283146282e-02], dtype=F64), rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(grad_r, torch.softmax(space.arch["reduce"], -1) / 14)


def test_beta_decay_weight_schedule_is_50_epoch_over_100() -> None:
    schedule = LinearSchedule("regularizers.0.weight", 0.0, 50.0, span=100)
    assert [schedule.value(e, 50) for e in (0, 1, 10, 25, 49)] == [0.0, 0.5, 5.0, 12.5, 24.5]


# ----------------------------------------------------------------------------------------------- SDARTS
# expected values: tests/goldens/sdarts.py
def sdarts_space() -> ArchOnlySpace:
    ar = torch.arange(12, dtype=F64)
    coefficients = {"normal": (torch.linspace(-2, 2, 12, dtype=F64).reshape(3, 4), torch.cos(ar).reshape(3, 4)),
                    "reduce": (torch.linspace(1.5, -1.5, 12, dtype=F64).reshape(3, 4),
                               torch.sin(2 * ar).reshape(3, 4))}
    return ArchOnlySpace(torch.linspace(-1, 1, 12, dtype=F64).reshape(3, 4),
                         torch.linspace(0.6, -0.5, 12, dtype=F64).reshape(3, 4), coefficients)


def sdarts_delta(probs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    ar = torch.arange(12, dtype=F64)
    return {"normal": (0.1 * torch.sin(1.3 * ar)).reshape(3, 4), "reduce": (0.1 * torch.cos(0.7 * ar)).reshape(3, 4)}


def test_sdarts_clip_matches_the_authors_clip() -> None:
    got = clip_rows(torch.tensor([[1.10, -0.10, 0.15, -0.10], [-0.40, -0.30, -0.20, -0.10],
                                  [0.55, 0.15, 0.25, 0.45]], dtype=F64))
    expected = torch.tensor([[0.869565217391, 0, 0.130434782609, 0], [0, 0, 0, 1.0],
                             [0.392857142857, 0.107142857143, 0.178571428571, 0.321428571429]], dtype=F64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_sdarts_random_perturbation_matches_random_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    space = sdarts_space()
    before = {k: v.detach().clone() for k, v in space.arch.items()}
    hook = RandomPerturbation(epsilon=0.1)
    monkeypatch.setattr(hook, "uniform", sdarts_delta)
    weights = hook.perturb(space, None)
    torch.testing.assert_close(weights["normal"].weights, torch.tensor(
        [[0.172779098593, 0.296520910774, 0.296321665904, 0.234378324729],
         [0.092123861821, 0.230193940344, 0.345631504159, 0.332050693676],
         [0.105599456049, 0.150176531782, 0.316014969180, 0.428209042988]], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(weights["reduce"].weights[0], torch.tensor(
        [0.340028570072, 0.295422482312, 0.221631943701, 0.142917003915], dtype=F64), rtol=0, atol=1e-12)
    assert all(torch.equal(before[k], space.arch[k]) for k in before)  # the alphas themselves are never written


def test_sdarts_adversarial_perturbation_matches_linf_pgd(monkeypatch: pytest.MonkeyPatch) -> None:
    space = sdarts_space()
    hook = AdversarialPerturbation(epsilon=0.1, steps=7)
    monkeypatch.setattr(hook, "uniform", sdarts_delta)
    weights = hook.perturb(space, None)
    torch.testing.assert_close(weights["normal"].weights, torch.tensor(
        [[0.298436550627, 0.225859701868, 0.225506011038, 0.250197736467],
         [0.079089675880, 0.268972478720, 0.327114722933, 0.324823122467],
         [0.203930562345, 0.112737609265, 0.324711378744, 0.358620449646]], dtype=F64), rtol=0, atol=1e-11)
    torch.testing.assert_close(weights["reduce"].weights, torch.tensor(
        [[0.388651405157, 0.361182592155, 0.136327782322, 0.113838220366],
         [0.388651405157, 0.161182592155, 0.136327782322, 0.313838220366],
         [0.249983334106, 0.242255903738, 0.379357948104, 0.128402814052]], dtype=F64), rtol=0, atol=1e-11)
    with space.fixed_edge_weights(weights):
        assert float(space(None).loss) == pytest.approx(1.375271019138, rel=1e-11)
    assert len(space.calls) == 10 and not any(space.calls[:9]) and space.training  # attack in eval mode


def test_sdarts_adversarial_attack_that_lowers_the_loss_is_reverted(monkeypatch: pytest.MonkeyPatch) -> None:
    space = sdarts_space()
    p0 = {cell: torch.softmax(a.detach(), -1) for cell, a in space.arch.items()}
    space.coefficients = {cell: (torch.full_like(p, -100.0), 200 * (p + 0.01)) for cell, p in p0.items()}
    hook = AdversarialPerturbation(epsilon=0.1, steps=1)
    monkeypatch.setattr(hook, "uniform", lambda probs: {c: torch.full_like(p, -0.09) for c, p in probs.items()})
    weights = hook.perturb(space, None)
    for cell, p in p0.items():
        torch.testing.assert_close(weights[cell].weights, p)


def test_sdarts_epsilon_schedule() -> None:
    schedule = LinearSchedule("perturbation.epsilon", 0.03, 0.3, span="epochs")
    assert [round(schedule.value(e, 50), 12) for e in (0, 1, 10, 25, 49)] == [0.03, 0.0354, 0.084, 0.165, 0.2946]


# ----------------------------------------------------------------------------------------------- DARTS-
# expected values: tests/goldens/darts_minus.py
def test_darts_minus_auxiliary_skip_matches_the_authors_mixed_op() -> None:
    fns = [lambda x: 0 * x, lambda x: x, lambda x: 2 * x, lambda x: x ** 2]
    x = torch.linspace(-1, 1, 32, dtype=F64).reshape(1, 2, 4, 4)
    edge = AuxiliarySkip()
    mixed = mixed_with(fns, extra=edge.build_extra(2, 1))
    for beta, first, last in [(1.0, -1.611683807, 2.06071377779), (0.5, -1.111683807, 1.56071377779),
                              (0.02, -0.631683807005, 1.08071377779)]:
        alpha = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64, requires_grad=True)
        edge.beta = beta
        out = edge(mixed, x, torch.softmax(alpha, -1).unbind(0), None)
        assert float(out.flatten()[0]) == pytest.approx(first, abs=1e-9)
        assert float(out.flatten()[-1]) == pytest.approx(last, abs=1e-9)
        (grad,) = torch.autograd.grad(out.sum(), alpha)  # the auxiliary term adds no alpha gradient
        torch.testing.assert_close(grad, torch.tensor([-0.699085884399, -0.42401702266, -0.853865427396,
                                                       1.97696833445], dtype=F64), rtol=1e-10, atol=1e-12)


def test_darts_minus_stride_two_auxiliary_is_a_factorized_reduce() -> None:
    fns = [lambda x: 0 * x[:, :, ::2, ::2], lambda x: x[:, :, ::2, ::2], lambda x: 2 * x[:, :, ::2, ::2],
           lambda x: x[:, :, ::2, ::2] ** 2]
    edge = AuxiliarySkip(beta=0.8)
    aux = edge.build_extra(2, 2).double()
    with torch.no_grad():
        aux.conv_1.weight.copy_(torch.tensor([[[[0.5]], [[-0.25]]]]))
        aux.conv_2.weight.copy_(torch.tensor([[[[0.75]], [[1.5]]]]))
    mixed = mixed_with(fns, stride=2, extra=aux)
    x = torch.linspace(-1, 1, 64, dtype=F64).reshape(2, 2, 4, 4)
    alpha = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64)
    out = edge(mixed, x, torch.softmax(alpha, -1).unbind(0), None)
    expected = [0.0861749194453, 0.111662141116, 0.198984697335, 0.231712513143, -1.12836557692, -1.08839716697,
                -0.957631045928, -0.910422041846, -1.34915652113, -1.0288559795, -0.0570934634048, 0.270447672362,
                0.906497658564, 1.12117906595, 1.77608417933, 1.99800618086]
    torch.testing.assert_close(out.flatten(), torch.tensor(expected, dtype=F64), rtol=0, atol=1e-10)


def test_darts_minus_beta_decays_as_the_authors_schedule() -> None:
    schedule = LinearSchedule("space.edge.beta", 1.0, 0.0, span="epochs")
    assert [round(schedule.value(e, 50), 12) for e in (0, 1, 25, 49)] == [1.0, 0.98, 0.5, 0.02]


# ----------------------------------------------------------------------------------------------- helpers
def _image_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g)
