"""Terms of the weight step's gradient beyond the training loss's, and Λ-DARTS's alignment of the cells' gradients.

A :class:`WeightStepTerm` adds a gradient to every weight in the weight step, before clipping (``LitSearch`` arg
``weight_terms``). It may watch tensors of the step's own forward (:meth:`WeightStepTerm.watch`: their gradients come
from the step's backward, at no extra pass) and may run the step's loss again (at moved edge weights, say).

Λ-DARTS (Movahedi et al., "Λ-DARTS: Mitigating Performance Collapse by Harmonizing Operation Selection among Cells",
ICLR 2023; the authors' dr-faustus/Lambda-DARTS) observes that the cells of the supernet share one alpha per cell type
but pull it in different directions: the gradient of the training loss with respect to the op weights that cell
``l`` runs with, ``g_l = dL/dA_l``, points elsewhere in every cell, and the cells nearest the output win. Its
regulariser is the mean cosine similarity of those per-cell gradients,
``R(w) = mean over pairs l < m of cos(g_l, g_m)``, which the weight step *increases*: the weights get
``dL/dw - λ · dR/dw``. :class:`CellGradientAlignment` computes ``dR/dw`` as the authors do, without second
derivatives: ``dR/dw = sum_l (dg_l/dw)ᵀ p_l`` with ``p_l = dR/dg_l``, a Hessian-vector product, approximated by a
central difference of the training-loss gradient at the op weights moved by ``∓ε p`` in every cell.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn

from darts_pl.distributed import all_reduce_mean_
from darts_pl.errors import ConfigurationError
from darts_pl.parts.base import NON_NEGATIVE, POSITIVE, Part, Range

if TYPE_CHECKING:
    from darts_pl.search.base import SearchSpace


class WeightStepTerm(Part):
    """A term of the weight step's gradient: ``gradients`` returns what to add to each weight's gradient (already
    times :attr:`weight`, the same on every rank), or ``None`` to add nothing this step.

    Args:
        weight: Coefficient of the term (a schedule may move it: target ``weight_terms.<i>.weight``).

    Attributes:
        reruns_forward: The term evaluates the step's loss again (refused with parts that draw noise: the passes
            would each draw another sample).
        metrics: Scalars of the last step, logged by the loop as ``weight_terms/<name>``.
    """

    tunable: ClassVar[Mapping[str, Range]] = {"weight": NON_NEGATIVE}
    reruns_forward: ClassVar[bool] = False

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.check(weight=weight)
        self.weight = weight
        self.metrics: dict[str, torch.Tensor] = {}

    def check_space(self, space: SearchSpace) -> None:
        """Refuse, in one line, a space the term cannot run on (called when the search module is built)."""

    @contextlib.contextmanager
    def watch(self, space: SearchSpace) -> Iterator[list[torch.Tensor]]:
        """Around the weight step's forward: a list, filled during the forward, of tensors whose gradients the step's
        backward computes and :meth:`gradients` receives."""
        yield []

    def gradients(self, space: SearchSpace, loss: Callable[[], torch.Tensor], weights: Sequence[torch.Tensor],
                  watched: Sequence[torch.Tensor]) -> list[torch.Tensor] | None:
        """The term's gradient for each of ``weights``. ``loss()`` evaluates the weight step's loss again (at the edge
        weights of the step); ``watched`` are the gradients of the tensors :meth:`watch` gave (this rank's)."""
        raise NotImplementedError


def _unit_directions(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """``dR/dg_l`` of ``R = mean over pairs of cos(g_l, g_m)`` (the authors' ``corr``): with ``u_l = g_l / |g_l|`` and
    ``s = sum u``, ``(s - u_l (u_l · s)) / |g_l|`` over the number of pairs."""
    norms = [g.norm() for g in grads]
    units = [g / n for g, n in zip(grads, norms)]
    total = torch.stack(units).sum(0)
    pairs = len(grads) * (len(grads) - 1) / 2
    return [(total - u * torch.dot(u, total)) / (n * pairs) for u, n in zip(units, norms)]


def _sign_directions(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The authors' ``signcorr`` directions: for cell ``i``, ``sum over j != i of (1 - (g_i · g_j) / (|g_i| · |g_j|)
    · sign(g_i) sign(g_j)) g_j / (|g_i| · |g_j|)`` (``|g|`` elementwise, ``·`` the dot product), over the pairs."""
    pairs = len(grads) * (len(grads) - 1) / 2
    out = []
    for i, g in enumerate(grads):
        direction = torch.zeros_like(g)
        for j, h in enumerate(grads):
            if i != j:
                dot, abs_dot = torch.dot(g, h), torch.dot(g.abs(), h.abs())
                direction = direction + (1 - dot / abs_dot * g.sign() * h.sign()) * h / abs_dot
        out.append(direction / pairs)
    return out


def _mean_cosine(grads: list[torch.Tensor]) -> torch.Tensor:
    cos = [torch.dot(a, b) / (a.norm() * b.norm()) for i, a in enumerate(grads) for b in grads[i + 1:]]
    return torch.stack(cos).mean()


class CellGradientAlignment(WeightStepTerm):
    """Λ-DARTS: the weight step's gradient gets ``-weight · dR/dw``, ``R`` the mean pairwise cosine of the cells'
    gradients ``g_l = dL_train/dA_l`` with respect to the op weights ``A_l`` that cell ``l`` runs with, within each
    cell type (the authors' ``get_perturbations`` / ``get_reg_grads``, ``--corr_regularization corr``).

    Per step: the ``g_l`` come from the weight step's own backward (a zero tensor added to each cell's weights is
    watched); ``p_l = dR/dg_l`` (``kind``); ``ε = epsilon / |(p_l)_l|`` (one norm over every cell of every type);
    then two more forward/backward passes give the weights' gradients ``f`` at ``A_l - ε p_l`` and ``b`` at
    ``A_l + ε p_l`` in every cell, and the term is ``weight · (f - b) / (2ε) ≈ -weight · dR/dw``.

    Args:
        weight: λ. The authors raise it linearly, ``λ · epoch / (epochs - 1)`` (a ``LinearSchedule`` on
            ``weight_terms.0.weight``, ``span: epochs_minus_one``).
        epsilon: ε0 of the finite difference.
        kind: ``"corr"`` (the cosine similarity; the authors' default) or ``"signcorr"`` (their sign-agreement
            variant, DARTS-space code only).
        cell_types: The cell types whose cells are aligned (each type's cells among themselves); ``None``: every type.
            The authors' DARTS-space code aligns the normal cells only (the reduction cells' term is zeroed); their
            NAS-Bench-201 code, whose cells all share one alpha, aligns all of them.

    Raises:
        ConfigurationError: a space whose cells do not run their weights one at a time (the RNN space: one cell), or
            a cell type the space does not have.

    Note:
        The supernets of the paper, like those here, share one alpha per cell type across cells; "layer-wise" in the
        authors' code means the gradient with respect to each cell's copy of ``softmax(alpha)`` (a ``clone()`` per
        cell with ``retain_grad``), which is what the watched per-cell tensor gives. Differences: under DDP the
        per-cell gradients and both passes' gradients are averaged over the ranks (the global batch's term); a type
        with fewer than two cells contributes nothing (no pairs), and a step where some cell's gradient is zero adds
        nothing (the authors' code would divide by zero); the extra passes update the batch-norm statistics, as the
        authors' do.
    """

    reruns_forward: ClassVar[bool] = True
    tunable: ClassVar[Mapping[str, Range]] = {"weight": NON_NEGATIVE, "epsilon": POSITIVE}

    def __init__(self, weight: float = 0.125, epsilon: float = 1e-4, kind: Literal["corr", "signcorr"] = "corr",
                 cell_types: list[str] | None = None) -> None:
        super().__init__(weight)
        self.check(epsilon=epsilon)
        if kind not in ("corr", "signcorr"):
            raise ConfigurationError(f"CellGradientAlignment: kind={kind!r}; use 'corr' (the authors' default) or "
                                     "'signcorr'.")
        self.epsilon = epsilon
        self.kind = kind
        self.cell_types = None if cell_types is None else list(cell_types)
        self._layout: list[tuple[str, int]] = []
        self._warned = False

    def check_space(self, space: SearchSpace) -> None:
        if not space.per_cell_weights:
            raise ConfigurationError(f"CellGradientAlignment: {type(space).__name__} does not run its cells' op "
                                     "weights one cell at a time, so there are no per-cell gradients to align; use it "
                                     "with CNNSearchSpace or NB201SearchSpace.")
        unknown = sorted(set(self.cell_types or []) - set(space.cell_types))
        if unknown:
            raise ConfigurationError(f"CellGradientAlignment: cell_types={self.cell_types} names {unknown}, which "
                                     f"{type(space).__name__} does not have; its cell types: "
                                     f"{', '.join(space.cell_types)} (or null: every type).")

    def _aligned(self, cell: str) -> bool:
        return self.cell_types is None or cell in self.cell_types

    @contextlib.contextmanager
    def watch(self, space: SearchSpace) -> Iterator[list[torch.Tensor]]:
        watched: list[torch.Tensor] = []
        self._layout = []

        def add_probe(cell: str, position: int, weights: torch.Tensor) -> torch.Tensor:
            if not self._aligned(cell):
                return weights
            probe = torch.zeros_like(weights, requires_grad=True)  # (edges, ops): its gradient is dL/dA_cell
            watched.append(probe)
            self._layout.append((cell, position))
            return weights + probe

        with space.per_cell(add_probe):
            yield watched

    def gradients(self, space: SearchSpace, loss: Callable[[], torch.Tensor], weights: Sequence[torch.Tensor],
                  watched: Sequence[torch.Tensor]) -> list[torch.Tensor] | None:
        if self.weight == 0:  # the passes would add nothing (the authors run them anyway: only BN statistics move)
            return None
        grads = [g.detach().clone() for g in watched]
        all_reduce_mean_(grads)  # the global batch's per-cell gradients
        directions = self.directions(grads)
        if directions is None:
            return None
        flat = torch.cat([d.flatten() for d in directions.values()])
        eps = self.epsilon / float(flat.norm())

        def moved(sign: float) -> Callable[[str, int, torch.Tensor], torch.Tensor]:
            def hook(cell: str, position: int, a: torch.Tensor) -> torch.Tensor:
                d = directions.get((cell, position))
                return a if d is None else a - sign * eps * d.view_as(a).to(a.dtype)
            return hook

        outer = [self._grad(space, loss, weights, moved(+1.0)), self._grad(space, loss, weights, moved(-1.0))]
        diff = [f - b for f, b in zip(*outer)]
        all_reduce_mean_(diff)  # the global batch's difference (autograd.grad is not averaged by DDP)
        return [self.weight * d / (2 * eps) for d in diff]

    def directions(self, grads: list[torch.Tensor]) -> dict[tuple[str, int], torch.Tensor] | None:
        """``p_l = dR/dg_l`` for every aligned cell, by (cell type, position); ``None`` when there is nothing to align
        (no type with two cells, or a zero gradient)."""
        by_type: dict[str, list[int]] = {}
        for k, (cell, _) in enumerate(self._layout):
            by_type.setdefault(cell, []).append(k)
        groups = {cell: ks for cell, ks in by_type.items() if len(ks) >= 2}
        if not groups:
            if not self._warned:
                rank_zero_warn("CellGradientAlignment: no aligned cell type has two cells or more, so the term adds "
                               "nothing; use a deeper supernet or other cell_types.")
                self._warned = True
            return None
        out: dict[tuple[str, int], torch.Tensor] = {}
        self.metrics = {}
        for cell, ks in groups.items():
            flat = [grads[k].flatten() for k in ks]
            if any(float(g.norm()) == 0.0 for g in flat):
                return None
            self.metrics[f"cell_gradient_cosine_{cell}"] = _mean_cosine(flat).detach()
            found = _unit_directions(flat) if self.kind == "corr" else _sign_directions(flat)
            out.update({self._layout[k]: d for k, d in zip(ks, found)})
        if not all(math.isfinite(float(d.norm())) for d in out.values()):
            return None
        return out

    @staticmethod
    def _grad(space: SearchSpace, loss: Callable[[], torch.Tensor], weights: Sequence[torch.Tensor],
              hook: Callable[[str, int, torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
        with space.per_cell(hook):
            value = loss()
        grads = torch.autograd.grad(value, list(weights), allow_unused=True)
        return [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]
