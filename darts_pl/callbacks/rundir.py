"""Where a run's files go: the logger's run directory, or the trainer's root directory."""
from __future__ import annotations

from pathlib import Path

import lightning as L


def run_dir(trainer: L.Trainer) -> Path:
    """``trainer.log_dir`` when a logger defines one (``lightning_logs/version_N``), else the root dir."""
    path = trainer.log_dir if trainer.loggers else None
    return Path(path or trainer.default_root_dir)
