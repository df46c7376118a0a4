"""Runs RobustDARTS's Hessian analysis and its DARTS-ES / DARTS-ADA bookkeeping on fixed inputs, in float64 on the CPU,
and prints the expected values of ``tests/test_curvature.py`` and ``tests/test_darts_es.py``.

Upstream: https://github.com/automl/RobustDARTS, commit 3dec3fedaa1770614bbfd4b98f5299d946ea7ac6:

* ``src/search/analyze.py``: ``Analyzer.compute_Hw`` (the explicit Hessian of the loss of one validation batch with
  respect to ``[alphas_normal, alphas_reduce]``, plus ``arch_weight_decay · I``) on ``src/search/model_search.py``'s
  ``Network`` in training mode, built with ``src/spaces.py``'s S3 and S1; the dominant eigenvalue as
  ``train_search.py`` takes it, ``max(numpy.linalg.eigvals(H))``. Their code calls ``.cuda()``; it is made a no-op.
* ``src/utils.py``: ``EVLocalAvg`` (``update``, ``early_stop``), driven as ``train_search.py``'s ``train`` drives it
  (an eigenvalue at every ``report_freq_hessian``-th epoch and at the last one; ``early_stop`` after each one except
  at the last epoch; with ``--early_stop 1`` the search ends at the first stop), on fixed eigenvalue sequences.
* ``src/search/train_search.py``: the end condition of DARTS-ADA, ``final_iteration``, the expression of their
  ``train_epochs`` evaluated as written for a sequence of weight decays raised by ``--mul_factor``.

    python tests/goldens/robust_darts_curvature.py /path/to/RobustDARTS

Inputs (the tests build the same ones): every weight ``k`` of the supernet (in registration order, which the two
implementations share) is ``0.5 · sin(0.7 · arange(n) + k)``; alphas and batches are the formulas below (those of
``tests/test_selection.py``); the eigenvalue sequences are ``SEQUENCES``.
"""
from __future__ import annotations

import ast
import re
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from _upstream import F64, checkout, fill_sin, section, show

SEQUENCES = {
    # name: (eigenvalue at epoch e, epochs, report_freq_hessian, window, delta, factor, es_start_epoch)
    "authors_settings": ([0.1 + 0.002 * e + (0.05 * (e - 24) if e > 24 else 0.0) for e in range(50)], 50, 2, 5, 4,
                         1.3, 10),
    "every_epoch": ([0.2 + 0.01 * np.sin(e) + (0.03 * (e - 14) if e > 14 else 0.0) for e in range(30)], 30, 1, 5, 4,
                    1.3, 10),
    "even_window": ([0.3 + 0.02 * np.cos(0.7 * e) + (0.08 * (e - 12) if e > 12 else 0.0) for e in range(30)], 30, 1,
                    4, 2, 1.2, 5),
    "window_three": ([1.0 + 0.1 * np.sin(1.3 * e) + (0.2 * (e - 9) if e > 9 else 0.0) for e in range(24)], 24, 3, 3,
                     2, 1.1, 4),
    "never": ([0.5 + 0.01 * np.sin(e) for e in range(40)], 40, 2, 5, 4, 1.3, 10),
}


def alphas(edges: int, ops: int, phase: float) -> torch.Tensor:
    e = torch.arange(edges, dtype=F64)[:, None]
    o = torch.arange(ops, dtype=F64)[None, :]
    return 0.8 * torch.sin(1.3 * e + 0.7 * o + phase)


def batches(num: int = 2, size: int = 16, side: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for b in range(num):
        i = torch.arange(size * 3 * side * side, dtype=F64) + 1000 * b
        x = (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i + b)).reshape(size, 3, side, side)
        y = (torch.arange(size) * 7 + 3 * b) % 10
        out.append((x, y))
    return out


def _no_cuda() -> None:
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self


def hessians(space: str) -> None:
    from src.search.analyze import Analyzer
    from src.search.model_search import Network
    from src.spaces import spaces_dict

    model = Network(4, 10, 3, nn.CrossEntropyLoss(), spaces_dict[space]).double()
    fill_sin(model.parameters())  # the alphas are no registered parameters
    model.alphas_normal.data = alphas(14, model.alphas_normal.shape[1], 0.0)
    model.alphas_reduce.data = alphas(14, model.alphas_reduce.shape[1], 0.9)
    model.train()
    analyzer = Analyzer(Namespace(momentum=0.9, weight_decay=3e-4, arch_weight_decay=1e-3), model)
    per_batch = []
    for x, y in batches():
        per_batch.append(analyzer.compute_Hw(None, None, x, y, 0.025, None, False).detach().clone())
    first, mean = per_batch[0], sum(per_batch) / len(per_batch)
    section(f"test_hessian_equals_the_authors_analyzer[{space}]")
    show("SHAPES", [list(p.shape) for p in model.parameters()])
    show("MAX_EIG", float(max(np.linalg.eigvals(first.numpy()).real)))
    show("MIN_EIG", float(min(np.linalg.eigvals(first.numpy()).real)))
    show("TRACE", float(first.trace()))
    show("FROBENIUS", float(first.norm()))
    show("ROW0", first[0, :8])
    show("DIAG", first.diagonal()[-8:])
    show("MEAN_MAX_EIG", float(max(np.linalg.eigvals(mean.numpy()).real)))
    show("MEAN_TRACE", float(mean.trace()))


def early_stops() -> None:
    from src.utils import EVLocalAvg

    section("test_rule_equals_the_authors_ev_local_avg")
    out = {}
    for name, (values, epochs, freq, window, delta, factor, start) in SEQUENCES.items():
        tracker = EVLocalAvg(window, freq, epochs)
        stops = []  # [epoch checked, stop_epoch, the epoch of stop_genotype] of every check that says stop
        for epoch in range(epochs):
            if epoch % freq == 0 or epoch == epochs - 1:
                tracker.update(epoch, float(values[epoch]), epoch)  # the "genotype" is the epoch, to see which one
                if epoch != epochs - 1:
                    tracker.early_stop(epoch, factor, start, delta)
                    if tracker.stop_search:
                        stops.append([epoch, int(tracker.stop_epoch), int(tracker.stop_genotype)])
                    tracker.stop_search = False
        out[name] = {"stops": stops, "local_averages": [float(v) for v in tracker.ev_local_avg]}
    show("AUTHORS_RULE", out)


def final_iteration_expression(root: Path) -> ast.expr:
    """The right-hand side of ``final_iteration = ...`` in ``train_search.py`` (the file as a whole is Python 2-era
    syntax that current Python does not parse: ``.cuda(async=True)``; the assignment alone is parsed)."""
    text = (root / "src" / "search" / "train_search.py").read_text()
    match = re.search(r"final_iteration = (.*?== 1\.)", text, re.S)
    if match is None:
        raise SystemExit("train_search.py assigns no final_iteration: the file differs from the named commit")
    return ast.parse(" ".join(match.group(1).split()), mode="eval").body


def ada_end_condition(root: Path) -> None:
    section("test_ada_end_condition_equals_the_authors")
    code = compile(ast.Expression(final_iteration_expression(root)), "<upstream>", "eval")
    out = {}
    for start, mul, maximum in ((3e-4, 10.0, 0.03), (3e-4, 3.0, 243e-4), (1e-3, 10.0, 0.1)):
        levels, flags, wd = [], [], start
        while wd < 1 and len(levels) < 6:  # log(1) = 0 would divide by zero in their expression
            args = Namespace(max_weight_decay=maximum, weight_decay=wd)
            levels.append(wd)
            flags.append(bool(eval(code, {"np": np, "args": args, "round": round})))
            wd *= mul
        out[f"{start}_{mul}_{maximum}"] = {"levels": levels, "final": flags}
    show("AUTHORS_FINAL", out)


def main() -> None:
    root = checkout("src/search/analyze.py")
    sys.path.insert(0, str(root))
    _no_cuda()
    hessians("s3")
    hessians("s1")
    early_stops()
    ada_end_condition(root)


if __name__ == "__main__":
    main()
