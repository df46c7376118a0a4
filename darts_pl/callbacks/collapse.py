"""``SkipConnectEarlyStop``: stop a search before it collapses into skip connections (DARTS+ rule).

DARTS searched for long enough drifts towards parameter-free ops: skip connections win the normal cell
and the derived network is shallow and weak (Liang et al., "DARTS+: Improved Differentiable Architecture
Search with Early Stopping", 2019, arXiv 1909.06035, Sec. 3). Their first criterion stops the search as
soon as the derived normal cell holds two or more skip connections; the genotype of that epoch is the
result. The count is the genotype's own (:meth:`~darts_pl.genotypes.CellGenotype.collapse_counts`: the normal
cell of a DARTS genotype, the NAS-Bench-201 cell, the identities of a recurrent cell, or a kind's own), which
``ArchitectureMonitor`` logs as ``collapse/<cell>/num_skip_connect`` every epoch.
"""
from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from darts_pl.errors import ConfigurationError
from darts_pl.search.base import space_of


class SkipConnectEarlyStop(Callback):
    """Stop the search when a watched cell of the derived genotype (the normal cell of a DARTS genotype: its
    ``collapse_cells``) holds at least ``num_skip_connects`` skip connections.

    Checked after every training epoch, on the genotype ``GenotypeCheckpoint`` writes for that epoch (list
    this callback after it, so that epoch's files are written first); the fit then ends as usual and
    ``genotype.json`` is the genotype of the stopping epoch. The reason is printed and kept in ``reason``.

    Args:
        num_skip_connects: Stop at this many skip connections in the normal cell (2 in DARTS+).
        min_epochs: Never stop before this many epochs have run.

    Raises:
        ConfigurationError: ``num_skip_connects < 1`` or ``min_epochs < 0``; at setup, a module without a search
            space, or a genotype kind that names no cell to watch.

    Example::

        trainer = L.Trainer(callbacks=[GenotypeCheckpoint(), SkipConnectEarlyStop(num_skip_connects=2, min_epochs=10)])
    """

    def __init__(self, num_skip_connects: int = 2, min_epochs: int = 0) -> None:
        if num_skip_connects < 1:
            raise ConfigurationError(f"SkipConnectEarlyStop: num_skip_connects={num_skip_connects} must be >= 1 "
                                     "(DARTS+ stops at 2).")
        if min_epochs < 0:
            raise ConfigurationError(f"SkipConnectEarlyStop: min_epochs={min_epochs} must be >= 0.")
        self.num_skip_connects = num_skip_connects
        self.min_epochs = min_epochs
        self.stopped_epoch: int | None = None
        self.reason: str | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        space = space_of(pl_module)
        if space is None:
            raise ConfigurationError(f"SkipConnectEarlyStop watches a search, but {type(pl_module).__name__} has no "
                                     "search space; remove the callback from this run.")
        genotype = space.genotype()
        if not genotype.collapse_cells:
            raise ConfigurationError(f"SkipConnectEarlyStop: the {genotype.kind} genotype of this search names no "
                                     "cell to count skip connections in (collapse_cells); remove the callback.")

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        space = space_of(pl_module)
        assert space is not None
        counts = space.genotype().collapse_counts()  # {cell: {"num_skip_connect": n, ...}}
        cell, count = max(((c, v["num_skip_connect"]) for c, v in counts.items()), key=lambda item: item[1])
        collapsed = count >= self.num_skip_connects and epoch + 1 >= self.min_epochs
        # The genotype is the same on every rank; agreeing explicitly keeps ranks in step regardless.
        collapsed = trainer.strategy.reduce_boolean_decision(collapsed, all=False)
        if not collapsed:
            return
        trainer.should_stop = True
        self.stopped_epoch = epoch
        self.reason = (f"SkipConnectEarlyStop: stopping the search after epoch {epoch}: the derived {cell} cell "
                       f"holds {count} skip connections (num_skip_connects={self.num_skip_connects}, the DARTS+ "
                       f"collapse rule); its genotype is the result.")
        rank_zero_info(self.reason)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"stopped_epoch": self.stopped_epoch, "reason": self.reason}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stopped_epoch = state_dict.get("stopped_epoch")
        self.reason = state_dict.get("reason")
