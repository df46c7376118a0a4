"""ReinMax expected values of tests/test_samplers.py, from the authors' code.

Upstream: microsoft/ReinMax, commit f14006640c5a5c08f3a79a5944a99297a8bae1ae, file ``reinmax/reinmax.py``
(``reinmax(logits, tau)``: the sample ``multinomial(softmax(logits))`` and ``ReinMaxCore.backward``, the gradient).

Run: ``python tests/goldens/reinmax.py /path/to/ReinMax`` (float64, CPU). Prints, for

- ``test_reinmax_sample_and_gradient_match_the_authors_reinmax``: for tau 1 and 2.5, after ``torch.manual_seed(3)``,
  the sampled op of every row of ``reinmax(ALPHA, tau)`` (``INDEX``; it does not depend on tau) and the gradient
  ``d sum(y_hard · COEF) / d ALPHA``, rows 0, 4 and 13 (``REINMAX_GRAD``);
- ``test_reinmax_gradient_on_a_sampled_edge``: the gradient of ``sum(y_hard[r] · w_r)`` for one row whose
  upstream gradient is non-zero at the sampled op only (what the ``SampledOp`` edge gives), tau 1.

Nothing is stubbed: the authors' function runs on the CPU as it is.
"""
from __future__ import annotations

import torch
from _upstream import F64, checkout, on_path, section, show

ROOT = checkout("reinmax/reinmax.py")
on_path(ROOT)

from reinmax import reinmax  # noqa: E402


def inputs() -> dict[str, torch.Tensor]:
    """tests/test_samplers.py ``reinmax_inputs``."""
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(8, dtype=F64)[None, :]
    return {"alpha": 0.8 * torch.sin(1.1 * e + 0.6 * k) + 0.3 * torch.cos(0.4 * e * k),
            "coef": torch.cos(0.7 * e - 0.45 * k + 0.3)}


def sample_and_gradient(v: dict[str, torch.Tensor]) -> None:
    section("test_reinmax_sample_and_gradient_match_the_authors_reinmax")
    grads, index = {}, None
    for tau in (1.0, 2.5):
        alpha = v["alpha"].clone().requires_grad_()
        torch.manual_seed(3)
        y_hard, y_soft = reinmax(alpha, tau)
        assert torch.equal(y_soft.detach(), torch.softmax(v["alpha"], -1))
        sampled = y_hard.detach().argmax(-1)
        assert torch.equal(y_hard.detach(), torch.nn.functional.one_hot(sampled, 8).to(F64))
        assert index is None or torch.equal(index, sampled)
        index = sampled
        (grad,) = torch.autograd.grad((y_hard * v["coef"]).sum(), alpha)
        grads[tau] = {row: grad[row] for row in (0, 4, 13)}
    show("INDEX", index)
    show("REINMAX_GRAD", grads)


def sampled_edge(v: dict[str, torch.Tensor]) -> None:
    section("test_reinmax_gradient_on_a_sampled_edge")
    alpha = v["alpha"].clone().requires_grad_()
    torch.manual_seed(3)
    y_hard, _ = reinmax(alpha, 1.0)
    row = 4
    j = int(y_hard[row].detach().argmax())
    upstream = torch.zeros(8, dtype=F64)
    upstream[j] = 1.7  # an edge running only the sampled op: d loss / d weight is zero at the other ops
    (grad,) = torch.autograd.grad((y_hard[row] * upstream).sum(), alpha)
    show("sampled", j)
    show("EDGE_GRAD", grad[row])
    show("other_rows_zero", bool((grad[torch.arange(14) != row] == 0).all()))


if __name__ == "__main__":
    v = inputs()
    sample_and_gradient(v)
    sampled_edge(v)
