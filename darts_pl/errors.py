"""Errors for bad input. Each message names the setting, echoes the bad value and says how to fix it;
the ``darts-pl`` command prints them as one line and exits with status 2."""
from __future__ import annotations


class ConfigurationError(ValueError):
    """A setting with a value darts_pl cannot use."""


class DataNotFoundError(FileNotFoundError):
    """Data that is missing, empty or not laid out as expected."""
