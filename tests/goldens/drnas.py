"""DrNAS expected values of tests/test_variants.py, from the authors' code.

Upstream: xiangning-chen/DrNAS, commit f2caa4dbdd96c1be29b56cb7ed47a74a184e6ef0, files ``utils.py``
(``process_step_matrix`` / ``process_step_vector``: ``'dirichlet'``, one ``Dirichlet(elu(alpha) + 1).rsample()`` per
row, and ``'softmax'``, what their ``genotype()`` parses) and ``DARTS-space/model_search.py`` (``Network._get_kl_reg``
with ``reg_type='kl'``).

Run: ``python tests/goldens/drnas.py /path/to/DrNAS`` (float64, CPU). Prints, for

- ``test_drnas_dirichlet_sample_matches_the_authors_code``: after ``torch.manual_seed(0)``, the sampled weights
  (normal row 0, reduce row 1), the loss ``sum(c · w_normal) + sum(c · w_reduce)`` with ``c = 1..7``, the alpha
  gradient (normal row 1, and the absolute sums of both), the softmax the authors derive from (normal row 0), and the
  mean of the Dirichlet their sampler draws from, ``(elu(alpha) + 1) / sum`` (normal row 13, first two columns:
  the project's ``probs="mean"``; their code logs the concentration and never normalises it);
- ``test_drnas_kl_regularizer_matches_the_authors_code``: ``_get_kl_reg()`` with ``reg_scale=1e-3`` on the test's
  alphas, its normal gradient row 0 and the sums of both gradients.

Stubbed: ``Tensor.cuda`` returns the tensor itself. The network (C=4, 3 layers) is built only to hold the alphas
and its uniform Dirichlet anchors; it is built with float64 as the default dtype, so its alphas and the anchors
``Dirichlet(ones_like(alphas))`` are float64, and its alphas are then replaced by the test's. (Built in float32, the
anchors' ``lgamma`` terms round in float32: the loss moves by 2e-9, 7e-8 relative, past the test's 1e-10; the
gradients do not depend on the anchors.)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from _upstream import F64, checkout, on_path, section, show

ROOT = checkout("DARTS-space/model_search.py")
on_path(ROOT)
on_path(ROOT / "DARTS-space")
torch.Tensor.cuda = lambda self, *args, **kwargs: self  # stub: CPU only

from model_search import Network  # noqa: E402
from utils import process_step_matrix  # noqa: E402


def drnas_alphas() -> tuple[torch.Tensor, torch.Tensor]:
    """tests/test_variants.py ``drnas_alphas``."""
    return (torch.linspace(-1.5, 1.5, 98, dtype=F64).reshape(14, 7),
            torch.linspace(1.2, -0.9, 98, dtype=F64).reshape(14, 7).flip(-1))


def dirichlet_sample() -> None:
    section("test_drnas_dirichlet_sample_matches_the_authors_code")
    alpha_n, alpha_r = (a.clone().requires_grad_() for a in drnas_alphas())
    torch.manual_seed(0)
    w_n = process_step_matrix(alpha_n, "dirichlet", None)  # normal first, as Network.forward
    w_r = process_step_matrix(alpha_r, "dirichlet", None)
    show("w_n_0", w_n[0], 12)
    show("w_r_1", w_r[1], 12)
    c = torch.arange(7, dtype=F64) + 1
    loss = (c * w_n).sum() + (c * w_r).sum()
    show("loss", float(loss.detach()), 12)
    grad_n, grad_r = torch.autograd.grad(loss, [alpha_n, alpha_r])
    show("grad_n_1", grad_n[1], 12)
    show("grad_n_abs_sum", float(grad_n.abs().sum()), 12)
    show("grad_r_abs_sum", float(grad_r.abs().sum()), 12)
    show("softmax_n_0", process_step_matrix(alpha_n.detach(), "softmax", None)[0], 12)
    concentration = F.elu(alpha_n.detach()) + 1
    show("mean_n_13_first_two", (concentration / concentration.sum(-1, keepdim=True))[13, :2], 12)


def kl_regularizer() -> None:
    section("test_drnas_kl_regularizer_matches_the_authors_code")
    torch.set_default_dtype(F64)  # their alphas, and the anchors made ones_like them, in float64
    try:
        net = Network(4, 10, 3, nn.CrossEntropyLoss(), reg_type="kl", reg_scale=1e-3)
    finally:
        torch.set_default_dtype(torch.float32)
    assert net.anchor_normal.concentration.dtype == F64
    alpha_n, alpha_r = (a.clone().requires_grad_() for a in drnas_alphas())
    net.alphas_normal, net.alphas_reduce = alpha_n, alpha_r
    loss = net._get_kl_reg()
    show("loss", float(loss.detach()), 12)
    grad_n, grad_r = torch.autograd.grad(loss, [alpha_n, alpha_r])
    show("grad_n_0", grad_n[0], 12)
    show("grad_n_sum", float(grad_n.sum()), 12)
    show("grad_r_sum", float(grad_r.sum()), 12)


if __name__ == "__main__":
    dirichlet_sample()
    kl_regularizer()
