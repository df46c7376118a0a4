"""Two more stochastic relaxations: SNAS's concrete (soft Gumbel-softmax) sample, and ReinMax's hard sample with a
second-order-accurate straight-through gradient.

* :class:`Concrete` — SNAS (Xie et al., "SNAS: Stochastic Neural Architecture Search", ICLR 2019, Sec. 2.2, Eq. 4):
  every forward draws the edge weights ``softmax((alpha + g) / tau)`` with Gumbel noise ``g``, a sample of the
  concrete distribution; every op runs, weighted (the ``WeightedSum`` edge). Its temperature is annealed over the
  search by a schedule (``configs/variants/snas.yaml``).
* :class:`ReinMax` — ReinMax (Liu et al., "Bridging Discrete and Backpropagation: Straight-Through and Beyond",
  NeurIPS 2023, Alg. 2; the authors' ``reinmax`` in microsoft/ReinMax): every forward draws one op per edge from
  ``softmax(alpha)`` and returns its one-hot weights, whose gradient is Heun's method instead of the forward Euler
  step that plain straight-through takes. With the ``SampledOp`` edge only the sampled op runs, as in GDAS.

Both draw from a generator of their own (:class:`~darts_pl.parts.base.SeededNoise`): every rank draws the same sample,
and a resumed run draws what the uninterrupted one would have.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F

from darts_pl.errors import NonFiniteError
from darts_pl.parts.base import POSITIVE, Range, SeededNoise
from darts_pl.parts.relaxation import EdgeWeights, Relaxation

AT_LEAST_ONE = Range(1.0, math.inf)


class Concrete(Relaxation):
    """SNAS: the edge weights of a forward are a concrete sample, ``softmax((alpha + g) / tau)`` with Gumbel noise
    ``g = -log(E)``, ``E ~ Exp(1)``, drawn anew at every forward (Xie et al., 2019, Eq. 4; Maddison et al.'s concrete
    distribution). The sample is soft: every op of an edge runs, weighted (``WeightedSum``), and the gradient reaches
    alpha through the sample (the reparameterisation). Monitors and derivation read ``softmax(alpha)``, the
    probabilities of the categorical distribution the sample relaxes. A draw with an infinite noise value or
    non-finite weights is drawn again, up to ``MAX_REDRAWS`` times (then a ``NonFiniteError``), as ``GumbelSoftmax``.

    Args:
        tau: Temperature λ of the concrete distribution (SNAS anneals it, ``space.relaxation.tau``: 1 → 0.03).
        seed: Seed of the sampling generator (the same on every rank).

    Note:
        There is no noise in the paper's notation beyond Eq. 4; ``softmax((alpha + g) / tau)`` is what the authors'
        released code (SNAS-Series, ``Network._get_categ_mask``: ``g = -log(-log(U))``), ConfigurableOptimizer's
        ``SNASSampler`` and NNI's ``GumbelDARTS`` (``F.gumbel_softmax(alpha, tau)``) compute. The noise is drawn as
        ``-log(E)`` with ``E ~ Exp(1)`` (``-log(U) ~ Exp(1)``: the same distribution).
    """

    stochastic: ClassVar[bool] = True
    tunable: ClassVar[Mapping[str, Range]] = {"tau": POSITIVE}
    MAX_REDRAWS: ClassVar[int] = 100

    def __init__(self, tau: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.check(tau=tau)
        self.tau = tau
        self.seed = seed
        self.noise = SeededNoise(seed)

    def gumbels(self, alpha: torch.Tensor) -> torch.Tensor:
        with self.noise.drawing():
            g = -torch.empty(alpha.shape, dtype=alpha.dtype).exponential_().log()  # (edges, ops)
        return g.to(alpha.device)

    @staticmethod
    def soft_sample(alpha: torch.Tensor, gumbels: torch.Tensor, tau: float) -> torch.Tensor:
        """The concrete sample for given Gumbel noise, ``softmax((alpha + gumbels) / tau)`` (edges, ops)."""
        return F.softmax((alpha + gumbels) / tau, dim=-1)

    def forward(self, alpha: torch.Tensor) -> EdgeWeights:
        for _ in range(self.MAX_REDRAWS):
            gumbels = self.gumbels(alpha)
            weights = self.soft_sample(alpha, gumbels, self.tau)
            if not torch.isinf(gumbels).any() and torch.isfinite(weights).all():
                return EdgeWeights(weights)
        finite = "finite" if bool(torch.isfinite(alpha).all()) else "NOT finite"
        raise NonFiniteError(f"non-finite concrete samples in {self.MAX_REDRAWS} draws (tau={self.tau:g}, the alphas "
                             f"are {finite})")

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)


class ReinMax(Relaxation):
    """ReinMax: one op per edge sampled from ``softmax(alpha)``, with one-hot edge weights whose gradient is ReinMax's
    second-order-accurate estimate (Liu et al., 2023, Alg. 2):

    ``π0 = softmax(alpha)``, ``D = one_hot(sample of π0)``, ``π1 = (softmax(alpha / tau) + D) / 2`` (its gradient taken
    through ``softmax(stop_grad(log π1 - alpha) + alpha)``), ``π2 = 2 π1 - π0 / 2``; the weights are
    ``π2 - stop_grad(π2) + D``: ``D`` in value, so ``d loss / d alpha = 2 J(π1) g - J(π0) g / 2`` for the gradient
    ``g`` at the weights, with ``J(π) = diag(π) - π πᵀ``. ``index`` is the sampled op; monitors and derivation read
    ``softmax(alpha)``. Use it with the ``SampledOp`` edge (only the sampled op runs, as in GDAS;
    ``SampledOp(other_weights=True)`` in the NAS-Bench-201 cell).

    Args:
        tau: Temperature of the gradient's ``softmax(alpha / tau)``; ReinMax takes ``tau >= 1`` (the authors'
            ``reinmax`` refuses less). The sample itself does not depend on it.
        seed: Seed of the sampling generator (the same on every rank).

    Note:
        The sample is ``torch.multinomial(softmax(alpha), 1)`` drawn on the CPU from the relaxation's own generator:
        with ``seed`` s it equals the authors' ``reinmax(alpha, tau)`` sample after ``torch.manual_seed(s)``. The
        authors write the gradient as an ``autograd.Function`` (and centre it, which changes it only by rounding);
        here it is the algorithm's own straight-through construction, so double backward works too.
    """

    stochastic: ClassVar[bool] = True
    samples: ClassVar[bool] = True
    tunable: ClassVar[Mapping[str, Range]] = {"tau": AT_LEAST_ONE}

    def __init__(self, tau: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.check(tau=tau)
        self.tau = tau
        self.seed = seed
        self.noise = SeededNoise(seed)

    def sample(self, alpha: torch.Tensor) -> torch.Tensor:
        """One op per edge drawn from ``softmax(alpha)``, ``(edges,)``.

        Raises:
            NonFiniteError: the alphas are not finite (there is no distribution to draw from).
        """
        probs = F.softmax(alpha.detach().cpu(), dim=-1)  # (edges, ops)
        if not bool(torch.isfinite(probs).all()):
            raise NonFiniteError("ReinMax cannot sample: softmax(alpha) is not finite (the alphas are "
                                 f"{'finite' if bool(torch.isfinite(alpha).all()) else 'NOT finite'})")
        with self.noise.drawing():
            index = torch.multinomial(probs, 1, replacement=True)  # (edges, 1)
        return index.squeeze(-1).to(alpha.device)

    @staticmethod
    def straight_through(alpha: torch.Tensor, index: torch.Tensor, tau: float) -> torch.Tensor:
        """The one-hot weights of ``index`` (edges,) with ReinMax's gradient in ``alpha`` (edges, ops)."""
        pi0 = F.softmax(alpha, dim=-1)
        one_hot = torch.zeros_like(pi0).scatter_(-1, index[:, None], 1.0)
        pi1 = (F.softmax(alpha / tau, dim=-1) + one_hot) / 2
        pi1 = F.softmax((pi1.log() - alpha).detach() + alpha, dim=-1)  # π1 in value, the Jacobian of a softmax at π1
        pi2 = 2 * pi1 - pi0 / 2
        return pi2 - pi2.detach() + one_hot

    def forward(self, alpha: torch.Tensor) -> EdgeWeights:
        index = self.sample(alpha)
        return EdgeWeights(self.straight_through(alpha, index, self.tau), index)

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)
