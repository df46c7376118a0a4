"""Errors for bad input. Each message names the setting, echoes the bad value and says how to fix it;
the ``darts-pl`` command prints them as one line and exits with status 2."""
from __future__ import annotations

import torch


class ConfigurationError(ValueError):
    """A setting with a value darts_pl cannot use."""


class DataNotFoundError(FileNotFoundError):
    """Data that is missing, empty or not laid out as expected."""


class NonFiniteError(RuntimeError):
    """A loss, gradient or parameter became NaN or infinite; the message names the phase and the step."""


def check_finite(value: torch.Tensor, what: str, phase: str) -> None:
    """Raise ``NonFiniteError`` naming ``what`` and ``phase`` if ``value`` holds a NaN or an infinity."""
    if not bool(torch.isfinite(value).all()):
        shown = f"{float(value.detach()):.4g}" if value.numel() == 1 else "a tensor with NaN/inf entries"
        raise NonFiniteError(f"non-finite {what} in the {phase}: {shown}")
