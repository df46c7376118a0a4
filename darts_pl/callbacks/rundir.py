"""Where a run's files go: one directory per run, the same on every rank, claimed atomically, and held by one
process at a time (a lock in the run directory)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def run_dir(trainer: L.Trainer) -> Path:
    """The run's directory.

    TensorBoard/CSV loggers: their ``log_dir`` (``<root>/<method>/version_N``). Other loggers (W&B):
    ``<save_dir>/<name>/<version>``, where their checkpoints go too, so runs never share a folder. No
    logger: the trainer's root directory (``darts-pl`` makes it the run's own ``<root>/<method>/version_N``).
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
        times = [t for t in map(_mtime, (run / "checkpoints").glob("*.ckpt")) if t is not None] if run.is_dir() else []
        if times and (newest is None or max(times) > newest[0]):
            newest = (max(times), run)
    return newest[1] if newest else None


def _mtime(path: Path) -> float | None:
    """``path``'s modification time; ``None`` once it is gone (a running ``ModelCheckpoint`` removes old ones)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


LOCK_FILE = ".lock"
"""The lock file in a run directory: held (``flock``) by the process that runs the fit, holding its PID."""


class RunInUseError(RuntimeError):
    """Another process holds the run directory's lock."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        super().__init__(f"{directory} is locked by process {pid}")
        self.directory, self.pid = directory, pid


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock``, held for the life of the fit.

    The kernel releases it when the process exits, however it exits (a kill included), so a lock is never
    stale; ``release`` frees it earlier for a process that runs several fits. The file stays (removing it would
    let two processes lock two different files of the same name) and holds the PID of its last holder. Under
    DDP the process that places the run holds it (rank 0, or the main process of ``ddp_spawn``). Where
    ``fcntl`` does not exist (Windows), nothing is locked.

    Args:
        directory: The run directory (created if missing).

    Raises:
        RunInUseError: Another process holds the lock.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LOCK_FILE
        # Held read-only: a file open for writing for the whole run would keep its filesystem from being remounted.
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            _flock(self._fd)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise RunInUseError(self.directory, _holder(path)) from None
        path.write_text(f"{os.getpid()}\n")  # in place: the lock belongs to this file, not to its name

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _flock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # no flock on this platform
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder(path: Path) -> int | None:
    """The PID written into a lock file, if it can be read."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
