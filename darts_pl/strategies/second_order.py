"""Second-order (unrolled) DARTS: the alpha gradient through one virtual weight step (paper Eq. 6-8).

    w'  = w - xi * (momentum * buf + dL_train(w, a)/dw + wd * w)              virtual step, Eq. 6
    g   = dL_val(w', a)/da - xi * d2L_train(w, a)/(da dw) . v                 Eq. 7
    v   = dL_val(w', a)/dw'

The Hessian-vector product is a central finite difference (Eq. 8),
``[dL_train(w + eps v, a)/da - dL_train(w - eps v, a)/da] / (2 eps)`` with ``eps = 0.01 / ||v||``,
or exact through double backward (``hessian="exact"``). ``xi`` is the weight optimizer's current
learning rate; momentum buffers and weight decay come from its state, as in the original code.

Virtual weights are plain tensors fed to the space through ``torch.func.functional_call``: the network
is never copied and the live weights are never written, so they are bit-identical after the call.

Note:
    Recurrent spaces (``space.clips_virtual_step``) clip dL_train/dw at ``grad_clip`` before the virtual
    step and scale the implicit term by the same coefficient, as the original RNN code does, with two
    deliberate differences: the coefficient is ``min(1, clip / norm)`` (the original also scales by it
    when it exceeds 1), and tied embedding/decoder weights take part in the virtual step like every
    other weight (the original reloads them from w).
"""
from __future__ import annotations

from typing import Any, Literal

import torch

from darts_pl.distributed import all_reduce_mean_
from darts_pl.errors import ConfigurationError, check_finite
from darts_pl.search.base import SearchSpace
from darts_pl.strategies.base import ArchStep, ArchStrategy, evaluate, grads_or_zeros


class SecondOrder(ArchStrategy):
    """Unrolled alpha gradient of DARTS (second order).

    Args:
        hessian: ``"finite_difference"`` (the paper's Eq. 8) or ``"exact"`` (double backward).
        epsilon_scale: The finite-difference step is ``epsilon_scale / ||v||`` (0.01 in the paper).
        float64_hessian: Evaluate the two finite-difference passes in float64. In float32 the central
            difference amplifies rounding (about 10% relative error on the paper's supernet).
    """

    unrolled = True

    def __init__(self, hessian: Literal["finite_difference", "exact"] = "finite_difference",
                 epsilon_scale: float = 0.01, float64_hessian: bool = False) -> None:
        if hessian not in ("finite_difference", "exact"):
            raise ConfigurationError(f"SecondOrder: unknown hessian={hessian!r}; use 'finite_difference' or 'exact'.")
        if epsilon_scale <= 0:
            raise ConfigurationError(f"SecondOrder: epsilon_scale={epsilon_scale} must be > 0 (the paper uses 0.01).")
        self.hessian = hessian
        self.epsilon_scale = epsilon_scale
        self.float64_hessian = float64_hessian

    def arch_gradients(self, space: SearchSpace, train_batch: Any, val_batch: Any,
                       weight_optimizer: torch.optim.Optimizer, grad_clip: float | None = None) -> ArchStep:
        names, weights = map(list, zip(*space.named_weight_parameters()))
        alphas = space.arch_parameters()
        xi = _learning_rate(weight_optimizer)

        # Eq. 6: one virtual SGD step on the train batch, w -> w'.
        train_loss = space(train_batch, "train").loss
        check_finite(train_loss, "training loss", "virtual step")
        grad_train = grads_or_zeros(train_loss, weights)
        all_reduce_mean_(grad_train)  # under DDP every rank steps to the same w' (the global batch's)
        coef = 1.0
        if space.clips_virtual_step and grad_clip is not None:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grad_train]))
            coef = min(1.0, grad_clip / (float(norm) + 1e-6))
        virtual = {name: w.detach() for name, w in zip(names, weights)}
        groups = _groups_by_param(weight_optimizer)
        with torch.no_grad():
            for name, w, g in zip(names, weights, grad_train):
                momentum, wd, buf = _sgd_state(weight_optimizer, groups, w)
                step = g * coef if coef != 1.0 else g.clone()
                if wd:
                    step.add_(w, alpha=wd)
                if momentum and buf is not None:
                    step.add_(buf, alpha=momentum)
                virtual[name] = (w - xi * step).requires_grad_()
        del grad_train

        # Eq. 7, first term and v: gradients of the val loss at w'.
        val = evaluate(space, val_batch, "val", virtual)
        check_finite(val.loss, "validation loss at the virtual weights", "virtual step")
        grads = grads_or_zeros(val.loss, list(virtual.values()) + alphas)
        all_reduce_mean_(grads)
        v, d_alpha = grads[: len(names)], grads[len(names):]
        del virtual, grads

        if self.hessian == "exact":
            implicit = self._exact_hvp(space, train_batch, weights, alphas, v)
        else:
            implicit = self._finite_difference_hvp(space, train_batch, names, weights, alphas, v)
        all_reduce_mean_(implicit)
        scale = xi * coef
        grads = [(d - scale * h.to(d.dtype)).detach() for d, h in zip(d_alpha, implicit)]
        return ArchStep(grads, val._replace(loss=val.loss.detach()))

    def _finite_difference_hvp(self, space: SearchSpace, batch: Any, names: list[str],
                               weights: list[torch.Tensor], alphas: list[torch.Tensor],
                               v: list[torch.Tensor]) -> list[torch.Tensor]:
        """Eq. 8: [dL_train(w+)/da - dL_train(w-)/da] / (2 eps), w± = w ± eps v, eps = 0.01/||v||."""
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in v]))
        eps = self.epsilon_scale / norm
        extra: dict[str, torch.Tensor] = {}
        if self.float64_hessian:
            weights = [w.double() for w in weights]
            v = [x.double() for x in v]
            eps = eps.double()
            batch = _to_float64(batch)
            extra = {n: a.double() for n, a in space.named_arch_parameters()}
            extra.update({n: b.double() if b.is_floating_point() else b for n, b in space.named_buffers()})
        diffs = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                shifted = {n: w + (sign * eps) * x for n, w, x in zip(names, weights, v)}
            loss = evaluate(space, batch, "train", {**shifted, **extra}).loss
            diffs.append(grads_or_zeros(loss, alphas))
        return [(p - m) / (2 * eps) for p, m in zip(*diffs)]

    @staticmethod
    def _exact_hvp(space: SearchSpace, batch: Any, weights: list[torch.Tensor], alphas: list[torch.Tensor],
                   v: list[torch.Tensor]) -> list[torch.Tensor]:
        """d/da [ v . dL_train(w, a)/dw ] by double backward."""
        loss = space(batch, "train").loss
        grad_w = grads_or_zeros(loss, weights, create_graph=True)
        dot = sum((g * x).sum() for g, x in zip(grad_w, v))
        return grads_or_zeros(dot, alphas)


def _learning_rate(optimizer: torch.optim.Optimizer) -> float:
    lrs = {float(group["lr"]) for group in optimizer.param_groups}
    if len(lrs) != 1:
        raise ConfigurationError(f"SecondOrder: the weight optimizer's param groups have different learning rates "
                         f"{sorted(lrs)}; the unrolled step uses one xi. Use one learning rate for all weights.")
    return lrs.pop()


def _groups_by_param(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    return {id(p): group for group in optimizer.param_groups for p in group["params"]}


def _sgd_state(optimizer: torch.optim.Optimizer, groups: dict[int, dict[str, Any]],
               param: torch.Tensor) -> tuple[float, float, torch.Tensor | None]:
    """(momentum, weight decay, momentum buffer) the optimizer would apply to ``param``."""
    group = groups.get(id(param))
    if group is None:
        raise ConfigurationError("SecondOrder: a weight of the search space is not in the weight optimizer; "
                         "give the weight optimizer space.weight_parameters().")
    buf = optimizer.state.get(param, {}).get("momentum_buffer")
    return float(group.get("momentum", 0.0)), float(group.get("weight_decay", 0.0)), buf


def _to_float64(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.double() if batch.is_floating_point() else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_float64(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_float64(b) for k, b in batch.items()}
    return batch
