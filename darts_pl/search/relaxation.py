"""Relaxations: how a cell type's architecture tensor becomes the edge weights of one forward pass, and the
probabilities that monitors and genotype derivation read.

DARTS relaxes the choice of op on an edge to ``softmax(alpha)`` (Liu et al., 2019, Eq. 2). Variants change
only this map: FairDARTS uses independent sigmoids, GDAS a hard Gumbel-softmax sample with a
straight-through gradient, DrNAS a reparameterised Dirichlet sample. A relaxation is a small module the
search space is given (``CNNSearchSpace(relaxation=...)``); its state (a temperature, the noise generator)
travels in the space's ``state_dict`` and so in every checkpoint.

Stochastic relaxations draw their noise from a generator of their own, seeded identically on every rank:
under DDP every rank draws the same sample at every forward (so ranks run the same ops and their averaged
gradients belong to one sample), and the generator's state is part of the checkpoint, so a resumed run
draws what the uninterrupted run would have drawn.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class EdgeWeights(NamedTuple):
    """One forward's weights of a cell type: ``weights`` (edges, ops), and for sampling relaxations the
    sampled op of every edge, ``index`` (edges,)."""

    weights: torch.Tensor
    index: torch.Tensor | None = None


class Relaxation(nn.Module):
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


class SeededNoise(nn.Module):
    """A noise generator of a stochastic relaxation: seeded identically on every rank, saved with the model.

    Args:
        seed: Seed of the generator (the same on every rank, so every rank draws the same sample).
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.eval_generator = torch.Generator().manual_seed(seed)

    def train(self, mode: bool = True) -> SeededNoise:
        # Evaluation draws from a generator of its own, restarted each time the model goes into eval mode: the
        # search's sample stream does not depend on how many validation passes (a sanity check before a
        # resumed run, say) came before, and every validation pass sees the same samples.
        if self.training and not mode:
            self.eval_generator.manual_seed(self.seed)
        return super().train(mode)

    @contextlib.contextmanager
    def drawing(self) -> Iterator[None]:
        """Inside the block, the global CPU generator is this one (``torch.distributions`` samples from the
        global generator); outside, the global generator is as it was. Draw on the CPU, so every device
        gives the same numbers."""
        generator = self.generator if self.training else self.eval_generator
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(generator.get_state())
            yield
            generator.set_state(torch.get_rng_state())

    def get_extra_state(self) -> dict[str, Any]:
        return {"seed": self.seed, "generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.generator.set_state(state["generator"])

    def __getstate__(self) -> dict[str, Any]:
        # A torch.Generator does not survive torch.multiprocessing's shared-memory pickling (DDP spawn):
        # send its state as bytes.
        state = dict(self.__dict__)
        for name in ("generator", "eval_generator"):
            state[name] = bytes(state[name].get_state().numpy())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in ("generator", "eval_generator"):
            generator = torch.Generator()
            generator.set_state(torch.frombuffer(bytearray(state[name]), dtype=torch.uint8))
            state[name] = generator
        self.__dict__.update(state)


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
    as in the authors' code.

    Args:
        tau: Temperature (moved from 10 to 0.1 over the search by a ``LinearSchedule`` in GDAS).
        seed: Seed of the sampling generator (the same on every rank).
    """

    stochastic: ClassVar[bool] = True
    samples: ClassVar[bool] = True

    def __init__(self, tau: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"GumbelSoftmax: tau={tau} must be > 0 (GDAS anneals it from 10 to 0.1).")
        self.tau = tau
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
        while True:
            gumbels = self.gumbels(alpha)
            weights, index = self.hard_sample(alpha, gumbels, self.tau)
            if not torch.isinf(gumbels).any() and torch.isfinite(weights).all():
                return EdgeWeights(weights, index)

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha, dim=-1)
