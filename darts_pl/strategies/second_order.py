"""Second-order (unrolled) DARTS: the alpha gradient through one virtual weight step (paper Eq. 6-8).

    w'  = w - xi * (momentum * buf + dL_train(w, a)/dw + wd * w)              virtual step, Eq. 6
    g   = dL_val(w', a)/da - xi * d2L_train(w, a)/(da dw) . v                 Eq. 7
    v   = dL_val(w', a)/dw'

The Hessian-vector product is a central finite difference (Eq. 8),
``[dL_train(w + eps v, a)/da - dL_train(w - eps v, a)/da] / (2 eps)`` with ``eps = 0.01 / ||v||``,
or exact through double backward (``hessian="exact"``). ``xi`` is the weight optimizer's current
learning rate; momentum buffers and weight decay come from its state, as in the original code.

The virtual step is the step the weight optimizer itself would take (``virtual_step``): SGD as above
(also with dampening or Nesterov momentum), or Adam/AdamW from their moments and step counts. An
optimizer's update ``u(g)`` is then not ``g`` itself, and Eq. 7 follows the chain rule through it: with
``w' = w - xi * u(g)``, the implicit term is ``xi * d2L_train/(da dw) . (du/dg)^T v``; ``du/dg`` is
diagonal (one scalar for SGD, elementwise for Adam), so only the direction of the Hessian product changes.

The Hessian term is evaluated outside autocast, in the weights' dtype (at least float32; float64 with
``float64_hessian``): its central difference keeps only the last bits of two nearly equal gradients,
which bf16's 8-bit mantissa does not have.

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

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import torch

from darts_pl.distributed import all_reduce_mean_
from darts_pl.errors import ConfigurationError
from darts_pl.finite import check_finite
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

        # Eq. 6: one virtual step of the weight optimizer on the train batch, w -> w'.
        train_loss = space(train_batch, "train").loss
        check_finite(train_loss, "training loss", "virtual step")
        grad_train = grads_or_zeros(train_loss, weights)
        all_reduce_mean_(grad_train)  # under DDP every rank steps to the same w' (the global batch's)
        coef: float | torch.Tensor = 1.0
        if space.clips_virtual_step and grad_clip is not None:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grad_train]))
            coef = torch.clamp(grad_clip / (norm + 1e-6), max=1.0)  # a tensor: no host sync
        if isinstance(coef, torch.Tensor):
            grad_train = [g * coef for g in grad_train]
        step = virtual_step(weight_optimizer, weights, grad_train)
        del grad_train
        virtual = {name: w.requires_grad_() for name, w in zip(names, step.weights)}

        # Eq. 7, first term and v: gradients of the val loss at w'.
        val = evaluate(space, val_batch, "val", virtual)
        check_finite(val.loss, "validation loss at the virtual weights", "virtual step")
        grads = grads_or_zeros(val.loss, list(virtual.values()) + alphas)
        all_reduce_mean_(grads)
        v, d_alpha = step.direction(grads[: len(names)]), grads[len(names):]
        del virtual, grads, step

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
        """Eq. 8: [dL_train(w+)/da - dL_train(w-)/da] / (2 eps), w± = w ± eps v, eps = 0.01/||v||.

        Outside autocast, in float64 with ``float64_hessian``, else in the weights' dtype but at least float32.
        """
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in v]))
        eps = self.epsilon_scale / norm
        extra: dict[str, torch.Tensor] = {}
        dtype = torch.float64 if self.float64_hessian else torch.promote_types(weights[0].dtype, torch.float32)
        if dtype != weights[0].dtype:
            weights = [w.to(dtype) for w in weights]
            v = [x.to(dtype) for x in v]
            eps = eps.to(dtype)
            batch = _to_dtype(batch, dtype)
            named = dict(space.named_arch_parameters())
            extra = {n: a.to(dtype) for n, a in named.items()}
            # differentiate with respect to the cast alphas: the two gradients are subtracted in ``dtype``
            cast = {id(a): extra[n] for n, a in named.items()}
            alphas = [cast[id(a)] for a in alphas]
            extra.update({n: b.to(dtype) if b.is_floating_point() else b for n, b in space.named_buffers()})
        diffs = []
        with _without_autocast(weights[0]):
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    shifted = {n: w + (sign * eps) * x for n, w, x in zip(names, weights, v)}
                loss = evaluate(space, batch, "train", {**shifted, **extra}).loss
                diffs.append(grads_or_zeros(loss, alphas))
        return [(p - m) / (2 * eps) for p, m in zip(*diffs)]

    @staticmethod
    def _exact_hvp(space: SearchSpace, batch: Any, weights: list[torch.Tensor], alphas: list[torch.Tensor],
                   v: list[torch.Tensor]) -> list[torch.Tensor]:
        """d/da [ v . dL_train(w, a)/dw ] by double backward, outside autocast (as the finite difference)."""
        with _without_autocast(weights[0]):
            loss = space(batch, "train").loss
            grad_w = grads_or_zeros(loss, weights, create_graph=True)
            dot = sum((g * x.to(g.dtype)).sum() for g, x in zip(grad_w, v))
            return grads_or_zeros(dot, alphas)


def _learning_rate(optimizer: torch.optim.Optimizer) -> float:
    lrs = {float(group["lr"]) for group in optimizer.param_groups}
    if len(lrs) != 1:
        raise ConfigurationError(f"SecondOrder: the weight optimizer's param groups have different learning rates "
                         f"{sorted(lrs)}; the unrolled step uses one xi. Use one learning rate for all weights.")
    return lrs.pop()


class VirtualStep(NamedTuple):
    """The weight optimizer's step, not taken: ``w' = w·decay - xi·u(g)``.

    ``slopes`` are ``du/dg`` per weight (diagonal: a number, or a tensor of the weight's shape).
    """

    weights: list[torch.Tensor]
    slopes: list[float | torch.Tensor]

    def direction(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        """``(du/dg)^T v``: the vector whose product with d2L_train/(da dw) is the implicit term of Eq. 7."""
        return [x if isinstance(s, float) and s == 1.0 else x * s for x, s in zip(v, self.slopes)]


def virtual_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
                 grads: list[torch.Tensor]) -> VirtualStep:
    """What ``optimizer.step()`` would make of ``params`` given ``grads``, from its settings and state, with
    neither changed: SGD (momentum, dampening, Nesterov, weight decay), Adam and AdamW (moments, step
    counts, L2 or decoupled weight decay, AMSGrad).

    Raises:
        ConfigurationError: another optimizer, ``maximize=True``, or a param the optimizer does not hold.
    """
    if not isinstance(optimizer, (torch.optim.SGD, torch.optim.Adam)):
        raise ConfigurationError(
            f"SecondOrder: the weight optimizer {type(optimizer).__name__} has no virtual step here; the unrolled "
            "step (Eq. 6) takes the weight optimizer's own step, implemented for SGD, Adam and AdamW. Use one of "
            "them as weight_optimizer, or strategy FirstOrder.")
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    weights, slopes = [], []
    with torch.no_grad():
        for param, grad in zip(params, grads):
            group = groups.get(id(param))
            if group is None:
                raise ConfigurationError("SecondOrder: a weight of the search space is not in the weight optimizer; "
                                         "give the weight optimizer space.weight_parameters().")
            if group.get("maximize", False):
                raise ConfigurationError("SecondOrder: the weight optimizer has maximize=True; the weights minimise "
                                         "the training loss. Use maximize=False.")
            state = optimizer.state.get(param, {})
            if isinstance(optimizer, torch.optim.SGD):
                new, slope = _sgd_step(param.detach(), grad, group, state)
            else:
                decoupled = group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW))
                new, slope = _adam_step(param.detach(), grad, group, state, bool(decoupled))
            weights.append(new)
            slopes.append(slope)
    return VirtualStep(weights, slopes)


def _sgd_step(param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any],
              state: dict[str, Any]) -> tuple[torch.Tensor, float]:
    """``torch.optim.SGD``'s step of one weight (the same operations) and its slope ``du/dg``, a number."""
    lr, wd, momentum = float(group["lr"]), group["weight_decay"], group["momentum"]
    d_p = grad.add(param, alpha=wd) if wd else grad
    slope = 1.0
    if momentum:
        buf = state.get("momentum_buffer")
        if buf is None:  # the first step starts the buffer at the gradient, undamped
            buf = d_p
        else:
            buf = buf.mul(momentum).add_(d_p, alpha=1 - group["dampening"])
            slope = 1.0 - group["dampening"]
        if group.get("nesterov", False):
            d_p, slope = d_p.add(buf, alpha=momentum), 1.0 + momentum * slope
        else:
            d_p = buf
    return param.add(d_p, alpha=-lr), slope


def _adam_step(param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any],
               decoupled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.optim.Adam``/``AdamW``'s step of one weight (the same operations) and its slope ``du/dg``,
    elementwise, with ``u = m / denom / (1 - beta1^t)`` (Kingma & Ba, 2015, Alg. 1)."""
    lr, (beta1, beta2), eps, wd = float(group["lr"]), group["betas"], group["eps"], group["weight_decay"]
    t = float(state.get("step", 0)) + 1
    bias1, bias2_sqrt = 1 - beta1**t, (1 - beta2**t) ** 0.5
    zeros = torch.zeros_like(param, memory_format=torch.preserve_format)
    g = grad.add(param, alpha=wd) if wd and not decoupled else grad
    m = state.get("exp_avg", zeros).lerp(g, 1 - beta1)
    s = state.get("exp_avg_sq", zeros).mul(beta2).addcmul_(g, g, value=1 - beta2)
    # AMSGrad divides by the running maximum, which moves with g only where the new moment is that maximum.
    moving = s >= state.get("max_exp_avg_sq", zeros) if group["amsgrad"] else None
    root = torch.maximum(state.get("max_exp_avg_sq", zeros), s).sqrt() if group["amsgrad"] else s.sqrt()
    denom = (root / bias2_sqrt).add_(eps)
    base = param.mul(1 - lr * wd) if wd and decoupled else param
    new = base.addcdiv(m, denom, value=-lr / bias1)
    # d root/dg = (1 - beta2)·g / root (0 where root is 0: there g and the moment are 0);
    # d(m/denom)/dg = ((1 - beta1) - (m/denom)·d denom/dg) / denom.
    d_root = torch.where(root > 0, (1 - beta2) * g / root, 0.0)
    if moving is not None:
        d_root = torch.where(moving, d_root, 0.0)
    slope = ((1 - beta1) - m / denom * d_root / bias2_sqrt) / denom / bias1
    return new, slope


@contextlib.contextmanager
def _without_autocast(like: torch.Tensor) -> Iterator[None]:
    with torch.autocast(like.device.type, enabled=False):
        yield


def _to_dtype(batch: Any, dtype: torch.dtype) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(dtype) if batch.is_floating_point() else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_dtype(b, dtype) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_dtype(b, dtype) for k, b in batch.items()}
    return batch
