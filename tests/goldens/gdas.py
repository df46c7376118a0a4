"""GDAS expected values of tests/test_variants.py, from the authors' code.

Upstream: D-X-Y/AutoDL-Projects, commit f46486e21b71ae6459a700be720d7648b5429569, files
``xautodl/models/cell_searchs/search_model_gdas_nasnet.py`` (``NASNetworkGDAS.forward``: its inner
``get_gumbel_prob``; ``NASNetworkGDAS.genotype``), ``xautodl/models/cell_searchs/search_cells.py``
(``MixedOp.forward_gdas``, ``NAS201SearchCell.forward_gdas``) and ``exps/NAS-Bench-201-algos/GDAS.py`` (the tau
schedule passed to ``set_tau`` in ``main()``).

Run: ``python tests/goldens/gdas.py /path/to/AutoDL-Projects`` (float64, CPU). Prints, for

- ``test_gdas_hard_gumbel_softmax_matches_the_authors_code``: the sampled indices of both cell types and
  ``GDAS_GRAD`` (d sum(hardwts · COEF) / d alpha_normal, rows 0, 1, 5, for tau 10 and 0.5);
- ``test_gdas_sampled_edge_matches_forward_gdas``: ``expected`` (output and d loss / d alpha row, rows 0 and 5);
- ``test_gdas_nb201_form_adds_the_other_weights_as_scalars``: the gradient w.r.t. the weight row;
- ``test_gdas_tau_schedule_matches_the_authors_formula``: the tau of each listed epoch of 250 (and epoch 1 of 50);
- ``test_gdas_joint_top2_derivation_matches_the_authors_genotype``: the normal and reduction genes.

How the test's inputs reach the authors' code: ``get_gumbel_prob`` is local to ``NASNetworkGDAS.forward``, so the
whole network (C=4, N=1, the DARTS space) runs forward on a 2×3×8×8 input with its alphas set to the test's, and the
``hardwts``/``index`` every cell receives are recorded; the exponential samples the test fixes (``exp_n``,
``exp_r``, so the Gumbel noise is ``-log(exp)``) are what ``Tensor.exponential_`` returns during that forward, in
the authors' order (normal first). The edges' candidate ops are replaced by the test's functions (the authors'
``MixedOp`` / ``NAS201SearchCell`` keep their own ``forward_gdas``). The authors name the DARTS space's separable
and dilated convolutions ``dua_sepc_*`` / ``dil_sepc_*``; they are printed under the test's names. Nothing is
stubbed: the authors' code runs on the CPU as it is.
"""
from __future__ import annotations

import ast
from collections.abc import Callable

import torch
import torch.nn as nn
from _upstream import F64, Fn, call_argument, checkout, evaluate, on_path, section, show

ROOT = checkout("xautodl/models/cell_searchs/search_model_gdas_nasnet.py")
on_path(ROOT)

from xautodl.models.cell_operations import SearchSpaceNames  # noqa: E402
from xautodl.models.cell_searchs import NASNetworkGDAS  # noqa: E402
from xautodl.models.cell_searchs.search_cells import MixedOp, NAS201SearchCell  # noqa: E402

NAMES = {"dua_sepc_3x3": "sep_conv_3x3", "dua_sepc_5x5": "sep_conv_5x5", "dil_sepc_3x3": "dil_conv_3x3",
         "dil_sepc_5x5": "dil_conv_5x5"}
FNS = [lambda x: x * 0, lambda x: x, lambda x: 2 * x, lambda x: x ** 2, lambda x: x + 1, lambda x: -x,
       lambda x: 3 * x - 1, lambda x: x ** 3]
X = torch.tensor([[[[0.5, -1.0], [1.5, 2.0]]]], dtype=F64)
GO = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]], dtype=F64)


def gdas_inputs() -> dict[str, torch.Tensor]:
    """tests/test_variants.py ``gdas_inputs``."""
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(8, dtype=F64)[None, :]
    return {"alpha_n": 0.5 * torch.sin(1.3 * e + 0.7 * k), "alpha_r": 0.5 * torch.cos(0.9 * e - 0.4 * k),
            "exp_n": 0.05 + 2 * (0.5 + 0.5 * torch.sin(0.37 * e * 8 + 1.1 * k + 0.3)),
            "exp_r": 0.05 + 2 * (0.5 + 0.5 * torch.cos(0.23 * e * 8 - 0.8 * k + 0.1)),
            "coef": torch.cos(0.5 * e - 0.3 * k + 0.2)}


def network(v: dict[str, torch.Tensor]) -> NASNetworkGDAS:
    torch.manual_seed(0)
    net = NASNetworkGDAS(4, 1, 4, 4, 3, 10, SearchSpaceNames["darts"], False, True).double()
    with torch.no_grad():
        net.arch_normal_parameters.copy_(v["alpha_n"])
        net.arch_reduce_parameters.copy_(v["alpha_r"])
    return net


def authors_sample(net: NASNetworkGDAS, v: dict[str, torch.Tensor], tau: float) -> dict[bool, tuple]:
    """Run the authors' forward with the test's exponential samples; the (hardwts, index) of each cell type."""
    samples = [v["exp_n"], v["exp_r"]]
    seen: dict[bool, tuple] = {}
    real_exponential = torch.Tensor.exponential_

    def fixed_exponential(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        with torch.no_grad():
            return self.copy_(samples.pop(0))

    for cell in net.cells:
        def record(s0: torch.Tensor, s1: torch.Tensor, weightss: torch.Tensor, indexs: torch.Tensor,
                   cell: nn.Module = cell, real: Callable[..., torch.Tensor] = cell.forward_gdas) -> torch.Tensor:
            seen.setdefault(cell.reduction, (weightss, indexs))
            return real(s0, s1, weightss, indexs)

        cell.forward_gdas = record
    net.set_tau(tau)
    torch.Tensor.exponential_ = fixed_exponential
    try:
        net(torch.zeros(2, 3, 8, 8, dtype=F64))
    finally:
        torch.Tensor.exponential_ = real_exponential
    assert not samples, "the authors' forward drew fewer exponential samples than expected"
    return seen


def hard_gumbel(v: dict[str, torch.Tensor]) -> None:
    section("test_gdas_hard_gumbel_softmax_matches_the_authors_code")
    grads, indices, indices_r = {}, {}, {}
    for tau in (10.0, 0.5):
        net = network(v)
        seen = authors_sample(net, v, tau)
        (hardwts, index), (_, index_r) = seen[False], seen[True]
        indices[tau], indices_r[tau] = index.flatten(), index_r.flatten()
        assert torch.equal(hardwts.detach(), torch.nn.functional.one_hot(index.flatten(), 8).to(F64))
        (grad,) = torch.autograd.grad((hardwts * v["coef"]).sum(), net.arch_normal_parameters)
        grads[tau] = {row: grad[row] for row in (0, 1, 5)}
    show("index", indices)  # the same for both taus: the sample does not depend on tau
    show("index_r", indices_r)
    show("GDAS_GRAD", grads)


def sampled_edge(v: dict[str, torch.Tensor]) -> None:
    section("test_gdas_sampled_edge_matches_forward_gdas")
    mixed = MixedOp(["none"] * 8, 1, 1, False, True)
    mixed._ops = nn.ModuleList(Fn(fn) for fn in FNS)
    expected = {}
    for row in (0, 5):
        net = network(v)
        hardwts, index = authors_sample(net, v, 10.0)[False]
        out = mixed.forward_gdas(X, hardwts[row], index[row].item())
        (grad,) = torch.autograd.grad((out * GO).sum(), net.arch_normal_parameters)
        expected[row] = (out.flatten(), grad[row])
    show("expected", expected)


def nb201_form(v: dict[str, torch.Tensor]) -> None:
    section("test_gdas_nb201_form_adds_the_other_weights_as_scalars")
    cell = NAS201SearchCell(1, 1, 1, 2, ["none"] * 8, False, True)  # one edge, 1<-0
    cell.edges["1<-0"] = nn.ModuleList(Fn(fn) for fn in FNS)
    hardwts, index = authors_sample(network(v), v, 10.0)[False]
    row = hardwts[0].detach().clone().requires_grad_()
    out = cell.forward_gdas(X, row[None], index[0:1])
    (grad,) = torch.autograd.grad((out * GO).sum(), row)
    show("grad", grad)


def tau_schedule() -> None:
    section("test_gdas_tau_schedule_matches_the_authors_formula")
    expression = call_argument(ROOT / "exps/NAS-Bench-201-algos/GDAS.py", "search_model.set_tau")
    print(f"# tau = {ast.unparse(expression)}")

    class Args:
        tau_max, tau_min = 10.0, 0.1

    def tau(epoch: int, total: int) -> float:
        return evaluate(expression, xargs=Args, epoch=epoch, total_epoch=total)

    show("expected", {e: tau(e, 250) for e in (0, 1, 2, 124, 125, 248, 249)})
    show("value_1_of_50", tau(1, 50))


def genotype(v: dict[str, torch.Tensor]) -> None:
    section("test_gdas_joint_top2_derivation_matches_the_authors_genotype")
    gene = network(v).genotype()
    for cell in ("normal", "reduce"):
        show(f"genotype_{cell}", [(NAMES.get(op, op), j) for node in gene[cell] for op, j, _ in node])


def main() -> None:
    v = gdas_inputs()
    hard_gumbel(v)
    sampled_edge(v)
    nb201_form(v)
    tau_schedule()
    genotype(v)


if __name__ == "__main__":
    main()
