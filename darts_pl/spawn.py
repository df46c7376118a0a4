"""``ddp_spawn`` that returns: rank 0's result reaches the main process through a file, not through a pipe.

Lightning's spawn launcher (``lightning.pytorch.strategies.launchers.multiprocessing``) sends rank 0's result
back through a ``SimpleQueue``, whose pipe holds 64 KiB on Linux, and the main process reads it only after
every worker has exited. The result carries ``trainer.callback_metrics``, serialised: a search logs one scalar
per op and edge (``alpha/<cell>/edge_NN/<op>``), 241 of them on the 3-cell quickstart supernet, about 70 KB.
Rank 0 then blocks in ``put`` on the full pipe, never exits, and the main process waits for it forever.

:class:`FileResultLauncher` writes rank 0's result to a temporary file and puts only a small token into the
queue; unpickling the token in the main process reads the file (and removes it). Nothing else changes: the
main process gets the same ``_WorkerOutput`` (best checkpoint path, trainer state, callback metrics, weights).
The workers also log through ``tqdm.write``, as ``darts-pl`` does (``cli.log_above_progress_bars``).
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from typing_extensions import override


def _read_result(path: str) -> Any:
    """Rank 0's result, read (and removed) in the main process when the token is unpickled."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)  # written by rank 0 of this run, into a directory only this user can read
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


class _ResultFile:
    """A token for a result in a file: it unpickles into the result itself."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _read_result, (self.path,)


class _ThroughFile:
    """Stands in for the launcher's return queue in a worker: ``put`` writes the object to a file first."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def put(self, obj: Any) -> None:
        directory = tempfile.mkdtemp(prefix="darts_pl_result_")  # mode 0700
        path = os.path.join(directory, "result.pkl")
        with open(path, "wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.queue.put(_ResultFile(path))


class FileResultLauncher(_MultiProcessingLauncher):
    """Lightning's spawn launcher, with rank 0's result passed through a file (see the module docstring)."""

    @override
    def _wrapping_function(self, process_idx: int, trainer: Trainer | None, function: Any, args: Any, kwargs: Any,
                           return_queue: Any, global_states: Any = None) -> None:
        from darts_pl.cli import log_above_progress_bars  # the worker runs the fit, and its progress bar

        with log_above_progress_bars():
            super()._wrapping_function(process_idx, trainer, function, args, kwargs, _ThroughFile(return_queue),
                                       global_states)


def use_file_results(trainer: Trainer) -> None:
    """Give ``trainer`` a :class:`FileResultLauncher` if it would use Lightning's own spawn launcher."""
    launcher = getattr(trainer.strategy, "_launcher", None)
    if type(launcher) is _MultiProcessingLauncher:
        replacement = FileResultLauncher(trainer.strategy, start_method=launcher._start_method)
        trainer.strategy._launcher = replacement
