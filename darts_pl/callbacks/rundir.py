"""Where a run's files go: one directory per run, the same on every rank."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def run_dir(trainer: L.Trainer) -> Path:
    """The run's directory.

    TensorBoard/CSV loggers: their ``log_dir`` (``<root>/lightning_logs/version_N``). Other loggers (W&B):
    ``<save_dir>/<name>/<version>``, where their checkpoints go too, so runs never share a folder. No
    logger: the trainer's root directory. Computed on rank 0 and broadcast, as ``ModelCheckpoint`` does.
    """
    path = _local_run_dir(trainer)  # on every rank: trainer.log_dir is itself a collective
    return Path(trainer.strategy.broadcast(path))


def _local_run_dir(trainer: L.Trainer) -> str:
    if not trainer.loggers:
        return str(trainer.default_root_dir)
    logger = trainer.loggers[0]
    if isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return str(trainer.log_dir or trainer.default_root_dir)
    if not trainer.is_global_zero or logger.version is None:
        return str(trainer.default_root_dir)  # ranks > 0: replaced by rank 0's path in the broadcast
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return str(Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / version)
