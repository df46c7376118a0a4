"""Errors for bad input. Each message names the setting, echoes the bad value and says how to fix it;
the ``darts-pl`` command prints them as one line and exits with status 2."""
from __future__ import annotations


class ConfigurationError(ValueError):
    """A setting with a value darts_pl cannot use."""


class DataNotFoundError(FileNotFoundError):
    """Data that is missing, empty or not laid out as expected."""


class NonFiniteError(RuntimeError):
    """A loss, gradient or parameter became NaN or infinite; the message names the phase and the step.

    ``recoverable`` is false when the model itself holds the non-finite values (a step made a weight or an
    alpha non-finite): skipping a batch cannot help then.
    """

    def __init__(self, message: str, recoverable: bool = True) -> None:
        super().__init__(message)
        self.recoverable = recoverable
