"""Schedules: a value that moves over the search epochs (GDAS's temperature, DARTS-'s auxiliary-skip
coefficient, β-DARTS's regularization weight, SDARTS's perturbation size, P-DARTS's skip-connection
dropout rate).

A schedule names its ``target``, a dotted attribute path from the search module (``space.relaxation.tau``,
``space.edge.beta``, ``regularizers.0.weight``, ``perturbation.epsilon``), and ``LitSearch`` sets the
target to ``value(epoch, max_epochs)`` at the start of every training epoch. The value is a function of
the epoch alone, and the part that holds the target keeps the value in its own state (every checkpoint), so a
resumed run continues with exactly the values the uninterrupted run had. A target that a part declares tunable
carries its valid range: every value the schedule will take over the fit is checked before the fit starts
(:meth:`Schedule.check_values`), and a value out of range is refused in one line.
"""
from __future__ import annotations

import math
from typing import Any, Literal

from darts_pl.errors import ConfigurationError
from darts_pl.parts.base import Part


class Schedule(Part):
    """Sets ``target`` to ``value(epoch, max_epochs)`` at the start of each epoch.

    Args:
        target: Dotted attribute path from the search module (``space.relaxation.tau``...).
    """

    def __init__(self, target: str) -> None:
        super().__init__()
        if not isinstance(target, str) or not target or any(not part for part in target.split(".")):
            raise ConfigurationError(f"{type(self).__name__}: target={target!r} is not a dotted attribute path; "
                                     "use e.g. 'space.relaxation.tau' or 'regularizers.0.weight'.")
        self.target = target

    def value(self, epoch: int, max_epochs: int) -> float:
        raise NotImplementedError

    def resolve(self, root: Any) -> tuple[Any, str]:
        """The object holding the target attribute, and the attribute's name; a clear error if absent."""
        *path, name = self.target.split(".")
        obj = root
        for part in path:
            try:
                obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
            except (AttributeError, IndexError, TypeError):
                obj = None
            if obj is None:
                break
        if obj is None or not isinstance(getattr(obj, name, None), (int, float)):
            raise ConfigurationError(
                f"{type(self).__name__}: target={self.target!r} names no number of the search module; "
                "it must be a dotted path to a float attribute such as 'space.relaxation.tau', 'space.edge.beta', "
                "'regularizers.0.weight' or 'perturbation.epsilon' of the parts this config uses.")
        return obj, name

    def bind(self, root: Any) -> None:
        """Resolve the target now (a wrong one fails before the fit) and tell a part that it is scheduled.

        Raises:
            ConfigurationError: the target is an attribute of a part that the part does not declare ``tunable``
                (it would be neither range-checked nor saved with the part's state).
        """
        obj, name = self.resolve(root)
        if isinstance(obj, Part):
            if name not in obj.tunable:
                raise ConfigurationError(
                    f"{type(self).__name__}: target={self.target!r}: {type(obj).__name__}.{name} is not declared "
                    f"tunable (its tunable attributes: {', '.join(obj.tunable) or 'none'}); declare it in "
                    f"{type(obj).__name__}.tunable with its valid range, e.g. {{{name!r}: darts_pl.parts.POSITIVE}}.")
            obj.mark_scheduled(name)

    def check_values(self, root: Any, max_epochs: int) -> None:
        """Check every value of epochs ``0 .. max_epochs - 1`` against the target's declared range (a part's
        ``tunable``); one line naming the schedule, the epoch and the range when one is outside it."""
        obj, name = self.resolve(root)
        valid = obj.tunable.get(name) if isinstance(obj, Part) else None
        if valid is None or max_epochs < 1:
            return
        for epoch in range(max_epochs):
            value = float(self.value(epoch, max_epochs))
            if not valid.contains(value):
                raise ConfigurationError(
                    f"{type(self).__name__}(target={self.target!r}) sets {value:g} at epoch {epoch} of {max_epochs}, "
                    f"but {type(obj).__name__}.{name} must be {valid}; change the schedule's start/end (or its span).")

    def apply(self, root: Any, epoch: int, max_epochs: int) -> float:
        obj, name = self.resolve(root)
        value = float(self.value(epoch, max_epochs))
        if isinstance(obj, Part):
            obj.set_tunable(name, value)
        else:
            setattr(obj, name, value)
        return value


class LinearSchedule(Schedule):
    """``start + (end - start) · epoch / span`` (``epoch`` counts from 0), held at ``end`` afterwards.

    Args:
        target: Dotted attribute path from the search module.
        start: Value at epoch 0.
        end: Value the schedule reaches.
        span: ``"epochs"``: ``span = max_epochs``, so ``end`` would come one epoch after the last (DARTS-,
            SDARTS); ``"epochs_minus_one"``: ``span = max_epochs - 1``, so the last epoch runs at ``end``
            (GDAS); or a number of epochs.
    """

    def __init__(self, target: str, start: float, end: float,
                 span: Literal["epochs", "epochs_minus_one"] | int = "epochs") -> None:
        super().__init__(target)
        if isinstance(span, int) and span < 1:
            raise ConfigurationError(f"LinearSchedule: span={span} must be >= 1 epoch, 'epochs' or 'epochs_minus_one'.")
        self.start = start
        self.end = end
        self.span = span

    def value(self, epoch: int, max_epochs: int) -> float:
        if self.span == "epochs":
            span = max_epochs
        elif self.span == "epochs_minus_one":
            span = max_epochs - 1
        else:
            span = int(self.span)
        fraction = 1.0 if span <= 0 else min(1.0, epoch / span)
        return self.start + (self.end - self.start) * fraction


class CosineSchedule(LinearSchedule):
    """``end + (start - end) · (1 + cos(pi · epoch / span)) / 2``, held at ``end`` afterwards (same args)."""

    def value(self, epoch: int, max_epochs: int) -> float:
        fraction = (super().value(epoch, max_epochs) - self.start) / (self.end - self.start) \
            if self.end != self.start else 1.0
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * fraction)) / 2


class ExponentialSchedule(Schedule):
    """``start · exp(-decay · (epoch - warmup_epochs))`` from epoch ``warmup_epochs`` on, and
    ``start · (max_epochs - epoch - 1) / max_epochs`` in the epochs before (``epoch`` counts from 0): P-DARTS's
    skip-connection dropout within a stage (the authors' ``train_search.py``: ``dropout_rate · exp(-(epoch -
    eps_no_arch) · scale_factor)`` with ``scale_factor = 0.2`` once alpha steps run, and ``dropout_rate · (epochs
    - epoch - 1) / epochs`` in the ``eps_no_arch`` warm-up epochs of weight steps only).

    Args:
        target: Dotted attribute path from the search module (``space.skip_dropout.p``).
        start: The value at the first epoch after the warm-up.
        decay: The exponential rate per epoch.
        warmup_epochs: Epochs before the exponential part (the search module's ``warmup_epochs``).
    """

    def __init__(self, target: str, start: float, decay: float = 0.2, warmup_epochs: int = 0) -> None:
        super().__init__(target)
        if warmup_epochs < 0:
            raise ConfigurationError(f"ExponentialSchedule: warmup_epochs={warmup_epochs} must be >= 0.")
        self.start = start
        self.decay = decay
        self.warmup_epochs = warmup_epochs

    def value(self, epoch: int, max_epochs: int) -> float:
        if epoch < self.warmup_epochs:
            return self.start * (max_epochs - epoch - 1) / max_epochs
        return self.start * math.exp(-(epoch - self.warmup_epochs) * self.decay)
