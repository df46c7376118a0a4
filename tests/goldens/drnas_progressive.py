"""DrNAS progressive-learning expected values of tests/test_drnas_progressive.py, from the authors' code.

Upstream: xiangning-chen/DrNAS, commit f2caa4dbdd96c1be29b56cb7ed47a74a184e6ef0, files ``utils.py`` (``prune``,
``process_step_matrix`` with a mask), ``DARTS-space/model_search.py`` (``Network.pruning``, ``Network.wider``,
``Network.forward``, ``Network.genotype``), ``DARTS-space/operations.py`` (the ops' ``wider``) and ``net2wider.py``
(``InChannelWider``, ``OutChannelWider``, ``BNWider``), as ``DARTS-space/train_search.py`` calls them between its two
stages (``model.pruning(num_keeps[1]); model.wider(ks[1])``).

Run: ``python tests/goldens/drnas_progressive.py /path/to/DrNAS`` (float64, CPU). Prints, for

- ``test_pruning_keeps_the_authors_ops``: ``prune(alphas, 4, None)`` on the test's stage-1 alphas (rows with ties
  included): the ops each edge keeps (``KEPT_1``) and the alphas after it (``PRUNED_ROW``: rows 0, 5, 6); then
  ``prune(pruned, 2, mask)`` as a third stage would (``KEPT_2``);
- ``test_masked_dirichlet_sample_is_the_authors``: after ``torch.manual_seed(0)``,
  ``process_step_matrix(alphas, 'dirichlet', mask)`` rows 0 and 1 (``MASKED_SAMPLE``) and the gradient of
  ``sum(c · w)`` on row 0 (``MASKED_GRAD``);
- ``test_widening_is_the_authors``: ``Network(12, 10, 3, k=6)`` with every tensor of its state dict filled (``fill``),
  then ``torch.manual_seed(5); net.wider(4)``: per edge (cells in order, edges in order) a fingerprint of every
  tensor of its ops, ``sum over tensors of (t.flatten() · sin(arange + 0.1 · k)).sum()`` (``WIDENED``);
- ``test_momentum_and_schedule_carry_over_are_the_authors``: SGD momentum buffers filled (buffer of parameter ``k``
  := ``0.3 · cos(0.9 · i + k)``), ``torch.manual_seed(5); net.wider(4)``, a new SGD and ``configure_optimizer``: per
  edge a fingerprint of the new momentum buffers of its ops (``MOMENTUM``); and the learning rate the SGD runs each
  epoch of stage 2 after ``configure_scheduler`` (25 + 25 epochs, the first stage's cosine stepped 25 times), epochs
  25, 26, 27, 37 and 49 (``STAGE2_LR``);
- ``test_stage_two_supernet_is_the_authors``: that widened network after ``net.pruning(4)`` on the test's alphas
  (done before ``wider``, as their script), ``torch.manual_seed(1)``, ``net(inputs(2, 3, 16, 16))`` in training mode
  (``STAGE2_LOGITS``), and ``net.genotype()`` (``STAGE2_NORMAL``, ``STAGE2_REDUCE``).

Stubbed: ``Tensor.cuda`` returns the tensor itself. ``configure_optimizer`` reads the old optimizer's state by
``optimizer.state_dict()['state'][id(weight)]``: the PyTorch releases the authors ran keyed a state dict by parameter
ids (later ones by position), so the old optimizer is handed to it behind a stand-in whose ``state_dict()`` keys the
state by ids, as those releases did. The network is built with float64 as the default dtype (its
alphas and Dirichlet anchors too); its alphas are then replaced by the test's.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from _upstream import F64, checkout, on_path, section, show

ROOT = checkout("DARTS-space/model_search.py")
on_path(ROOT)
on_path(ROOT / "DARTS-space")
torch.Tensor.cuda = lambda self, *args, **kwargs: self  # stub: CPU only

from model_search import Network  # noqa: E402
from net2wider import configure_optimizer, configure_scheduler  # noqa: E402
from utils import process_step_matrix, prune  # noqa: E402


def stage1_alphas() -> tuple[torch.Tensor, torch.Tensor]:
    """tests/test_drnas_progressive.py ``stage1_alphas``."""
    e = torch.arange(14, dtype=F64)[:, None]
    o = torch.arange(7, dtype=F64)[None, :]
    normal = torch.sin(1.3 * e + 0.7 * o)
    normal[5] = torch.tensor([0.2, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5])  # five equal for four places
    normal[6] = 0.25  # all equal
    reduce = torch.cos(0.6 * e - 1.1 * o + 0.25)
    return normal, reduce


def fill(module: nn.Module) -> None:
    """tests/test_drnas_progressive.py ``fill``: floating tensor ``k`` of the state dict := ``0.5 · sin(0.7 · i + k)``
    (running variances ``1 + 0.5 · sin(...)``)."""
    with torch.no_grad():
        k = 0
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            values = torch.sin(torch.arange(t.numel(), dtype=F64) * 0.7 + k).reshape(t.shape) * 0.5
            t.copy_(values + 1 if name.endswith("running_var") else values)
            k += 1


def fingerprint(tensors: list[torch.Tensor]) -> float:
    """tests/test_drnas_progressive.py ``fingerprint``."""
    total = 0.0
    for k, t in enumerate(tensors):
        flat = t.detach().to(F64).flatten()
        total += float((flat * torch.sin(torch.arange(flat.numel(), dtype=F64) + 0.1 * k)).sum())
    return total


def inputs(*shape: int) -> torch.Tensor:
    i = torch.arange(int(np.prod(shape)), dtype=F64)
    return (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i)).reshape(shape)


def build() -> Network:
    torch.set_default_dtype(F64)
    try:
        return Network(12, 10, 3, nn.CrossEntropyLoss(), k=6, reg_type="kl")
    finally:
        torch.set_default_dtype(torch.float32)


def pruning() -> None:
    section("test_pruning_keeps_the_authors_ops")
    normal, _ = stage1_alphas()
    x = normal.clone()
    mask = prune(x, 4, None)
    show("KEPT_1", [torch.nonzero(row).flatten().tolist() for row in mask])
    show("PRUNED_ROW", {e: x[e] for e in (0, 5, 6)}, 15)
    x[0, 0] += 3.0  # a pruned op whose alpha grew stays pruned
    mask2 = prune(x, 2, mask)
    show("KEPT_2", [torch.nonzero(row).flatten().tolist() for row in mask2])


def masked_sample() -> None:
    section("test_masked_dirichlet_sample_is_the_authors")
    normal, _ = stage1_alphas()
    mask = prune(normal.clone(), 4, None)
    alphas = normal.clone().requires_grad_()
    torch.manual_seed(0)
    w = process_step_matrix(alphas, "dirichlet", mask)
    show("MASKED_SAMPLE", {0: w[0], 1: w[1]}, 13)
    c = torch.arange(7, dtype=F64) + 1
    (grad,) = torch.autograd.grad((c * w[0]).sum(), [alphas])
    show("MASKED_GRAD", grad[0], 13)


def widening() -> None:
    section("test_widening_is_the_authors")
    net = build()
    fill(net)
    torch.manual_seed(5)
    net.wider(4)
    prints = []
    for cell in net.cells:
        for mixed in cell._ops:
            prints.append(fingerprint(list(mixed._ops.state_dict().values())))
    show("WIDENED", prints, 13)


class IdKeyedState:
    """The old optimizer as ``configure_optimizer`` expects it: ``state`` by parameter, ``state_dict()['state']`` by
    parameter id."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.state = optimizer.state

    def state_dict(self) -> dict:
        return {"state": {id(p): value for p, value in self.state.items()}}


def momentum_and_schedule() -> None:
    section("test_momentum_and_schedule_carry_over_are_the_authors")
    net = build()
    fill(net)
    old = torch.optim.SGD(net.parameters(), 0.1, momentum=0.9, weight_decay=3e-4)
    for k, p in enumerate(net.parameters()):
        old.state[p]["momentum_buffer"] = (torch.cos(torch.arange(p.numel(), dtype=F64) * 0.9 + k) * 0.3).reshape(
            p.shape)
    torch.manual_seed(5)
    net.wider(4)
    new = configure_optimizer(IdKeyedState(old), torch.optim.SGD(net.parameters(), 0.1, momentum=0.9,
                                                                  weight_decay=3e-4))
    prints = []
    for cell in net.cells:
        for mixed in cell._ops:
            prints.append(fingerprint([new.state[p]["momentum_buffer"] for p in mixed._ops.parameters()]))
    show("MOMENTUM", prints, 13)

    train_epochs = [25, 25]  # train_search.py: one cosine over both stages
    first = torch.optim.SGD([nn.Parameter(torch.zeros(1))], 0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(first, float(sum(train_epochs)), eta_min=0.0)
    for _ in range(train_epochs[0]):
        first.step()
        scheduler.step()
    second = torch.optim.SGD([nn.Parameter(torch.zeros(1))], 0.1, momentum=0.9)
    scheduler = configure_scheduler(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR(
        second, float(sum(train_epochs)), eta_min=0.0))
    rates = {}
    for epoch in range(train_epochs[0], sum(train_epochs)):
        rates[epoch] = second.param_groups[0]["lr"]
        second.step()
        scheduler.step()
    show("STAGE2_LR", {e: rates[e] for e in (25, 26, 27, 37, 49)}, 15)


def stage_two() -> None:
    section("test_stage_two_supernet_is_the_authors")
    net = build()
    fill(net)
    normal, reduce = stage1_alphas()
    with torch.no_grad():
        net.alphas_normal.copy_(normal)
        net.alphas_reduce.copy_(reduce)
    net.pruning(4)
    torch.manual_seed(5)
    net.wider(4)
    net.train()
    torch.manual_seed(1)
    with torch.no_grad():
        logits = net(inputs(2, 3, 16, 16))
    show("STAGE2_LOGITS", logits, 13)
    gene = net.genotype()
    show("STAGE2_NORMAL", gene.normal)
    show("STAGE2_REDUCE", gene.reduce)


if __name__ == "__main__":
    pruning()
    masked_sample()
    widening()
    momentum_and_schedule()
    stage_two()
