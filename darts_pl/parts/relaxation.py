"""Relaxations: how a cell type's architecture tensor becomes the edge weights of one forward pass, and the
probabilities that monitors and genotype derivation read.

DARTS relaxes the choice of op on an edge to ``softmax(alpha)`` (Liu et al., 2019, Eq. 2). Variants change
only this map: FairDARTS uses independent sigmoids, GDAS a hard Gumbel-softmax sample with a
straight-through gradient, DrNAS a reparameterised Dirichlet sample. A relaxation is a part the
search space is given (``CNNSearchSpace(relaxation=...)``); its state (a temperature, the noise generator)
travels in the space's ``state_dict`` and so in every checkpoint.

Stochastic relaxations draw their noise from a generator of their own, seeded identically on every rank:
under DDP every rank draws the same sample at every forward (so ranks run the same ops and their averaged
gradients belong to one sample), and the generator's state is part of the checkpoint, so a resumed run
draws what the uninterrupted run would have drawn.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F

from darts_pl.errors import NonFiniteError
from darts_pl.parts.base import POSITIVE, Part, Range, SeededNoise


class EdgeWeights(NamedTuple):
    """One forward's weights of a cell type: ``weights`` (edges, ops); for sampling relaxations the sampled op of
    every edge, ``index`` (edges,); with edge normalisation (PC-DARTS) the factor on every edge's output,
    ``scale`` (edges,)."""

    weights: torch.Tensor
    index: torch.Tensor | None = None
    scale: torch.Tensor | None = None


class Relaxation(Part):
    """Base class: ``forward(alpha)`` gives the :class:`EdgeWeights` of one forward pass (differentiable in
    ``alpha``); :meth:`probs` gives what monitors and derivation read.

    Class attributes:
        stochastic: Every forward draws new noise (refused with the unrolled second-order step, whose
            finite difference compares passes that would each draw another sample).
        samples: Each forward picks one op per edge and returns its ``index`` (GDAS).
        normalized: The probabilities of an edge sum to one (softmax-like); sigmoid weights do not.
        label: How figures and files name the probabilities (``softmax(alpha)``...).
    """

    stochastic: ClassVar[bool] = False
    samples: ClassVar[bool] = False
    normalized: ClassVar[bool] = True
    label: ClassVar[str] = "softmax(alpha)"

    def forward(self, alpha: torch.Tensor) -> EdgeWeights:  # (edges, ops)
        raise NotImplementedError

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        """The op probabilities of every edge, (edges, ops)."""
        raise NotImplementedError


class Softmax(Relaxation):
    """DARTS: ``softmax(alpha)`` over the ops of each edge (paper Eq. 2)."""

    def forward(self, alpha: torch.Tensor) -> EdgeWeights:
        return EdgeWeights(F.softmax(alpha, dim=-1))

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)


class Sigmoid(Relaxation):
    """FairDARTS: an independent ``sigmoid(alpha)`` per op, so ops do not compete for one unit of mass
    (Chu et al., 2020, Eq. 3); the weights of an edge need not sum to one."""

    normalized: ClassVar[bool] = False
    label: ClassVar[str] = "sigmoid(alpha)"

    def forward(self, alpha: torch.Tensor) -> EdgeWeights:
        return EdgeWeights(torch.sigmoid(alpha))

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha)


class Dirichlet(Relaxation):
    """DrNAS: the edge weights of a forward are a reparameterised sample of ``Dirichlet(elu(alpha) + 1)``, one
    per edge, drawn anew at every forward (Chen et al., 2021, Sec. 3.1; ``rsample`` carries the pathwise
    gradient to alpha).

    Args:
        seed: Seed of the sampling generator (the same on every rank).
        probs: What monitors and derivation read: ``"softmax"`` of alpha, as the authors' code derives its
            genotype, or the Dirichlet ``"mean"`` ``c / sum(c)`` (the two agree where alpha <= 0).

    Note:
        Sampled on the CPU from the relaxation's own generator, normal before reduce: with ``seed`` s, the
        samples equal ``torch.distributions.Dirichlet(...).rsample()`` after ``torch.manual_seed(s)``.
    """

    stochastic: ClassVar[bool] = True

    def __init__(self, seed: int = 0, probs: Literal["softmax", "mean"] = "softmax") -> None:
        super().__init__()
        self.seed = seed
        self.noise = SeededNoise(seed)
        self.probs_from = probs

    @staticmethod
    def concentration(alpha: torch.Tensor) -> torch.Tensor:
        return F.elu(alpha) + 1  # > 0 everywhere

    def forward(self, alpha: torch.Tensor) -> EdgeWeights:
        with self.noise.drawing():
            sample = torch.distributions.Dirichlet(self.concentration(alpha).cpu()).rsample()  # (edges, ops)
        return EdgeWeights(sample.to(alpha.device))

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.probs_from == "mean":
            c = self.concentration(alpha)
            return c / c.sum(-1, keepdim=True)
        return F.softmax(alpha, dim=-1)


class GumbelSoftmax(Relaxation):
    """GDAS: one op per edge sampled by the Gumbel-max trick, with the straight-through gradient of the
    Gumbel-softmax at temperature ``tau`` (Dong & Yang, 2019, Eq. 3-5).

    ``probs = softmax((log_softmax(alpha) + g) / tau)`` with Gumbel noise ``g = -log(E)``, ``E ~ Exp(1)``;
    the edge weights are ``one_hot(argmax probs) - probs.detach() + probs`` (one in value at the sampled op,
    zero elsewhere, the soft gradient everywhere) and ``index`` is the sampled op. Monitors and derivation
    read ``softmax(alpha)``. A draw with an infinite noise value or non-finite probabilities is drawn again,
    as in the authors' code, up to ``MAX_REDRAWS`` times: non-finite alphas (or a temperature that makes every
    draw overflow) then stop the step with a ``NonFiniteError``, which the loop handles as any non-finite value
    (``nonfinite: stop|skip``), instead of drawing forever.

    Args:
        tau: Temperature (moved from 10 to 0.1 over the search by a ``LinearSchedule`` in GDAS).
        seed: Seed of the sampling generator (the same on every rank).
    """

    stochastic: ClassVar[bool] = True
    samples: ClassVar[bool] = True
    tunable: ClassVar[Mapping[str, Range]] = {"tau": POSITIVE}
    MAX_REDRAWS: ClassVar[int] = 100

    def __init__(self, tau: float = 10.0, seed: int = 0) -> None:
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
    def hard_sample(alpha: torch.Tensor, gumbels: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Straight-through one-hot weights and the sampled index for given noise (GDAS's ``get_gumbel_prob``)."""
        probs = F.softmax((alpha.log_softmax(dim=-1) + gumbels) / tau, dim=-1)  # (edges, ops)
        index = probs.max(-1, keepdim=True)[1]  # (edges, 1)
        one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        return one_hot - probs.detach() + probs, index.squeeze(-1)

    def forward(self, alpha: torch.Tensor) -> EdgeWeights:
        for _ in range(self.MAX_REDRAWS):
            gumbels = self.gumbels(alpha)
            weights, index = self.hard_sample(alpha, gumbels, self.tau)
            if not torch.isinf(gumbels).any() and torch.isfinite(weights).all():
                return EdgeWeights(weights, index)
        finite = "finite" if bool(torch.isfinite(alpha).all()) else "NOT finite"
        raise NonFiniteError(f"non-finite Gumbel-softmax probabilities in {self.MAX_REDRAWS} draws (tau={self.tau:g}, "
                             f"the alphas are {finite})")

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)
