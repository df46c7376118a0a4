"""``EpochScalars``: the validation scalars of every epoch as a file in the run directory.

A study's report reads a run's per-epoch scalars from its own directory: TensorBoard's event files or a CSV
logger's ``metrics.csv``. A run logged to W&B only (or to no logger) leaves neither, so the study runner adds this
callback to such cells (``--trainer.callbacks+=darts_pl.study.EpochScalars``). It writes, after every validation
(rank 0, atomically):

``epoch_scalars.json``: ``{"format": "darts_pl.epoch_scalars/1", "epochs": [{"epoch": 0, "step": 10,
"wall_time": 1.7e9, "metrics": {"val/acc": 0.41, "val/loss": 1.9, ...}}, ...]}``

``step`` is the search iteration the scalars are logged at (:func:`darts_pl.callbacks.media.log_step`), and
``metrics`` every scalar in ``trainer.callback_metrics`` then. A resumed run drops the epochs it repeats.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from darts_pl.atomic import atomic_write
from darts_pl.callbacks.media import log_step
from darts_pl.callbacks.rundir import run_dir

FILENAME = "epoch_scalars.json"
FORMAT = "darts_pl.epoch_scalars/1"


class EpochScalars(Callback):
    """Write ``epoch_scalars.json`` (module docstring) after every validation of a fit.

    Args:
        dirpath: Where the file goes; the run directory when omitted.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath
        self.epochs: list[dict[str, Any]] = []

    def _path(self, trainer: L.Trainer) -> Path:
        return (Path(self.dirpath) if self.dirpath else run_dir(trainer)) / FILENAME

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = self._path(trainer)  # every rank: run_dir broadcasts
        try:
            self.epochs = json.loads(path.read_text()).get("epochs", [])
        except (OSError, ValueError):
            self.epochs = []
        self.epochs = [e for e in self.epochs if e.get("epoch", 0) < trainer.current_epoch]  # a resume repeats them

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        path = self._path(trainer)
        if not trainer.is_global_zero:
            return
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                   if isinstance(value, (int, float)) or (torch.is_tensor(value) and value.numel() == 1)}
        epoch = trainer.current_epoch
        self.epochs = [e for e in self.epochs if e["epoch"] != epoch]
        self.epochs.append({"epoch": epoch, "step": log_step(trainer), "wall_time": time.time(), "metrics": metrics})
        atomic_write(path, json.dumps({"format": FORMAT, "epochs": self.epochs}, indent=1) + "\n")
