"""β-DARTS expected values of tests/test_variants.py, from the authors' code.

Upstream: Sunshine-Ye/Beta-DARTS, commit f3077048c8cf1fef977496f8e46869cb07e73e30, file
``optimizers/darts/architect.py`` (``Architect.mlc_loss``, the Beta-Decay loss, and ``Architect._backward_step``,
whose ``weights = 0 + 50*epoch/100`` is the loss weight of each epoch).

Run: ``python tests/goldens/beta_darts.py /path/to/Beta-DARTS`` (float64, CPU). Prints, for

- ``test_beta_decay_matches_the_authors_mlc_loss``: ``mlc_loss`` of the normal and of the reduction alphas and
  their sum, the normal gradient row 0 of the sum, and the reduction gradient's largest distance from
  ``softmax(alpha_reduce) / 14`` (the test compares the whole gradient with that);
- ``test_beta_decay_weight_schedule_is_50_epoch_over_100``: the weight of epochs 0, 1, 10, 25, 49.

How the test's inputs reach the authors' code: ``_backward_step`` passes ``self.model._arch_parameters`` to
``mlc_loss``; in their NAS-Bench-201 model that is one tensor, in their DARTS-space models
(``sota/cnn/model_search.py``) a list ``[alphas_normal, alphas_reduce]``, which ``torch.logsumexp`` refuses
(``TypeError``), so the DARTS-space path does not run as published. The test's value is ``mlc_loss`` applied to each
cell type's tensor and summed; averaging the 28 rows of both cell types together instead would give half of it.
``mlc_loss`` does not use ``self`` and is called on the class.
"""
from __future__ import annotations

import ast

import torch
from _upstream import F64, assigned_value, checkout, evaluate, on_path, section, show

ROOT = checkout("optimizers/darts/architect.py")
on_path(ROOT)

from optimizers.darts.architect import Architect  # noqa: E402


def mlc_loss() -> None:
    section("test_beta_decay_matches_the_authors_mlc_loss")
    i = torch.arange(112, dtype=F64)
    normal = ((torch.linspace(-1.0, 1.0, 112, dtype=F64) + 0.3 * torch.cos(0.91 * i)).reshape(14, 8)).requires_grad_()
    reduce = (1.5 * torch.sin(0.37 * i)).reshape(14, 8).requires_grad_()
    loss_n, loss_r = Architect.mlc_loss(None, normal), Architect.mlc_loss(None, reduce)
    show("loss_normal", float(loss_n.detach()))
    show("loss_reduce", float(loss_r.detach()))
    loss = loss_n + loss_r
    show("loss", float(loss.detach()), 16)
    grad_n, grad_r = torch.autograd.grad(loss, [normal, reduce])
    show("grad_n_0", grad_n[0], 13)
    show("grad_r_minus_softmax_over_14", float((grad_r - torch.softmax(reduce.detach(), -1) / 14).abs().max()), 3)


def weight_schedule() -> None:
    section("test_beta_decay_weight_schedule_is_50_epoch_over_100")
    expression = assigned_value(ROOT / "optimizers/darts/architect.py", "weights", contains="epoch")
    print(f"# weights = {ast.unparse(expression)}")
    show("weights", [evaluate(expression, epoch=e) for e in (0, 1, 10, 25, 49)])


if __name__ == "__main__":
    mlc_loss()
    weight_schedule()
