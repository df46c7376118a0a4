"""DARTS expected values of tests/test_networks_cnn.py and tests/test_train_rnn.py, and a check of the reference that
tests/test_strategies.py compares the second-order step with, from the authors' code.

Upstream: quark0/darts, commit f276dd346a09ae3160f8e3aca5c7b193fda1da37, files ``cnn/model.py`` (``NetworkCIFAR``,
``NetworkImageNet``), ``cnn/utils.py`` (``count_parameters_in_MB``, what ``cnn/train.py`` logs as "param size"),
``cnn/genotypes.py`` / ``rnn/genotypes.py`` (``DARTS_V2``), ``rnn/model.py`` (``RNNModel`` with ``DARTSCell``; its
parameter count as ``rnn/train.py`` logs it), ``cnn/model_search.py`` (``Network``) and ``cnn/architect.py``
(``Architect._backward_step_unrolled``, Eq. 7-8).

Run: ``python tests/goldens/darts.py /path/to/darts`` (CPU). Prints, for

- the published cells of ``darts_pl/genotypes.py`` (``DARTS_V1``, ``DARTS_V2``, ``RNN_DARTS_V1``, ``RNN_DARTS_V2``,
  which tests/test_genotypes.py and the parameter counts below use): the authors' ``genotypes.py`` entries;
- ``test_cifar_parameter_count_matches_paper``: ``NetworkCIFAR(36, 10, 20, True, DARTS_V2)``: the count without the
  auxiliary head (``count_parameters_in_MB`` · 1e6) and with it;
- ``test_imagenet_parameter_count_matches_paper``: the same for ``NetworkImageNet(48, 1000, 14, True, DARTS_V2)``;
- ``test_parameter_counts_match_the_paper`` (tests/test_train_rnn.py): ``RNNModel(V, E, E, E, genotype=DARTS_V2)``
  for PTB (10000 tokens, 850) and WikiText-2 (33278 tokens, 700, their README's command);
- ``test_second_order_equals_reference_step_by_step_on_the_supernet`` (tests/test_strategies.py): that test holds no
  numbers; it compares the project with ``reference_darts.py`` (``shared/bench`` beside the repository, or the file
  named by ``DARTS_PL_REFERENCE``) on the fly. Here the reference's ``unrolled_alpha_grad`` is compared with the
  authors' ``Architect._backward_step_unrolled`` on the same supernet (C=4, 3 cells, float64; weights, alphas and
  momentum buffers copied from the reference's network) and the relative difference of each alpha gradient is
  printed (skipped when the reference file is absent).

Stubbed: ``Tensor.cuda`` and ``Module.cuda`` return their object (the authors' search code moves everything to the
GPU); ``count_parameters_in_MB`` sees a ``numpy`` whose ``sum`` of a generator is the builtin ``sum``, as in the
numpy it was written for (numpy 2 raises). Their ``Cell`` prints its channel counts; that is kept out of the output.
The second-order check runs with float64 as the default dtype, so the virtual network their ``Architect``
builds with ``Network.new()`` is float64 too. Their ``Tensor.sub(eta, t)`` / ``add_(R, v)`` calls use an overload
that PyTorch deprecates; its warnings are silenced.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import os
import sys
import types
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
from _upstream import F64, checkout, on_path, section, show

ROOT = checkout("cnn/architect.py")
REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get("DARTS_PL_REFERENCE", REPO.parent / "shared" / "bench" / "reference_darts.py"))
torch.Tensor.cuda = lambda self, *args, **kwargs: self  # stub: CPU only
nn.Module.cuda = lambda self, *args, **kwargs: self
warnings.filterwarnings("ignore", message="This overload of")


def use(folder: str) -> None:
    """Import the authors' ``folder`` (cnn or rnn: both hold modules named model, genotypes, utils)."""
    for name in ("model", "model_search", "genotypes", "utils", "operations", "architect"):
        sys.modules.pop(name, None)
    sys.path[:] = [p for p in sys.path if not p.startswith(str(ROOT))]
    on_path(ROOT / folder)


class OldNumpy:
    """``numpy`` as the authors ran it: ``np.sum`` of a generator is the builtin ``sum`` (numpy 2 refuses it)."""

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)

    @staticmethod
    def sum(values: object, *args: object, **kwargs: object) -> object:
        return builtins.sum(values) if isinstance(values, types.GeneratorType) else np.sum(values, *args, **kwargs)


def cnn_counts() -> None:
    use("cnn")
    import genotypes
    import utils
    from model import NetworkCIFAR, NetworkImageNet

    utils.np = OldNumpy()
    with contextlib.redirect_stdout(io.StringIO()):  # their Cell prints its channel counts
        nets = {"test_cifar_parameter_count_matches_paper": NetworkCIFAR(36, 10, 20, True, genotypes.DARTS_V2),
                "test_imagenet_parameter_count_matches_paper": NetworkImageNet(48, 1000, 14, True, genotypes.DARTS_V2)}
    for test, net in nets.items():
        section(test)
        show("param_size_MB", float(utils.count_parameters_in_MB(net)), 0)
        show("without_auxiliary", round(float(utils.count_parameters_in_MB(net)) * 1e6))
        show("with_auxiliary", sum(p.numel() for p in net.parameters()))


def published_genotypes() -> None:
    section("darts_pl/genotypes.py: DARTS_V1, DARTS_V2, RNN_DARTS_V1, RNN_DARTS_V2 (tests/test_genotypes.py)")
    use("cnn")
    import genotypes

    for name in ("DARTS_V1", "DARTS_V2"):
        g = getattr(genotypes, name)
        show(name, {"normal": g.normal, "normal_concat": list(g.normal_concat), "reduce": g.reduce,
                    "reduce_concat": list(g.reduce_concat)})
    use("rnn")
    import genotypes

    for name in ("DARTS_V1", "DARTS_V2"):
        g = getattr(genotypes, name)
        show(f"RNN_{name}", {"recurrent": g.recurrent, "concat": list(g.concat)})


def rnn_counts() -> None:
    section("test_parameter_counts_match_the_paper")
    use("rnn")
    import genotypes
    import model

    counts = {}
    for tokens, size in ((10000, 850), (33278, 700)):
        net = model.RNNModel(tokens, size, size, size, genotype=genotypes.DARTS_V2)
        counts[(tokens, size)] = sum(x.data.nelement() for x in net.parameters())  # rnn/train.py's total_params
    show("counts", counts)


def reference_check() -> None:
    section("test_second_order_equals_reference_step_by_step_on_the_supernet")
    if not REFERENCE.is_file():
        print(f"# skipped: {REFERENCE} not found (set DARTS_PL_REFERENCE)")
        return
    on_path(REFERENCE.parent)
    import reference_darts

    use("cnn")
    from architect import Architect
    from model_search import Network

    torch.set_default_dtype(F64)
    try:
        torch.manual_seed(0)
        ref_net = reference_darts.SearchNet(C=4, num_classes=10, layers=3)
        theirs = Network(4, 10, 3, nn.CrossEntropyLoss())
        assert [p.shape for p in ref_net.parameters()] == [p.shape for p in theirs.parameters()]
        with torch.no_grad():
            for a, b in zip(theirs.parameters(), ref_net.parameters()):
                a.copy_(b)
            for a, b in zip(theirs.arch_parameters(), ref_net.alphas):
                a.copy_(b)
        ref = reference_darts.RefSearch(ref_net, lr=0.025, momentum=0.9, wd=3e-4)
        optimizer = torch.optim.SGD(theirs.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
        for a, b in zip(theirs.parameters(), ref_net.parameters()):
            buf = 0.1 * torch.randn_like(a)
            optimizer.state[a]["momentum_buffer"] = buf
            ref.w_opt.state[b]["momentum_buffer"] = buf.clone()
        g = torch.Generator().manual_seed(1)
        xt, yt = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)
        xv, yv = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)
        expected = ref.unrolled_alpha_grad(xt, yt, xv, yv)
        args = SimpleNamespace(momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3)
        Architect(theirs, args)._backward_step_unrolled(xt, yt, xv, yv, 0.025, optimizer)
        got = [a.grad for a in theirs.arch_parameters()]
    finally:
        torch.set_default_dtype(torch.float32)
    show("relative_difference", [float((a - b).norm() / a.norm()) for a, b in zip(got, expected)], 3)


if __name__ == "__main__":
    published_genotypes()
    cnn_counts()
    rnn_counts()
    reference_check()
