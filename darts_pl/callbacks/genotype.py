"""``GenotypeCheckpoint``: the derived genotype of every search epoch, as JSON and in the log."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from darts_pl import genotypes
from darts_pl.callbacks.rundir import run_dir


class GenotypeCheckpoint(Callback):
    """Write ``genotypes/epoch_NNN.json`` after every training epoch and ``genotype.json`` at the end.

    The final ``genotype.json`` is what the training configs take as ``--model.genotype PATH``. Files are
    written by rank 0 only, atomically. The epoch at which the genotype last changed is kept in
    ``stable_since`` and logged as ``genotype/stable_since``.

    Args:
        dirpath: Where to write; the logger's run directory (or the trainer's root dir) when omitted.
        verbose: Print the genotype every epoch.
    """

    def __init__(self, dirpath: str | None = None, verbose: bool = True) -> None:
        self.dirpath = dirpath
        self.verbose = verbose
        self.last: Any = None
        self.stable_since = 0

    def _dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else run_dir(trainer)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        genotype = pl_module.space.genotype()
        epoch = trainer.current_epoch
        if genotype != self.last:
            self.last, self.stable_since = genotype, epoch
        pl_module.log("genotype/stable_since", float(self.stable_since), rank_zero_only=True)
        if trainer.is_global_zero:
            genotypes.save(genotype, self._dir(trainer) / "genotypes" / f"epoch_{epoch:03d}.json")
            if self.verbose:
                rank_zero_info(f"Epoch {epoch} genotype (unchanged since epoch {self.stable_since}): {genotype}")

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            path = genotypes.save(pl_module.space.genotype(), self._dir(trainer) / "genotype.json")
            rank_zero_info(f"Final genotype written to {path}")

    @override
    def state_dict(self) -> dict[str, Any]:
        last = genotypes.to_dict(self.last) if self.last is not None else None
        return {"last": last, "stable_since": self.stable_since}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        last = state_dict.get("last")
        self.last = genotypes.from_dict(last) if last is not None else None
        self.stable_since = int(state_dict.get("stable_since", 0))
