"""Weight-step hooks: what the weight step does to the architecture.

DARTS trains the weights at the current edge weights. SDARTS trains them at perturbed ones (a random
perturbation, or the adversarial one found by projected gradient ascent), which smooths the validation
loss landscape in the architecture (Chen & Hsieh, 2020). A hook returns the edge weights of every cell
type for the weight step; the loop runs that step's forward with them (``space.fixed_edge_weights``) and
the architecture tensors themselves are never written.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from darts_pl.distributed import all_reduce_mean_
from darts_pl.errors import ConfigurationError
from darts_pl.parts.base import NON_NEGATIVE, Part, Range, SeededNoise
from darts_pl.parts.relaxation import EdgeWeights

if TYPE_CHECKING:
    from darts_pl.search.base import SearchSpace


class ArchPerturbation(Part):
    """Edge weights for the weight step. A schedule may move ``epsilon`` (target ``perturbation.epsilon``).

    Args:
        epsilon: Size of the perturbation.
    """

    tunable: ClassVar[Mapping[str, Range]] = {"epsilon": NON_NEGATIVE}

    def __init__(self, epsilon: float = 0.03) -> None:
        super().__init__()
        self.check(epsilon=epsilon)
        self.epsilon = epsilon

    def perturb(self, space: SearchSpace, train_batch: Any) -> dict[str, EdgeWeights]:
        """``{cell type: EdgeWeights}`` to train the weights at on ``train_batch``."""
        raise NotImplementedError


def clip_rows(probs: torch.Tensor) -> torch.Tensor:
    """SDARTS's ``clip``: clamp every row to [0, 1] and divide by its sum; a row that clamps to all zeros
    becomes one-hot at its argmax before the clamp. (Not a projection onto the simplex; as the authors do.)"""
    argmax = probs.argmax(-1, keepdim=True)  # (edges, 1)
    clamped = probs.clamp(0.0, 1.0)
    empty = clamped.sum(-1, keepdim=True) == 0
    clamped = torch.where(empty, torch.zeros_like(clamped).scatter_(-1, argmax, 1.0), clamped)
    return clamped / clamped.sum(-1, keepdim=True)


class _SeededPerturbation(ArchPerturbation):
    def __init__(self, epsilon: float = 0.03, seed: int = 0) -> None:
        super().__init__(epsilon)
        self.seed = seed
        self.noise = SeededNoise(seed)

    def uniform(self, probs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """U(-epsilon, epsilon) noise per cell type, drawn on the CPU from this hook's own generator."""
        with self.noise.drawing():
            draws = {cell: torch.empty(p.shape, dtype=p.dtype).uniform_(-self.epsilon, self.epsilon)
                     for cell, p in probs.items()}
        return {cell: d.to(probs[cell].device) for cell, d in draws.items()}


def _unperturbed(space: SearchSpace) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {cell: space.relaxation.probs(space.arch[cell]) for cell in space.cell_types}  # {cell: (edges, ops)}


class RandomPerturbation(_SeededPerturbation):
    """SDARTS-RS: train the weights at ``clip(probs + U(-epsilon, epsilon))``, where ``probs`` are the
    relaxation's probabilities (softmax(alpha)), a new draw every weight step (Chen & Hsieh, 2020, Eq. 4;
    the authors' ``Random_alpha`` then ``clip``). The schedule moves ``epsilon`` from 0.03 to 0.3.

    Args:
        epsilon: Half-width of the uniform perturbation.
        seed: Seed of the perturbation's generator (the same on every rank).
    """

    def perturb(self, space: SearchSpace, train_batch: Any) -> dict[str, EdgeWeights]:
        probs = _unperturbed(space)
        noise = self.uniform(probs)
        return {cell: EdgeWeights(clip_rows(p + noise[cell])) for cell, p in probs.items()}


class AdversarialPerturbation(_SeededPerturbation):
    """SDARTS-ADV: train the weights at the perturbation of the probabilities that maximises the training loss
    within an L-infinity ball of radius ``epsilon``, found by projected gradient ascent (Chen & Hsieh, 2020,
    Eq. 5; the authors' ``Linf_PGD_alpha``): a random start ``clip(probs + U(-epsilon, epsilon))``, then
    ``steps`` signed steps of ``2 · epsilon / steps`` on the train batch, each projected back into the ball
    around ``probs`` and clipped; if the attack ends below the unperturbed loss, the unperturbed probabilities
    are used. The attack runs with the network in eval mode (BatchNorm on running statistics), as theirs.

    Args:
        epsilon: Radius of the ball.
        steps: Gradient-ascent steps (7 in the paper).
        seed: Seed of the random start's generator (the same on every rank).
    """

    def __init__(self, epsilon: float = 0.03, steps: int = 7, seed: int = 0) -> None:
        super().__init__(epsilon, seed)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigurationError(f"AdversarialPerturbation: steps={steps!r} must be an integer >= 1 (SDARTS-ADV "
                                     "uses 7).")
        self.steps = steps

    def perturb(self, space: SearchSpace, train_batch: Any) -> dict[str, EdgeWeights]:
        saved = _unperturbed(space)
        was_training = space.training
        space.eval()
        try:
            before = self._loss(space, train_batch, saved, grad=False)
            noise = self.uniform(saved)
            probs = {cell: clip_rows(p + noise[cell]) for cell, p in saved.items()}
            step = 2 * self.epsilon / self.steps
            for _ in range(self.steps):
                probs = {cell: p.requires_grad_() for cell, p in probs.items()}
                loss = self._loss(space, train_batch, probs, grad=True)
                grads = torch.autograd.grad(loss, list(probs.values()))
                all_reduce_mean_(list(grads))  # one attack for the global batch
                with torch.no_grad():
                    probs = {cell: clip_rows(saved[cell] + (p + step * g.sign() - saved[cell]).clamp(
                        -self.epsilon, self.epsilon)) for (cell, p), g in zip(probs.items(), grads)}
            after = self._loss(space, train_batch, probs, grad=False)
        finally:
            space.train(was_training)
        if bool(before > after):
            probs = saved
        return {cell: EdgeWeights(p.detach()) for cell, p in probs.items()}

    @staticmethod
    def _loss(space: SearchSpace, batch: Any, probs: dict[str, torch.Tensor], grad: bool) -> torch.Tensor:
        with torch.set_grad_enabled(grad), space.fixed_edge_weights({c: EdgeWeights(p) for c, p in probs.items()}):
            loss = space(batch, "train").loss
        if not grad:
            loss = loss.detach().clone()
            all_reduce_mean_([loss])
        return loss
