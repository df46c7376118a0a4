"""DARTS- expected values of tests/test_variants.py, from the authors' code.

Upstream: Meituan-AutoML/DARTS-, commit adb81a8313b17d1a87593a53b0e802fc4199e9b1, files
``src/search/model_search.py`` (``MixedOp`` with ``--auxiliary_skip``: ``Identity`` on stride-1 edges,
``FactorizedReduce(C, C, affine=False)`` on stride-2 edges, scaled by ``beta_decay_scheduler.decay_rate``),
``src/utils.py`` (``DecayScheduler``) and ``src/search/args.py`` (the command line, and the scheduler built from it).

Run: ``python tests/goldens/darts_minus.py /path/to/DARTS-`` (float64, CPU). Prints, for

- ``test_darts_minus_auxiliary_skip_matches_the_authors_mixed_op``: the first and last output of the stride-1
  edge for the beta of epochs 0, 25 and 49 (1.0, 0.5, 0.02), and d sum(out) / d alpha (the same for every beta);
- ``test_darts_minus_stride_two_auxiliary_is_a_factorized_reduce``: the output of the stride-2 edge with the
  test's 1×1 convolution weights and beta 0.8 (``--skip_beta 0.8``, epoch 0);
- ``test_darts_minus_beta_decays_as_the_authors_schedule``: ``decay_rate`` after ``step(epoch)`` for epochs
  0, 1, 25, 49.

How the test's inputs reach the authors' code: their modules parse the command line when imported; they are given
the one of ``scripts/run_darts_minus.sh`` (``--auxiliary_skip --decay linear``, ``--skip_beta 1``) with ``--save``
in a temporary folder (their parser creates it and writes ``config.yaml`` there), and what their parser prints is
kept out of the output. The edges' candidate ops are replaced by the test's functions; the edge weights are
``softmax(alpha)``, as their cell passes them.
"""
from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import sys
import tempfile

import torch
import torch.nn as nn
from _upstream import F64, Fn, checkout, on_path, section, show

ROOT = checkout("src/search/model_search.py")
on_path(ROOT)
SAVE = tempfile.mkdtemp(prefix="darts_minus_golden_")
atexit.register(shutil.rmtree, SAVE, ignore_errors=True)
sys.argv = [sys.argv[0], "--auxiliary_skip", "--decay", "linear", "--skip_beta", "1", "--save", SAVE]
with contextlib.redirect_stdout(io.StringIO()):
    from src.search.model_search import MixedOp, beta_decay_scheduler

ALPHA = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64)
OPS = ["max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3"]  # built, then replaced by the test's functions


def stride_one() -> None:
    section("test_darts_minus_auxiliary_skip_matches_the_authors_mixed_op")
    mixed = MixedOp(2, 1, OPS).double()
    mixed._ops = nn.ModuleList(Fn(fn) for fn in [lambda x: 0 * x, lambda x: x, lambda x: 2 * x, lambda x: x ** 2])
    x = torch.linspace(-1, 1, 32, dtype=F64).reshape(1, 2, 4, 4)
    rows, grads = [], []
    for epoch in (0, 25, 49):
        beta_decay_scheduler.step(epoch)
        alpha = ALPHA.clone().requires_grad_()
        out = mixed(x, torch.softmax(alpha, -1))
        flat = out.detach().flatten()
        rows.append((beta_decay_scheduler.decay_rate, float(flat[0]), float(flat[-1])))
        grads.append(torch.autograd.grad(out.sum(), alpha)[0])
    show("beta_first_last", rows, 12)
    assert all(torch.equal(g, grads[0]) for g in grads)
    show("grad", grads[0], 12)


def stride_two() -> None:
    section("test_darts_minus_stride_two_auxiliary_is_a_factorized_reduce")
    beta_decay_scheduler.base_lr = 0.8
    beta_decay_scheduler.step(0)
    mixed = MixedOp(2, 2, OPS).double()
    mixed._ops = nn.ModuleList(Fn(fn) for fn in [lambda x: 0 * x[:, :, ::2, ::2], lambda x: x[:, :, ::2, ::2],
                                                 lambda x: 2 * x[:, :, ::2, ::2], lambda x: x[:, :, ::2, ::2] ** 2])
    with torch.no_grad():
        mixed.auxiliary_op.conv_1.weight.copy_(torch.tensor([[[[0.5]], [[-0.25]]]]))
        mixed.auxiliary_op.conv_2.weight.copy_(torch.tensor([[[[0.75]], [[1.5]]]]))
    x = torch.linspace(-1, 1, 64, dtype=F64).reshape(2, 2, 4, 4)
    out = mixed(x, torch.softmax(ALPHA, -1))
    show("beta", beta_decay_scheduler.decay_rate)
    show("expected", out.detach().flatten(), 12)
    beta_decay_scheduler.base_lr = 1.0


def schedule() -> None:
    section("test_darts_minus_beta_decays_as_the_authors_schedule")
    rates = []
    for epoch in (0, 1, 25, 49):
        beta_decay_scheduler.step(epoch)
        rates.append(round(beta_decay_scheduler.decay_rate, 12))
    show("beta", rates)


if __name__ == "__main__":
    stride_one()
    stride_two()
    schedule()
