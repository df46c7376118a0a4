"""Where a run's files go: one directory per run, the same on every rank, claimed atomically."""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def run_dir(trainer: L.Trainer) -> Path:
    """The run's directory.

    TensorBoard/CSV loggers: their ``log_dir`` (``<root>/lightning_logs/version_N``). Other loggers (W&B):
    ``<save_dir>/<name>/<version>``, where their checkpoints go too, so runs never share a folder. No
    logger: the trainer's root directory (``darts-pl`` makes it the run's own ``<root>/lightning_logs/version_N``).
    Computed on rank 0 and broadcast, as ``ModelCheckpoint`` does.
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


def claim_version(parent: str | os.PathLike[str]) -> int:
    """Create ``<parent>/version_N`` for the next free ``N`` and return ``N``.

    ``mkdir`` either creates the directory or fails because it exists, so two runs started at once never
    get the same one (listing the versions and taking the next, as the loggers do, races).
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    number = max((v for v in map(version_number, parent.iterdir()) if v is not None), default=-1) + 1
    while True:
        try:
            (parent / f"version_{number}").mkdir()
            return number
        except FileExistsError:
            number += 1


def version_number(path: Path) -> int | None:
    """``N`` for a directory named ``version_N``, else ``None``."""
    suffix = path.name[len("version_"):]
    return int(suffix) if path.name.startswith("version_") and suffix.isdigit() and path.is_dir() else None


def newest_run(parent: str | os.PathLike[str]) -> Path | None:
    """The run directory below ``parent`` (``<parent>/<run>/checkpoints/*.ckpt``) whose checkpoints were written
    last; ``None`` when no run there has a checkpoint. Only ``parent``'s own children are looked at."""
    parent = Path(parent)
    newest: tuple[float, Path] | None = None
    for run in parent.iterdir() if parent.is_dir() else []:
        times = [p.stat().st_mtime for p in (run / "checkpoints").glob("*.ckpt")] if run.is_dir() else []
        if times and (newest is None or max(times) > newest[0]):
            newest = (max(times), run)
    return newest[1] if newest else None
