"""Regularizers of the alpha loss: terms that depend on the architecture tensors only, added to the
validation loss of every alpha step (β-decay of β-DARTS, the zero-one loss of FairDARTS, the Dirichlet
prior of DrNAS).

Because such a term depends on the architecture alone, its gradient is the same at the live and at the
virtual weights, so it is added to whatever the strategy computed (first or second order) as
``weight · d term / d alpha``. ``weight`` is a plain attribute, so a :class:`~darts_pl.schedules.Schedule`
can move it over the epochs (``target: regularizers.0.weight``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.parts.base import NON_NEGATIVE, POSITIVE, Part, Range

if TYPE_CHECKING:
    from darts_pl.genotypes import CellGenotype
    from darts_pl.search.base import SearchSpace


class ArchRegularizer(Part):
    """``weight · penalty(space)``, added to the alpha loss.

    Args:
        weight: Coefficient of the penalty (a schedule may move it: target ``regularizers.<i>.weight``).
    """

    tunable: ClassVar[Mapping[str, Range]] = {"weight": NON_NEGATIVE}

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.check(weight=weight)
        self.weight = weight

    def penalty(self, space: SearchSpace) -> torch.Tensor:
        """The unweighted term, a scalar differentiable in the space's architecture tensors."""
        raise NotImplementedError

    def forward(self, space: SearchSpace) -> torch.Tensor:
        return self.weight * self.penalty(space)

    def epoch_metrics(self, space: SearchSpace) -> dict[str, float]:
        """Values the loop logs at the end of every training epoch, by metric name (none by default)."""
        return {}

    def genotype_metrics(self, space: SearchSpace, genotype: CellGenotype) -> dict[str, float]:
        """Values of a derived ``genotype`` that the genotype checkpoint writes beside it (none by default)."""
        return {}


def _flat(space: SearchSpace) -> torch.Tensor:
    """Every op value of every cell type in one vector (cell types may have different op counts)."""
    return torch.cat([space.arch[cell].flatten() for cell in space.cell_types])  # (sum of edges·ops,)


class BetaDecay(ArchRegularizer):
    """β-DARTS: ``sum over cell types of mean over edges of logsumexp(alpha_edge)`` (Ye et al., 2022, Eq. 9).

    Its gradient is ``softmax(alpha) / edges``: a weight decay on the op probabilities β, which keeps any one
    op from running away. The authors' code raises ``weight`` linearly, ``50 · epoch / 100``
    (``configs/variants/beta_darts.yaml``).

    Note:
        The authors' ``mlc_loss`` takes one tensor; for the two cell types of the DARTS space each cell type
        gets its own mean, summed (the released DARTS-space script does not run; this follows their NAS-Bench
        -201 path per tensor).
    """

    def penalty(self, space: SearchSpace) -> torch.Tensor:
        return sum(torch.logsumexp(space.arch[cell], dim=-1).mean() for cell in space.cell_types)


class ZeroOneLoss(ArchRegularizer):
    """FairDARTS: ``-mean((sigmoid(alpha) - 1/2)^2)`` over every op of every edge of both cell types (one mean
    over the stacked tensors), pushing each sigmoid weight towards 0 or 1 (Chu et al., 2020, Eq. 4; weight
    ``w0`` = 10 in the paper and code).

    Args:
        weight: ``w0``.
        norm: ``"l2"`` (the squared distance, the authors' default) or ``"l1"`` (``-mean|sigmoid(alpha) - 1/2|``).
    """

    def __init__(self, weight: float = 10.0, norm: Literal["l2", "l1"] = "l2") -> None:
        super().__init__(weight)
        if norm not in ("l2", "l1"):
            raise ConfigurationError(f"ZeroOneLoss: norm={norm!r}; use 'l2' (the authors' default) or 'l1'.")
        self.norm = norm

    def penalty(self, space: SearchSpace) -> torch.Tensor:
        distance = torch.sigmoid(_flat(space)) - 0.5
        return -(distance.abs() if self.norm == "l1" else distance.square()).mean()


class DirichletKL(ArchRegularizer):
    """DrNAS: ``sum over edges of KL(Dirichlet(elu(alpha) + 1) || Dirichlet(prior))`` over both cell types
    (Chen et al., 2021, Eq. 5; the authors' ``reg_type kl``, scale 1e-3, prior concentration 1).

    Args:
        weight: The scale (``reg_scale``).
        prior: Concentration of the symmetric Dirichlet prior.

    Note:
        With this regulariser the authors set the arch optimizer's weight decay to 0; their default
        ``reg_type l2`` is the plain Adam weight decay of DARTS instead.
    """

    tunable: ClassVar[Mapping[str, Range]] = {"weight": NON_NEGATIVE, "prior": POSITIVE}

    def __init__(self, weight: float = 1e-3, prior: float = 1.0) -> None:
        super().__init__(weight)
        self.check(prior=prior)
        self.prior = prior

    def penalty(self, space: SearchSpace) -> torch.Tensor:
        total = 0.0
        for cell in space.cell_types:  # one Dirichlet per edge; cell types may have different op counts
            concentration = F.elu(space.arch[cell]) + 1  # (edges, ops)
            prior = torch.full_like(concentration, self.prior)
            kl = torch.distributions.kl_divergence(torch.distributions.Dirichlet(concentration),
                                                   torch.distributions.Dirichlet(prior))
            total = total + kl.sum()
        return total
