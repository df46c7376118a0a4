"""FairDARTS expected values of tests/test_variants.py, from the authors' code.

Upstream: xiaomi-automl/FairDARTS, commit 270cfc94ef4bf851f359ab5caf741f23316ea7c9, files
``fairdarts/separate_loss.py`` (``ConvSeparateLoss``, ``TriSeparateLoss``), ``fairdarts/utils.py`` (``parse`` with
``parse_method='threshold_sparse'``) and ``fairdarts/model.py`` (``DCOCell``, the cell that trains a parsed genotype).

Run: ``python tests/goldens/fair_darts.py /path/to/FairDARTS`` (float64, CPU). Prints, for

- ``test_fair_darts_zero_one_loss_matches_the_authors_code``: the zero-one term ``weight · loss2`` of
  ``ConvSeparateLoss(weight=10)`` on ``sigmoid(cat(alpha_normal, alpha_reduce))`` (as ``train_search.py`` builds its
  ``aux_input``), its gradient rows (normal row 0, normal [13, 6], reduce row 0), and ``loss2`` of
  ``TriSeparateLoss`` (the L1 form, weight 1);
- ``test_fair_darts_threshold_derivation_matches_threshold_sparse``: the authors' ``(op, to, from)`` triplets of
  ``parse(w, PRIMITIVES, 0.85, 'threshold_sparse', 4)`` and the nodes ``DCOCell`` concatenates for them.

Stubbed: ``Tensor.cuda`` returns the tensor itself (the losses move their 0.5 target to the GPU). The losses also
return the cross-entropy of their first input; it is given fixed logits and subtracted (it does not depend on the
alphas). The test holds a dropped edge as ``("none", j)`` where the authors leave the triplet out; the kept pairs are
what compares.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from _upstream import F64, checkout, on_path, section, show

ROOT = checkout("fairdarts/separate_loss.py")
on_path(ROOT / "fairdarts")
torch.Tensor.cuda = lambda self, *args, **kwargs: self  # stub: CPU only
warnings.filterwarnings("ignore", message="Using a target size")  # their 0-dim 0.5 target, broadcast as intended

from genotypes import PRIMITIVES, Genotype  # noqa: E402
from model import DCOCell  # noqa: E402
from separate_loss import ConvSeparateLoss, TriSeparateLoss  # noqa: E402
from utils import parse  # noqa: E402


def zero_one_loss() -> None:
    section("test_fair_darts_zero_one_loss_matches_the_authors_code")
    alpha_n = torch.linspace(-3.0, 3.0, 98, dtype=F64).reshape(14, 7).requires_grad_()
    alpha_r = torch.linspace(2.0, -2.5, 98, dtype=F64).reshape(14, 7).requires_grad_()
    aux_input = torch.cat([F.sigmoid(alpha_n), F.sigmoid(alpha_r)], dim=0)
    logits, target = torch.zeros(1, 3, dtype=F64), torch.tensor([0])
    total, loss1, _ = ConvSeparateLoss(weight=10.0)(logits, target, aux_input)
    show("loss", float(total.detach()) - loss1)
    grad_n, grad_r = torch.autograd.grad(total, [alpha_n, alpha_r])
    show("grad_n_0", grad_n[0], 13)
    show("grad_n_13_6", grad_n[13, 6], 13)
    show("grad_r_0", grad_r[0], 13)
    _, _, loss2 = TriSeparateLoss(weight=1.0)(logits, target, aux_input.detach())
    show("l1_penalty", loss2)


def threshold_sparse() -> None:
    section("test_fair_darts_threshold_derivation_matches_threshold_sparse")
    w = torch.full((14, 7), 0.05, dtype=F64)
    w[0, 3], w[0, 4], w[1, 6] = 0.95, 0.90, 0.86
    w[2, 0], w[3, 2], w[4, 5] = 0.91, 0.97, 0.88
    w[5, 3], w[6, 4], w[7, 1], w[8, 2] = 0.84, 0.70, 0.60, 0.849
    w[9, 3], w[12, 4] = 0.99, 0.50
    assert PRIMITIVES == ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                          "dil_conv_3x3", "dil_conv_5x5"]  # the test's SEVEN_OPS
    gene = parse(w.numpy(), PRIMITIVES, 0.85, "threshold_sparse", 4)
    show("triplets", gene)
    cell = DCOCell(Genotype(gene, None, gene, None), 4, 4, 4, False, False)
    show("normal_concat", [int(node) for node in cell._ops])


if __name__ == "__main__":
    zero_one_loss()
    threshold_sparse()
