"""Runs DARTS-PT's selection (the authors' projection code) on small supernets with fixed weights and batches, in
float64 on the CPU, and prints every decision as JSON: ``tests/fixtures/darts_pt_selection.json``, the expected values
of ``tests/test_selection.py``.

Upstream: https://github.com/ruocwang/darts-pt, commit 4ec3149dea0d77efd8e4c118f578b454dad5e0ac:
``sota/cnn/model_search_darts_proj.py`` (``DartsNetworkProj``) with ``sota/cnn/projection.py`` (``project_op``,
``project_edge``), the decision sequence of ``pt_project`` (per round the normal cell, then the reduction cell; op
rounds for all 14 edges, then topology rounds for nodes 1-3), and ``nasbench201/search_model_darts_proj.py``
(``TinyNetworkDartsProj``) with ``nasbench201/projection.py`` (``pt_project`` itself, given no training batches, so
no fine-tuning happens between its decisions). The evaluation function is the authors' ``infer`` (train mode for the
projection, no gradients, loss and top-1 averaged over examples), written out here because their
``train_search.py`` parses its arguments at import (and their ``accuracy`` uses a ``view`` that current PyTorch
refuses: ``_top1`` is the same with ``reshape``). Their code calls ``.cuda()``; it is made a no-op.

    python tests/goldens/darts_pt_selection.py /path/to/darts-pt > tests/fixtures/darts_pt_selection.json

Inputs (the test builds the same ones): every parameter ``k`` (in registration order, which the two implementations
share) is ``0.5 · sin(0.7 · arange(n) + k)``; alphas and batches are the formulas below; the edge order is drawn
with ``np.random.seed(SEED)``.
"""
from __future__ import annotations

import json
import logging
import sys
import types
from argparse import Namespace

import numpy as np
import torch
import torch.nn as nn

SEED = 2
F64 = torch.float64


def fill(params) -> None:
    with torch.no_grad():
        for k, p in enumerate(params):
            p.copy_((torch.sin(torch.arange(p.numel(), dtype=F64) * 0.7 + k) * 0.5).reshape(p.shape))


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


def _top1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' ``utils.accuracy`` for k = 1 (``reshape`` where their ``view`` fails on current PyTorch)."""
    _, pred = output.topk(1, 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
    return correct[:1].reshape(-1).float().sum(0).mul_(100.0 / target.size(0))


def _infer(record: list, utils):
    """The authors' ``infer``; records (top-1 in percent, loss) of every projection evaluation."""

    def infer(queue, model, *args, log=True, _eval=True, eval=True, weights_dict=None, weights=None, **kwargs):
        objs, top1 = utils.AvgrageMeter(), utils.AvgrageMeter()
        training = not (_eval and eval)
        model.train() if training else model.eval()
        with torch.no_grad():
            for x, y in queue:
                if weights_dict is not None:
                    logits = model(x, weights_dict=weights_dict)
                elif weights is not None:
                    logits = model(x, weights=weights)
                else:
                    logits = model(x)
                loss = nn.functional.cross_entropy(logits, y)
                prec1 = _top1(logits, y)
                objs.update(float(loss), x.size(0))
                top1.update(float(prec1), x.size(0))
        if weights_dict is not None or weights is not None:
            record.append([float(top1.avg), float(objs.avg)])
        return top1.avg, objs.avg

    return infer


def cnn(space: str, crit: str) -> dict:
    from nasbench201 import utils
    from sota.cnn import projection
    from sota.cnn.model_search_darts_proj import DartsNetworkProj
    from sota.cnn.spaces import spaces_dict

    args = Namespace(learning_rate=0.025, momentum=0.9, weight_decay=3e-4, edge_decision="random",
                     proj_crit={"normal": crit, "reduce": crit})
    model = DartsNetworkProj(4, 10, 3, nn.CrossEntropyLoss(), spaces_dict[space], args).double()
    fill(model.parameters())
    model.alphas_normal.data = alphas(model.num_edges, model.num_ops, 0.0)
    model.alphas_reduce.data = alphas(model.num_edges, model.num_ops, 0.9)
    queue, seen = batches(), []
    infer = _infer(seen, utils)
    np.random.seed(SEED)
    decisions = []
    for _ in range(model.num_edges):
        for cell in ("normal", "reduce"):
            seen.clear()
            eid, opid = projection.project_op(model, queue, args, infer, cell_type=cell)
            model.project_op(eid, opid, cell_type=cell)
            decisions.append({"kind": "op", "cell": cell, "edge": int(eid), "choice": int(opid),
                              "evaluations": list(seen)})
    for _ in model.nid2eids:
        for cell in ("normal", "reduce"):
            seen.clear()
            nid, eids = projection.project_edge(model, queue, args, infer, cell_type=cell)
            model.project_edge(nid, eids, cell_type=cell)
            decisions.append({"kind": "edge", "cell": cell, "node": int(nid) + 1, "kept": [int(e) for e in eids],
                              "evaluations": list(seen)})
    genotype = model.genotype()
    return {"space": space, "criterion": crit, "decisions": decisions,
            "genotype": {"normal": [list(e) for e in genotype.normal], "reduce": [list(e) for e in genotype.reduce]}}


def nb201(crit: str) -> dict:
    sys.modules["nas_201_api"] = types.SimpleNamespace(NASBench201API=None)  # their lookup, not used (args.fast)
    from nasbench201 import projection, utils
    from nasbench201.cell_operations import NAS_BENCH_201
    from nasbench201.search_model_darts_proj import TinyNetworkDartsProj

    args = Namespace(learning_rate=0.025, momentum=0.9, weight_decay=3e-4, edge_decision="random", proj_crit=crit,
                     proj_intv=2, fast=True, report_freq=50, grad_clip=5)
    model = TinyNetworkDartsProj(4, 1, 4, 10, nn.CrossEntropyLoss(), NAS_BENCH_201, args).double()
    fill(model.parameters())  # the arch tensor is no registered parameter
    model._arch_parameters.data = alphas(6, 5, 0.4)
    model.proj_weights = torch.zeros_like(model._arch_parameters)
    queue, seen = batches(), []
    infer = _infer(seen, utils)
    decisions = []
    original = model.project_op

    def project_op(eid, opid):  # record each decision with the evaluations that led to it
        decisions.append({"kind": "op", "cell": "cell", "edge": int(eid), "choice": int(opid),
                          "evaluations": list(seen)})
        seen.clear()
        original(eid, opid)

    model.project_op = project_op
    np.random.seed(SEED)
    # no training batches: no fine-tuning between the decisions; proj_intv 2 gives the 6 decisions at epochs 0-8, 9
    projection.pt_project([], queue, model, None, nn.CrossEntropyLoss(), model.optimizer, 0, args, infer, None)
    return {"space": "nb201", "criterion": crit, "decisions": decisions, "genotype": model.genotype().tostr()}


def main(checkout: str) -> None:
    sys.path.insert(0, checkout)
    _no_cuda()
    logging.disable(logging.CRITICAL)
    torch.set_default_dtype(F64)  # alphas and masks the authors create with torch.zeros/ones in float64 too
    out = {"seed": SEED, "runs": [cnn("s3", "acc"), cnn("s1", "loss"), nb201("loss")]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
