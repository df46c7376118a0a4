"""``GenotypeCheckpoint``: the derived genotype of every search epoch, as JSON, as cell diagrams and in the log.

Files (run directory, rank 0, atomic): ``genotypes/epoch_NNN.json`` and ``genotypes/epoch_NNN_<cell>.png``
every epoch, and ``genotypes/epoch_NNN_metrics.json`` when a regulariser reports values of the genotype (a cost
regulariser: ``{"cost/derived_flops": ...}``, also shown in the epoch's line); ``genotype.json`` and
``genotype_<cell>.png`` at the end of the fit. ``<cell>`` is ``normal`` and ``reduce`` for convolutional genotypes,
``recurrent`` for recurrent ones, ``cell`` for NAS-Bench-201 cells (whose JSON also holds the benchmark's
architecture string, ``nb201``, which the log prints).

Logged every epoch: ``genotype/stable_since`` (scalar, every logger); ``genotype/text`` (the cell listing
and its JSON: ``wandb.Html`` on W&B, text in TensorBoard); ``genotype/<cell>`` (the cell diagram, an image
on W&B and TensorBoard).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import override

from darts_pl import genotypes
from darts_pl.atomic import atomic_write
from darts_pl.callbacks import media
from darts_pl.callbacks.rundir import run_dir
from darts_pl.errors import ConfigurationError
from darts_pl.viz import Engine, describe, graphviz_available, save_cell_diagram


class GenotypeCheckpoint(Callback):
    """Write ``genotypes/epoch_NNN.json`` after every training epoch and ``genotype.json`` at the end.

    The final ``genotype.json`` is what the training configs take as ``--model.genotype PATH``. Files are
    written by rank 0 only, atomically. The epoch at which the genotype last changed is kept in
    ``stable_since`` and logged as ``genotype/stable_since``.

    Each epoch's genotype also goes to the loggers as text and, with ``diagrams``, as a PNG diagram per
    cell (see the module docstring for the keys). A diagram that fails to draw is reported and skipped;
    it never stops the search.

    Args:
        dirpath: Where to write; the logger's run directory (or the trainer's root dir) when omitted.
        verbose: Print the genotype every epoch.
        diagrams: Draw, save and log a cell diagram per cell every epoch and at the end.
        diagram_engine: ``"auto"`` (graphviz when its ``dot`` binary is installed, else matplotlib),
            ``"matplotlib"`` or ``"graphviz"``.

    Raises:
        ConfigurationError: ``diagram_engine="graphviz"`` without graphviz's ``dot`` on the PATH.
    """

    def __init__(self, dirpath: str | None = None, verbose: bool = True, diagrams: bool = True,
                 diagram_engine: Engine = "auto") -> None:
        if diagram_engine not in ("auto", "matplotlib", "graphviz"):
            raise ConfigurationError(f"GenotypeCheckpoint: diagram_engine={diagram_engine!r} is unknown; "
                                     "use 'auto', 'matplotlib' or 'graphviz'.")
        if diagrams and diagram_engine == "graphviz" and not graphviz_available():
            raise ConfigurationError("GenotypeCheckpoint: diagram_engine='graphviz' but graphviz's `dot` binary is "
                                     "not on the PATH; install graphviz or use diagram_engine='auto'.")
        self.dirpath = dirpath
        self.verbose = verbose
        self.diagrams = diagrams
        self.diagram_engine = diagram_engine
        self.last: Any = None
        self.stable_since = 0
        self.result: tuple[genotypes.CellGenotype, str] | None = None

    def select(self, genotype: genotypes.CellGenotype, reason: str) -> None:
        """Make ``genotype`` the fit's result: ``genotype.json`` at the end of the fit is that cell instead of the
        current one, and the final line gives ``reason`` (DARTS-ES returns the genotype of an earlier epoch). Not saved
        with the callback's state: the caller selects again after a resume."""
        self.result = (genotype, reason)

    def _dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else run_dir(trainer)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A fixed dirpath is shared by every run pointed at it: never overwrite another run's result.
        final = Path(self.dirpath) / "genotype.json" if self.dirpath else None
        if final is not None and final.exists() and trainer.ckpt_path is None:
            raise ConfigurationError(
                f"GenotypeCheckpoint: {str(final)!r} already holds the result of an earlier search; resume that "
                "run with --ckpt_path last, or choose another GenotypeCheckpoint dirpath (or leave it unset to "
                "write into the run directory).")

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        genotype = pl_module.space.genotype()
        epoch = trainer.current_epoch
        if self.last is None or not genotype.same_cells(self.last):  # a `none` edge naming another input is no change
            self.stable_since = epoch
        self.last = genotype
        pl_module.log("genotype/stable_since", float(self.stable_since), rank_zero_only=True)
        directory = self._dir(trainer)  # on every rank: trainer.log_dir is a collective under DDP
        if not trainer.is_global_zero:
            return
        genotypes.save(genotype, directory / "genotypes" / f"epoch_{epoch:03d}.json")
        values = genotype_metrics(pl_module, genotype)
        if values:
            path = directory / "genotypes" / f"epoch_{epoch:03d}_metrics.json"
            atomic_write(path, json.dumps(values, indent=2) + "\n")
        shown = "".join(f"; {name} {value:.6g}" for name, value in values.items())
        if self.verbose:
            status = "changed" if self.stable_since == epoch else f"unchanged since epoch {self.stable_since}"
            rank_zero_info(f"Epoch {epoch} genotype ({status}{shown}): {genotype}")
        header = f"epoch {epoch} (genotype unchanged since epoch {self.stable_since}{shown})"
        media.log_text(trainer, "genotype/text", f"{header}\n\n{describe(genotype)}\n\n{genotypes.dumps(genotype)}")
        pictures = self._draw(genotype, directory / "genotypes" / f"epoch_{epoch:03d}")
        media.log_images(trainer, {f"genotype/{cell}": str(path) for cell, path in pictures.items()})

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        directory = self._dir(trainer)
        if trainer.is_global_zero:
            genotype, reason = self.result if self.result is not None else (pl_module.space.genotype(), "")
            path = genotypes.save(genotype, directory / "genotype.json")
            self._draw(genotype, directory / "genotype")
            rank_zero_info(f"Final genotype{f' ({reason})' if reason else ''} written to {path}: {genotype}")
            empty = genotype.empty_cells()
            if empty:
                rank_zero_warn(f"The derived {' and '.join(empty)} cell keeps no op on any edge (every edge is "
                               "'none': no weight reached the derivation's threshold); a network built from it "
                               "passes nothing through those cells. Search longer, or lower the threshold.")

    def _draw(self, genotype: genotypes.CellGenotype, stem: Path) -> dict[str, Path]:
        """``<stem>_<cell>.png`` per cell; a drawing failure is reported, never raised."""
        if not self.diagrams:
            return {}
        pictures = {}
        for cell in genotype.cell_names:
            try:
                pictures[cell] = save_cell_diagram(genotype, f"{stem}_{cell}.png", cell, engine=self.diagram_engine)
            except Exception as err:  # a picture is not worth stopping a search for
                rank_zero_warn(f"GenotypeCheckpoint: could not draw the {cell} cell to {stem}_{cell}.png: {err}")
        return pictures

    @override
    def state_dict(self) -> dict[str, Any]:
        last = genotypes.to_dict(self.last) if self.last is not None else None
        return {"last": last, "stable_since": self.stable_since}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        last = state_dict.get("last")
        self.last = genotypes.from_dict(last) if last is not None else None
        self.stable_since = int(state_dict.get("stable_since", 0))


def genotype_metrics(pl_module: L.LightningModule, genotype: genotypes.CellGenotype) -> dict[str, float]:
    """What the search loop's regularizers report of ``genotype`` (a cost regulariser: its cost), by name."""
    space = getattr(pl_module, "space", None)
    values: dict[str, float] = {}
    for regularizer in getattr(pl_module, "regularizers", None) or []:
        values.update(regularizer.genotype_metrics(space, genotype))
    return values
