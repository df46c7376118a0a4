"""Finiteness checks of a search or training step: one host sync per phase, agreed over all ranks under DDP.

A NaN or infinite loss, gradient or parameter stops the run (or, for searches with ``nonfinite: skip``, skips the
batch) at the same point on every rank, with a message naming the value and the phase (:class:`NonFiniteError`).
"""
from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar, Token
from typing import Any

import torch

from darts_pl.distributed import all_reduce_min_
from darts_pl.errors import NonFiniteError

_ACTIVE: ContextVar[FiniteChecks | None] = ContextVar("darts_pl_finite_checks", default=None)


class FiniteChecks:
    """The finiteness checks of one phase of a step, verified together: one host sync, not one per value.

    Used as a context manager, it also collects the ``check_finite`` calls made inside it (the strategy's
    virtual step...) and verifies everything on a clean exit. Under DDP the verdict is all-reduced (one
    collective per phase), so every rank raises the same ``NonFiniteError`` at the same point, or none
    does: no rank waits in a collective that another one has left.

    Args:
        phase: Where the values come from (``"alpha step"``, ``"weight step"``), for the message.
    """

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self._items: list[tuple[torch.Tensor, str, str, torch.Tensor | None, bool]] = []
        self._token: Token[FiniteChecks | None] | None = None

    def add(self, value: torch.Tensor, what: str, phase: str | None = None) -> None:
        """Check ``value`` (any shape) for NaN and infinity."""
        shown = value.detach() if value.numel() == 1 else None
        self._items.append((torch.isfinite(value.detach()).all(), what, phase or self.phase, shown, True))

    def add_all(self, tensors: Iterable[torch.Tensor], what: str, recoverable: bool = True) -> None:
        """Check many tensors with one fused norm per dtype (a norm that overflows reads as non-finite too).

        Args:
            tensors: Floating-point tensors; others are ignored.
            what: Their name in the message.
            recoverable: ``False`` for the model's own state (weights, alphas, optimizer state): skipping
                the batch cannot repair it.
        """
        floats = [t.detach() for t in tensors if t.is_floating_point()]
        if floats:
            norms = torch.stack([n.float() for n in torch._foreach_norm(floats)])
            self._items.append((torch.isfinite(norms).all(), what, self.phase, None, recoverable))

    def verify(self) -> None:
        """Raise ``NonFiniteError`` for the first non-finite value (on any rank); one host sync."""
        if not self._items:
            return
        flags = torch.stack([flag.to(self._items[0][0].device) for flag, *_ in self._items])  # (n,)
        order = torch.arange(len(flags), device=flags.device)
        first = torch.where(flags, len(flags), order).min()
        all_reduce_min_(first)
        index = int(first)
        items, self._items = self._items, []
        if index < len(items):
            flag, what, phase, shown, recoverable = items[index]
            if bool(flag):
                value = "on another rank"
            else:
                value = f"{float(shown):.4g}" if shown is not None else "a tensor with NaN/inf entries"
            raise NonFiniteError(f"non-finite {what} in the {phase}: {value}", recoverable=recoverable)

    def __enter__(self) -> FiniteChecks:
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None
        if kind is None:
            self.verify()


def check_finite(value: torch.Tensor, what: str, phase: str) -> None:
    """Raise ``NonFiniteError`` naming ``what`` and ``phase`` if ``value`` holds a NaN or an infinity.

    Inside a ``FiniteChecks`` block the check joins the block's single verification at its end.
    """
    active = _ACTIVE.get()
    if active is not None:
        active.add(value, what, phase)
        return
    checks = FiniteChecks(phase)
    checks.add(value, what)
    checks.verify()
