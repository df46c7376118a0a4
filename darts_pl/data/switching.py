"""Switching data modules on the command line without losing a setting silently.

``darts-pl fit --config configs/train_cifar.yaml --data darts_pl.data.ImageFolderDataModule`` replaces the
config's data class; jsonargparse keeps the settings the new class takes and drops the others, saying so
only in a debug log message. :func:`watch_dropped_settings` collects those messages from a parser, and
:func:`refuse_dropped_settings` makes a dropped data setting an error unless it was the old class's
default (``download: true`` of CIFAR-10 may go; ``image_size: 64`` of an image folder may not).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import logging
import re
from typing import Any

from lightning import LightningDataModule

from darts_pl.errors import ConfigurationError

PATTERN = re.compile(r"class_path change from '([\w.]+)' to '([\w.]+)', discarding init_args: (\{.*\})\.$", re.S)
"""jsonargparse's message (``discard_init_args_on_class_path_change``)."""


class DroppedSettings(logging.Handler):
    """Keeps ``(old class path, new class path, dropped init_args as text)`` of each class switch."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.switches: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = PATTERN.search(record.getMessage())
        if match:
            self.switches.append((match[1], match[2], match[3]))


_HANDLER = DroppedSettings()


def watch_dropped_settings(parser: Any) -> None:
    """Route ``parser``'s log (and the class parsers it creates) to the collector, and forget earlier switches."""
    log = logging.getLogger("darts_pl.cli.parser")
    log.setLevel(logging.DEBUG)
    log.propagate = False  # jsonargparse's other debug notes stay silent, as with its default null logger
    if _HANDLER not in log.handlers:
        log.addHandler(_HANDLER)
    _HANDLER.switches.clear()
    parser.logger = log


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value  # YAML lists against tuple defaults


def refuse_dropped_settings() -> None:
    """Raise ``ConfigurationError`` for a data setting a class switch dropped that is not the old default."""
    for old_path, new_path, text in _HANDLER.switches:
        module, _, name = old_path.rpartition(".")
        old = getattr(importlib.import_module(module), name, None)
        if not (isinstance(old, type) and issubclass(old, LightningDataModule)):
            continue
        try:
            dropped = dict(ast.literal_eval(text))
        except (ValueError, SyntaxError, TypeError):
            dropped = {text: None}
        defaults = {key: p.default for key, p in inspect.signature(old).parameters.items()}
        lost = [f"{key}={value!r}" for key, value in dropped.items()
                if _plain(value) != _plain(defaults.get(key, inspect.Parameter.empty))]
        if lost:
            raise ConfigurationError(
                f"--data {new_path}: switching from {old.__name__} drops {', '.join(lost)}, which "
                f"{new_path.rpartition('.')[2]} does not take; remove it from the config, or give the data "
                "module in a config of its own.")
