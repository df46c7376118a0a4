"""SDARTS expected values of tests/test_variants.py, from the authors' code.

Upstream: xiangning-chen/SmoothDARTS, commit d3dbfed06643d5fd4056edd90891ec9109634ada, files ``attacker/perturb.py``
(``Random_alpha``, ``Linf_PGD_alpha``), ``attacker/linf_sgd.py`` (``Linf_SGD``), ``sota/cnn/model_search.py``
(``Network.clip``, ``softmax_arch_parameters``, ``restore_arch_parameters``, and ``forward(updateType='weight')``,
which takes the perturbed alphas themselves as the edge weights) and ``sota/cnn/train_search.py`` (``train()``: the
alphas are replaced by their softmax, perturbed, used, restored; ``main()``: ``epsilon_alpha`` of each epoch).

Run: ``python tests/goldens/sdarts.py /path/to/SmoothDARTS`` (float64, CPU). Prints, for

- ``test_sdarts_clip_matches_the_authors_clip``: ``Network.clip`` on the test's 3×4 matrix;
- ``test_sdarts_random_perturbation_matches_random_alpha``: the perturbed normal weights and reduction row 0;
- ``test_sdarts_adversarial_perturbation_matches_linf_pgd``: the normal and reduction weights after
  ``Linf_PGD_alpha(epsilon=0.1, steps=7)``, the loss at them, and the training mode of each of the attack's losses;
- ``test_sdarts_adversarial_attack_that_lowers_the_loss_is_reverted``: the largest distance of the weights after a
  one-step attack that lowers the loss from the unperturbed softmax (0: the authors restore them);
- ``test_sdarts_epsilon_schedule``: ``epsilon_alpha`` of epochs 0, 1, 10, 25, 49 of 50 (``--epsilon_alpha 0.3``).

How the test's inputs reach the authors' code: the test's model is a fixed smooth function of the edge weights,
``sum_c sum(C_c · P_c^2 + D_c · P_c)``; here it is a small module with the authors' ``arch_parameters()`` list and
``_loss(X, y, updateType)`` (the weights are the alphas for ``'weight'``, as their ``forward``), and their
``Network.clip`` / ``softmax_arch_parameters`` / ``restore_arch_parameters`` as its methods. The uniform noise the
test fixes (``sdarts_delta``) is what ``Tensor.uniform_`` returns, one tensor per cell type in the authors' order
(normal first).
"""
from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from _upstream import F64, assigned_value, checkout, evaluate, on_path, section, show

ROOT = checkout("attacker/perturb.py")
on_path(ROOT)
warnings.filterwarnings("ignore", message="This overload of add_ is deprecated")  # Linf_SGD's p.data.add_(lr, d_p)

from attacker.perturb import Linf_PGD_alpha, Random_alpha  # noqa: E402
from sota.cnn.model_search import Network  # noqa: E402

AR = torch.arange(12, dtype=F64)


class QuadraticModel(nn.Module):
    """The test's ``ArchOnlySpace`` with the authors' architecture-parameter methods."""

    clip = Network.clip
    softmax_arch_parameters = Network.softmax_arch_parameters
    restore_arch_parameters = Network.restore_arch_parameters
    _save_arch_parameters = Network._save_arch_parameters

    def __init__(self, normal: torch.Tensor, reduce: torch.Tensor, coefficients: list[tuple]) -> None:
        super().__init__()
        self._arch_parameters = [normal.clone().requires_grad_(), reduce.clone().requires_grad_()]
        self.coefficients = coefficients
        self.calls: list[bool] = []

    def arch_parameters(self) -> list[torch.Tensor]:
        return self._arch_parameters

    def _loss(self, x: Any, y: Any, updateType: str = "alpha") -> torch.Tensor:
        self.calls.append(self.training)
        weights = self._arch_parameters if updateType == "weight" else [a.softmax(-1) for a in self._arch_parameters]
        return sum((c * w ** 2 + d * w).sum() for (c, d), w in zip(self.coefficients, weights))


def sdarts_model() -> QuadraticModel:
    """tests/test_variants.py ``sdarts_space``."""
    coefficients = [(torch.linspace(-2, 2, 12, dtype=F64).reshape(3, 4), torch.cos(AR).reshape(3, 4)),
                    (torch.linspace(1.5, -1.5, 12, dtype=F64).reshape(3, 4), torch.sin(2 * AR).reshape(3, 4))]
    return QuadraticModel(torch.linspace(-1, 1, 12, dtype=F64).reshape(3, 4),
                          torch.linspace(0.6, -0.5, 12, dtype=F64).reshape(3, 4), coefficients)


def with_uniform(samples: list[torch.Tensor], attack: Callable[[], None]) -> None:
    """Run ``attack`` with ``Tensor.uniform_`` filling in ``samples`` in order."""
    real = torch.Tensor.uniform_

    def fixed(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return self.copy_(samples.pop(0))

    torch.Tensor.uniform_ = fixed
    try:
        attack()
    finally:
        torch.Tensor.uniform_ = real
    assert not samples, "the authors' attack drew fewer uniform samples than expected"


def delta() -> list[torch.Tensor]:
    """tests/test_variants.py ``sdarts_delta``."""
    return [(0.1 * torch.sin(1.3 * AR)).reshape(3, 4), (0.1 * torch.cos(0.7 * AR)).reshape(3, 4)]


def clip() -> None:
    section("test_sdarts_clip_matches_the_authors_clip")
    model = QuadraticModel(torch.tensor([[1.10, -0.10, 0.15, -0.10], [-0.40, -0.30, -0.20, -0.10],
                                         [0.55, 0.15, 0.25, 0.45]], dtype=F64), torch.zeros(1, 4, dtype=F64), [])
    model.clip()
    show("expected", model.arch_parameters()[0].detach(), 12)


def random_perturbation() -> None:
    section("test_sdarts_random_perturbation_matches_random_alpha")
    model = sdarts_model()
    model.softmax_arch_parameters()
    with_uniform(delta(), lambda: Random_alpha(model, None, None, 0.1))
    normal, reduce = (p.detach().clone() for p in model.arch_parameters())
    model.restore_arch_parameters()
    show("normal", normal, 12)
    show("reduce_0", reduce[0], 12)


def adversarial_perturbation() -> None:
    section("test_sdarts_adversarial_perturbation_matches_linf_pgd")
    model = sdarts_model()
    model.softmax_arch_parameters()
    with_uniform(delta(), lambda: Linf_PGD_alpha(model, None, None, 0.1, steps=7))
    normal, reduce = (p.detach().clone() for p in model.arch_parameters())
    with torch.no_grad():
        loss = float(model._loss(None, None, updateType="weight"))
    show("normal", normal, 12)
    show("reduce", reduce, 12)
    show("loss", loss, 13)
    show("attack_losses_in_training_mode", model.calls[:-1])  # the last call is the one just above
    show("training_after", model.training)


def reverted_attack() -> None:
    section("test_sdarts_adversarial_attack_that_lowers_the_loss_is_reverted")
    model = sdarts_model()
    p0 = [a.detach().softmax(-1) for a in model.arch_parameters()]
    model.coefficients = [(torch.full_like(p, -100.0), 200 * (p + 0.01)) for p in p0]
    model.softmax_arch_parameters()
    with_uniform([torch.full_like(p, -0.09) for p in p0], lambda: Linf_PGD_alpha(model, None, None, 0.1, steps=1))
    after = [a.detach() for a in model.arch_parameters()]
    show("max_distance_from_softmax", max(float((a - p).abs().max()) for a, p in zip(after, p0)))


def epsilon_schedule() -> None:
    section("test_sdarts_epsilon_schedule")
    expression = assigned_value(ROOT / "sota/cnn/train_search.py", "epsilon_alpha", contains="epoch")
    print(f"# epsilon_alpha = {ast.unparse(expression)}")

    class Args:
        epsilon_alpha, epochs = 0.3, 50

    show("epsilon", [round(evaluate(expression, args=Args, epoch=e), 12) for e in (0, 1, 10, 25, 49)])


if __name__ == "__main__":
    clip()
    random_perturbation()
    adversarial_perturbation()
    reverted_attack()
    epsilon_schedule()
