"""SNAS expected values of tests/test_samplers.py, from the authors' released code and ConfigurableOptimizer's sampler.

SNAS has no code from the ICLR 2019 release itself; the paper's arXiv version (v3) links SNAS-Series/SNAS-Series,
whose ``Analysis/snas`` (the code of the authors' follow-up, AISTATS 2021) holds the SNAS search network with the
concrete sample, the temperature scheduler and the resource constraint:

Upstream (1): SNAS-Series/SNAS-Series, commit 9a43adbdf90d4969b19e448c0d094091bc5efb4f, files ``Analysis/snas/
model_search.py`` (``Network._get_categ_mask``: the concrete sample; ``Network.forward`` with ``resource_efficient``,
``method='discrete'``, ``separation='all'``: the expected cost), ``Analysis/snas/operations.py`` (each op's ``size``,
``flops``, ``mac``) and ``Analysis/snas/utils.py`` (``Temp_Scheduler``).

Upstream (2): automl/ConfigurableOptimizer, commit 13bde40eb05bb2027d049b76bf1cffa9b55604fc, file
``src/confopt/oneshot/archsampler/snas/sampler.py`` (``SNASSampler.sample``, ``F.gumbel_softmax``; ``new_epoch``:
the temperature of each epoch).

Run: ``python tests/goldens/snas.py /path/to/SNAS-Series /path/to/ConfigurableOptimizer`` (float64, CPU). Prints, for

- ``test_concrete_sample_matches_the_authors_and_configurable_optimizer``: the sample ``softmax((alpha + g) / tau)``
  (rows 0 and 9) and ``d sum(sample · COEF) / d alpha`` (row 9) for tau 1 and 0.3, from ``_get_categ_mask`` with the
  uniform draws fixed to ``U`` (``g = -log(-log U)``), and the largest difference from ConfigurableOptimizer's
  ``SNASSampler.sample`` with its exponential draws fixed to ``-log U``;
- ``test_snas_temperature_schedule``: ConfigurableOptimizer's temperature of epochs 0, 1, 25, 49 of 50 (1 → 0.03), and
  SNAS-Series' ``Temp_Scheduler`` (the same line, fixed to 150 epochs, one epoch ahead);
- ``test_resource_costs_match_the_authors_operations``: ``(size, flops, mac)`` of every op from their
  ``operations.py`` after a forward, at the channels and resolutions of the test's reduction cells (stride 1 and 2);
- ``test_resource_constraint_matches_the_authors_expected_cost``: their network's ``penalty[28]`` (the normal cells'
  closed-form expected cost, ``method='discrete'``) for one normal cell (C=4, 8×8 input) with the test's alphas, and
  the op costs of its edge 0.

Stubbed on a CPU-only machine: ``Tensor.cuda``, and ``.to`` for the CUDA device their network names (both return the
tensor or module as it is); their search network's ``args`` is a namespace with the settings named above
(``snas``, ``resource_efficient``, ``method='discrete'``, ``separation='all'``, ``temp=1``, no checkpointing, the
standard op order) and every other flag off. Their cells are all normal cells (their ``reduction`` is always false),
so the reduction cells' costs are compared op by op.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from _upstream import F64, on_path, section, show

if len(sys.argv) != 3:
    raise SystemExit(f"usage: python {sys.argv[0]} /path/to/SNAS-Series /path/to/ConfigurableOptimizer")
SNAS = Path(sys.argv[1]).resolve() / "Analysis" / "snas"
CONFOPT = Path(sys.argv[2]).resolve()
SAMPLER = CONFOPT / "src/confopt/oneshot/archsampler/snas/sampler.py"
if not (SNAS / "model_search.py").is_file() or not SAMPLER.is_file():
    raise SystemExit("pass the roots of the SNAS-Series and ConfigurableOptimizer checkouts named in the docstring")

_real_to = torch.Tensor.to
_real_module_to = nn.Module.to


def _cpu_to(self, *args, **kwargs):  # stub: the CUDA device their code names stays the CPU
    if args and isinstance(args[0], torch.device) and args[0].type == "cuda":
        return self
    return _real_to(self, *args, **kwargs)


def _cpu_module_to(self, *args, **kwargs):
    if args and isinstance(args[0], torch.device) and args[0].type == "cuda":
        return self
    return _real_module_to(self, *args, **kwargs)


torch.Tensor.cuda = lambda self, *args, **kwargs: self
torch.Tensor.to = _cpu_to
nn.Module.to = _cpu_module_to
on_path(SNAS)

import model_search  # noqa: E402
import operations  # noqa: E402
import utils as snas_utils  # noqa: E402

PRIMITIVES = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
              "dil_conv_5x5"]


def concrete_inputs() -> dict[str, torch.Tensor]:
    """tests/test_samplers.py ``concrete_inputs``."""
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(8, dtype=F64)[None, :]
    return {"alpha": 0.6 * torch.cos(0.9 * e + 0.5 * k) - 0.2 * torch.sin(0.3 * e * k),
            "u": 0.02 + 0.96 * (0.5 + 0.5 * torch.sin(2.3 * e + 1.7 * k + 0.4)),
            "coef": torch.sin(0.6 * e + 0.35 * k - 0.1)}


def confopt_sample(alpha: torch.Tensor, tau: float, exponential: torch.Tensor) -> torch.Tensor:
    """ConfigurableOptimizer's ``SNASSampler.sample``, run from its source on a stand-in ``self`` (importing the
    package would import every sampler's dependencies)."""
    source = SAMPLER.read_text()
    namespace: dict = {"torch": torch, "F": F}
    exec(compile(source.replace("from confopt.oneshot.archsampler import BaseSampler", "BaseSampler = object"),
                 "sampler.py", "exec"), namespace)
    real = torch.Tensor.exponential_
    torch.Tensor.exponential_ = lambda self, *a, **k: self.copy_(exponential)
    try:
        return namespace["SNASSampler"].sample(types.SimpleNamespace(curr_temp=tau), alpha)
    finally:
        torch.Tensor.exponential_ = real


def concrete_sample(v: dict[str, torch.Tensor]) -> None:
    section("test_concrete_sample_matches_the_authors_and_configurable_optimizer")
    out = {}
    for tau in (1.0, 0.3):
        alpha = v["alpha"].clone().requires_grad_()
        real = torch.Tensor.uniform_
        torch.Tensor.uniform_ = lambda self, *a, **k: self.copy_(v["u"])
        try:
            sample = model_search.Network._get_categ_mask(types.SimpleNamespace(_temp=tau), alpha)
        finally:
            torch.Tensor.uniform_ = real
        (grad,) = torch.autograd.grad((sample * v["coef"]).sum(), alpha)
        theirs = confopt_sample(v["alpha"], tau, -v["u"].log())
        out[tau] = {"row0": sample[0], "row9": sample[9], "grad9": grad[9],
                    "confopt_diff": float((theirs - sample.detach()).abs().max())}
    show("CONCRETE", out)


def temperature() -> None:
    section("test_snas_temperature_schedule")
    source = SAMPLER.read_text()
    namespace: dict = {"torch": torch, "F": F}
    exec(compile(source.replace("from confopt.oneshot.archsampler import BaseSampler", "BaseSampler = object"),
                 "sampler.py", "exec"), namespace)
    sampler = namespace["SNASSampler"]
    temps = {}
    for epoch in (0, 1, 25, 49):
        stand_in = types.SimpleNamespace(temp_annealing=True, _epoch=epoch, total_epochs=50, temp_init=1.0,
                                         temp_min=0.03, curr_temp=None)
        try:
            sampler.new_epoch(stand_in)
        except TypeError:  # its closing super().new_epoch() needs a real sampler; the temperature is set before it
            pass
        temps[epoch] = stand_in.curr_temp
    show("CONFOPT_TEMP", temps)
    scheduler = snas_utils.Temp_Scheduler(150, 1.0, 1.0, temp_min=0.03)
    show("SNAS_SERIES_TEMP_FIRST_EPOCHS", [scheduler.step() for _ in range(3)])


def op_table(channels: int, height: int, stride: int) -> list[tuple[float, float, float]]:
    rows = []
    for name in PRIMITIVES:
        op = operations.OPS[name](channels, stride, False)
        op(torch.zeros(1, channels, height, height))
        rows.append((float(op.size), float(op.flops), float(op.mac)))
    return rows


def resource_costs() -> None:
    section("test_resource_costs_match_the_authors_operations")
    # the test's 3-cell, 4-channel supernet on 8x8 images: reduction cells at 8 channels / 8 px and 16 channels / 4 px
    show("OPS_8C_8PX", {stride: op_table(8, 8, stride) for stride in (1, 2)})
    show("OPS_16C_4PX", {stride: op_table(16, 4, stride) for stride in (1, 2)})


class _Args(types.SimpleNamespace):
    def __getattr__(self, name: str) -> bool:  # every flag not set below is off
        return False


def resource_penalty() -> None:
    section("test_resource_constraint_matches_the_authors_expected_cost")
    args = _Args(snas=True, dsnas=False, resource_efficient=True, method="discrete", separation="all",
                 resource_lambda=1e-4, temp=1.0, nsample=1, use_ckpt=False, ckpt_false_list="[]", loc_mean=1.0,
                 loc_std=0.01, init_channels=4, drop_path_prob=0.0, steps=4, multiplier=4)
    torch.manual_seed(0)
    net = model_search.Network(4, 10, 1, nn.CrossEntropyLoss(), args, 0, 1, 4, 4).double()
    alpha = (0.5 * torch.sin(0.8 * torch.arange(14 * 8, dtype=F64))).reshape(14, 8)  # the test's ``alpha_normal``
    net.normal_log_alpha = alpha.clone().requires_grad_()
    net.reduce_log_alpha = torch.zeros(14, 8, dtype=F64, requires_grad=True)
    net.train()
    _, _, penalty, _, _ = net(torch.zeros(2, 3, 8, 8, dtype=F64))
    show("PENALTY_NORMAL", float(penalty[28].detach()))
    cell = net.cells[0]
    show("EDGE0_COSTS", [(float(s), float(f), float(m)) for s, f, m in
                         zip(cell.op_size[0], cell.op_flops[0], cell.op_mac[0])])
    (grad,) = torch.autograd.grad(penalty[28], net.normal_log_alpha)
    show("PENALTY_GRAD_ROW2", grad[2])


if __name__ == "__main__":
    concrete_sample(concrete_inputs())
    temperature()
    resource_costs()
    resource_penalty()
