"""DARTS-ES and DARTS-ADA (Zela et al., "Understanding and Robustifying Differentiable Architecture Search", ICLR
2020, Sec. 5): stop the search, or raise its regularisation, when the largest eigenvalue of the alpha-val Hessian
rises too fast.

Both read the eigenvalues :class:`~darts_pl.callbacks.CurvatureMonitor` computes (list one; its ``every_n_epochs`` is
the authors' ``report_freq_hessian``) and apply the authors' rule (:func:`darts_pl.curvature.early_stop_check`, from
``EVLocalAvg`` in automl/RobustDARTS ``src/utils.py``): after each eigenvalue, compare the local average of the last
``window`` eigenvalues with the one ``delta`` evaluations earlier; a ratio above ``factor`` names the epoch at the
centre of the earlier window. The rule is never checked at the last epoch (as in the authors' ``train_search.py``).

* :class:`DartsEarlyStop` (their ``--early_stop 1``) stops the fit, and the search's result, ``genotype.json``, is
  the genotype derived after the NAMED epoch, not the last one (``GenotypeCheckpoint`` writes it at the end of the fit
  and says so in its final line). ``simulate=True`` (their ``--early_stop 2``) records the decision and searches on.
* :class:`DartsAda` (their ``--early_stop 3``) rolls the search back to the named epoch, restoring what it was at the
  end of that epoch (weights, alphas, batch-norm statistics, both optimizers, the learning-rate schedule, the parts'
  states, the random generators, and the other callbacks' records), multiplies the weight decay by ``mul_factor`` up
  to ``max_weight_decay``, and continues from the next epoch; at the maximum a trigger changes nothing. Epochs keep
  their numbers (the learning rate, schedules and the rule see the search's epoch, as in the authors' code); the
  loggers' step axis keeps counting search iterations, so an undone stretch stays visible beside its replacement.

Both write ``genotype_darts_es.json`` (rank 0, atomic): the genotype DARTS-ES returns (for DARTS-ADA, at its first
trigger, as the authors log "the architecture at the early stop epoch"), and add their decisions to the monitor's
``curvature.json`` (``events``). Their state (the genotypes of the evaluated epochs, the decision, the rollbacks) is in
every checkpoint, and the weight-decay level is in the weight optimizer's, so a killed run resumed with ``--ckpt_path
last`` continues to the uninterrupted run's result.

Deviations from the authors' code: the regularisation DARTS-ADA raises is the weight decay only (the supernet here has
no drop path, the other knob of their code); the last raise stops at ``max_weight_decay`` (theirs multiplies on and
never reaches the end condition ``round(log(max) / log(wd), 1) == 1`` when the factor overshoots the maximum: for their
settings, 3e-4 × 10 × 10 = 0.03, the two agree); a rollback restores the random generators too (their loaders draw
new shuffles), so the new branch differs from the undone one only by the weight decay.
"""
from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, Timer
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from darts_pl import genotypes
from darts_pl.callbacks.curvature import CurvatureMonitor
from darts_pl.callbacks.genotype import GenotypeCheckpoint as ResultWriter  # writes the run's genotype.json
from darts_pl.callbacks.rundir import run_dir
from darts_pl.curvature import StopDecision, early_stop_check
from darts_pl.errors import ConfigurationError
from darts_pl.search.base import SearchSpace, space_of

ES_GENOTYPE = "genotype_darts_es.json"
SNAPSHOTS = "rollback"


class _EigenvalueRule(Callback):
    """The DARTS-ES rule over a ``CurvatureMonitor``'s eigenvalues, with the genotypes of the evaluated epochs."""

    def __init__(self, window: int = 5, delta: int = 4, factor: float = 1.3, es_start_epoch: int = 10,
                 verbose: bool = True) -> None:
        owner = type(self).__name__
        for name, value, low in (("window", window, 1), ("delta", delta, 1), ("es_start_epoch", es_start_epoch, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigurationError(f"{owner}: {name}={value!r} must be an integer >= {low}.")
        if not (isinstance(factor, (int, float)) and factor > 0 and math.isfinite(factor)):
            raise ConfigurationError(f"{owner}: factor={factor!r} must be a number > 0 (the authors stop when the "
                                     "local average grows by more than 1.3).")
        self.window = window
        self.delta = delta
        self.factor = factor
        self.es_start_epoch = es_start_epoch
        self.verbose = verbose
        self.genotypes: dict[int, dict[str, Any]] = {}
        self.decisions: list[dict[str, Any]] = []
        self.monitor: CurvatureMonitor | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        owner = type(self).__name__
        if space_of(pl_module) is None:
            raise ConfigurationError(f"{owner} watches a search, but {type(pl_module).__name__} has no search space; "
                                     "remove the callback from this run.")
        monitors = [cb for cb in trainer.callbacks if isinstance(cb, CurvatureMonitor)]
        if not monitors:
            raise ConfigurationError(f"{owner} decides on the eigenvalues of darts_pl.callbacks.CurvatureMonitor, "
                                     "which this run does not list; use the overlay configs/collapse/darts_es.yaml (or "
                                     "darts_ada.yaml), which brings both.")
        rules = [cb for cb in trainer.callbacks if isinstance(cb, _EigenvalueRule)]
        if len(rules) > 1:
            names = ", ".join(type(cb).__name__ for cb in rules)
            raise ConfigurationError(f"{owner}: the run lists {names}; keep one (DartsAda also records the genotype "
                                     "DARTS-ES would return, in genotype_darts_es.json).")
        self.monitor = monitors[0]

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> StopDecision | None:
        """The rule after this epoch's eigenvalue (``None`` when the monitor did not evaluate, at the last epoch, or
        while the rule cannot decide); records the epoch's genotype."""
        assert self.monitor is not None
        record = self.monitor.evaluate(trainer, pl_module)  # computed now if the monitor's hook has not run yet
        if record is None:
            return None
        space = space_of(pl_module)
        assert space is not None
        epoch = trainer.current_epoch
        self.genotypes[epoch] = genotypes.to_dict(space.genotype())
        if trainer.max_epochs is not None and epoch == trainer.max_epochs - 1:
            return None
        epochs, values = self.monitor.curve()
        decision = early_stop_check(epochs, values, window=self.window, delta=self.delta, factor=self.factor,
                                    es_start_epoch=self.es_start_epoch)
        if decision is not None:
            self.decisions.append(vars(decision).copy())
        return decision

    def genotype_of(self, epoch: int) -> genotypes.CellGenotype:
        return genotypes.from_dict(self.genotypes[epoch])

    def write_es_genotype(self, trainer: L.Trainer, decision: StopDecision, kind: str, stopped: bool) -> str:
        """Write the named epoch's genotype as ``genotype_darts_es.json``, add the event; returns the message."""
        assert self.monitor is not None
        genotype = self.genotype_of(decision.named_epoch)
        directory = run_dir(trainer)
        if trainer.is_global_zero:
            genotypes.save(genotype, directory / ES_GENOTYPE)
        event = {"kind": kind, **vars(decision), "stopped": stopped}
        self.monitor.add_event(trainer, event)
        return (f"the local average of the largest Hessian eigenvalue is {decision.ratio:.3g} times what it was "
                f"{self.delta} evaluations before (> factor {self.factor:g}) at epoch {decision.epoch}")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"genotypes": copy.deepcopy(self.genotypes), "decisions": copy.deepcopy(self.decisions)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.genotypes = {int(k): v for k, v in state_dict.get("genotypes", {}).items()}
        self.decisions = list(state_dict.get("decisions", []))


class DartsEarlyStop(_EigenvalueRule):
    """DARTS-ES: stop the search when the local average of the largest Hessian eigenvalue rises by more than ``factor``
    over ``delta`` evaluations; the result is the genotype of the epoch the rule names (the module docstring has the
    rule). The defaults are the authors' (``src/search/args.py`` and ``scripts/*_search.sh``: window 5, delta 4,
    factor 1.3, es_start_epoch 10, with an eigenvalue every 2 epochs: ``CurvatureMonitor(every_n_epochs=2)``).

    Args:
        window: Eigenvalues in a local average.
        delta: Evaluations between the two local averages compared.
        factor: Stop when their ratio exceeds it.
        es_start_epoch: The earliest epoch the rule may name.
        simulate: Record the decision (``genotype_darts_es.json``, the event, one line) and search on, as the authors'
            ``--early_stop 2``: the curve of a full search and the epoch DARTS-ES would stop at, in one run.
        verbose: Print the decision.

    Raises:
        ConfigurationError: A setting out of range; at setup, no ``CurvatureMonitor`` in the run, another early-stop
            rule, or no search space.
    """

    def __init__(self, window: int = 5, delta: int = 4, factor: float = 1.3, es_start_epoch: int = 10,
                 simulate: bool = False, verbose: bool = True) -> None:
        super().__init__(window, delta, factor, es_start_epoch, verbose)
        self.simulate = simulate
        self.stopped: dict[str, Any] | None = None
        self.reason: str | None = None

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._select(trainer)  # a run resumed after its stop: the result is still the named epoch's genotype

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped is not None and not self.simulate:
            trainer.should_stop = True  # resumed from the checkpoint of the stopping epoch: nothing left to search

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        decision = self.check(trainer, pl_module)
        if decision is None or not decision.stop or self.stopped is not None:
            return
        self.stopped = vars(decision).copy()
        what = self.write_es_genotype(trainer, decision, "early_stop", stopped=not self.simulate)
        if self.simulate:
            self.reason = (f"DartsEarlyStop (simulated): {what}; DARTS-ES would stop here and return the genotype of "
                           f"epoch {decision.named_epoch} ({ES_GENOTYPE}); the search goes on.")
        else:
            trainer.should_stop = True
            self._select(trainer)
            self.reason = (f"DartsEarlyStop: stopping the search after epoch {decision.epoch}: {what}; the result is "
                           f"the genotype of epoch {decision.named_epoch}.")
        if self.verbose:
            rank_zero_info(self.reason)

    def _select(self, trainer: L.Trainer) -> None:
        if self.stopped is None or self.simulate:
            return
        named = int(self.stopped["named_epoch"])
        for callback in trainer.callbacks:
            if isinstance(callback, ResultWriter):
                callback.select(self.genotype_of(named), f"epoch {named}, named by DartsEarlyStop at epoch "
                                                         f"{self.stopped['epoch']}")

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped is None or self.simulate:
            return
        if not any(isinstance(cb, ResultWriter) for cb in trainer.callbacks):
            directory = run_dir(trainer)  # no GenotypeCheckpoint to write the result: write it here
            if trainer.is_global_zero:
                path = genotypes.save(self.genotype_of(int(self.stopped["named_epoch"])), directory / "genotype.json")
                rank_zero_info(f"DartsEarlyStop: the genotype of epoch {self.stopped['named_epoch']} written to {path}")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stopped": copy.deepcopy(self.stopped), "reason": self.reason}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.stopped = copy.deepcopy(state_dict.get("stopped"))
        self.reason = state_dict.get("reason")


class DartsAda(_EigenvalueRule):
    """DARTS-ADA: on the DARTS-ES trigger, roll the search back to the epoch the rule names and multiply the weight
    decay by ``mul_factor`` (up to ``max_weight_decay``), then continue (the module docstring has what is restored).
    The defaults are those of the authors' DARTS-ADA runs (``scripts/DARTS-ADA_search.sh``: ``--mul_factor 10
    --max_weight_decay 0.03 --extra_rollback_epochs 0`` from weight decay 3e-4, with the rule's window 5, delta 4,
    factor 1.3, es_start_epoch 10 and an eigenvalue every 2 epochs; ``args.py`` defaults to 3 and 0.0243).

    The state at the end of every epoch the rule may name is saved in ``<run>/rollback/epoch_NNN.ckpt`` (a full
    checkpoint, rank 0), taken where this callback runs in that epoch's end; the rollback restores it at the same place
    in the triggering epoch's end, so what runs after this callback (the module's end of epoch: its learning-rate step;
    callbacks listed later; the checkpoint of the epoch) runs as it did after the named epoch, and the checkpoint
    written then already holds the rolled-back search (a resumed run continues from it like from any epoch). The files
    of undone epochs go at a rollback, and all of them at the end of the fit unless ``keep_snapshots``. Under DDP rank 0
    writes them and every rank reads them back: the run directory must be on a file system all ranks see (as for
    ``--ckpt_path``).

    Args:
        window: Eigenvalues in a local average.
        delta: Evaluations between the two local averages compared.
        factor: Trigger when their ratio exceeds it.
        es_start_epoch: The earliest epoch the rule may name.
        mul_factor: Factor on the weight decay at each rollback.
        max_weight_decay: The largest weight decay; a trigger at it changes nothing.
        extra_rollback_epochs: Roll back this many epochs before the named one.
        keep_snapshots: Keep ``rollback/`` after the fit.
        verbose: Print each rollback.

    Raises:
        ConfigurationError: A setting out of range; at setup, no ``CurvatureMonitor``, another early-stop rule, or a
            model whose weight optimizer cannot be found (it must hold the search space's weights); at a rollback, a
            snapshot that is missing.
    """

    def __init__(self, window: int = 5, delta: int = 4, factor: float = 1.3, es_start_epoch: int = 10,
                 mul_factor: float = 10.0, max_weight_decay: float = 0.03, extra_rollback_epochs: int = 0,
                 keep_snapshots: bool = False, verbose: bool = True) -> None:
        super().__init__(window, delta, factor, es_start_epoch, verbose)
        if not (isinstance(mul_factor, (int, float)) and mul_factor > 1 and math.isfinite(mul_factor)):
            raise ConfigurationError(f"DartsAda: mul_factor={mul_factor!r} must be a number > 1 (the authors: 10).")
        if not (isinstance(max_weight_decay, (int, float)) and max_weight_decay > 0):
            raise ConfigurationError(f"DartsAda: max_weight_decay={max_weight_decay!r} must be > 0 (the authors: "
                                     "0.03).")
        if not isinstance(extra_rollback_epochs, int) or extra_rollback_epochs < 0:
            raise ConfigurationError(f"DartsAda: extra_rollback_epochs={extra_rollback_epochs!r} must be an integer "
                                     ">= 0.")
        self.mul_factor = mul_factor
        self.max_weight_decay = max_weight_decay
        self.extra_rollback_epochs = extra_rollback_epochs
        self.keep_snapshots = keep_snapshots
        self.rollbacks: list[dict[str, Any]] = []
        self.first_trigger: dict[str, Any] | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and self.es_start_epoch - self.extra_rollback_epochs < 0:
            raise ConfigurationError(f"DartsAda: extra_rollback_epochs={self.extra_rollback_epochs} could roll back "
                                     f"before epoch 0 (es_start_epoch={self.es_start_epoch}); lower it.")

    # ------------------------------------------------------------------ the weight optimizer
    @staticmethod
    def weight_optimizer(trainer: L.Trainer, space: SearchSpace) -> torch.optim.Optimizer:
        first = space.weight_parameters()[0]
        for optimizer in trainer.optimizers:
            if any(p is first for group in optimizer.param_groups for p in group["params"]):
                return optimizer
        raise ConfigurationError("DartsAda raises the weight decay of the optimizer of the search space's weights, "
                                 "and no optimizer of this run holds them.")

    def weight_decay(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        space = space_of(pl_module)
        assert space is not None
        return float(self.weight_optimizer(trainer, space).param_groups[0]["weight_decay"])

    def at_maximum(self, weight_decay: float) -> bool:
        return weight_decay >= self.max_weight_decay * (1 - 1e-9)

    # ------------------------------------------------------------------ snapshots
    def snapshot_path(self, trainer: L.Trainer, epoch: int) -> Path:
        return run_dir(trainer) / SNAPSHOTS / f"epoch_{epoch:03d}.ckpt"

    def wants_snapshot(self, trainer: L.Trainer, epoch: int, weight_decay: float) -> bool:
        """Whether the end of ``epoch`` may become a rollback target (the rule may name ``epoch + extra``)."""
        assert self.monitor is not None
        named = epoch + self.extra_rollback_epochs
        last = trainer.max_epochs is not None and named >= trainer.max_epochs - 1
        return (named >= self.es_start_epoch and not last and self.monitor.due(named, trainer.max_epochs)
                and not self.at_maximum(weight_decay))

    # ------------------------------------------------------------------ the trigger
    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        decision = self.check(trainer, pl_module)
        level = self.weight_decay(trainer, pl_module)
        pl_module.log("ada/weight_decay", level, on_step=False, on_epoch=True, sync_dist=False)
        if decision is not None and decision.stop:
            if self.first_trigger is None:
                self.first_trigger = vars(decision).copy()
                self.write_es_genotype(trainer, decision, "early_stop", stopped=False)
            if not self.at_maximum(level):
                self.roll_back(trainer, pl_module, decision, level)
                return
            if self.verbose:
                rank_zero_info(f"DartsAda: the rule triggers at epoch {decision.epoch} (ratio {decision.ratio:.3g}), "
                               f"but the weight decay is at its maximum {self.max_weight_decay:g}; searching on.")
        if self.wants_snapshot(trainer, trainer.current_epoch, level):
            trainer.save_checkpoint(self.snapshot_path(trainer, trainer.current_epoch), weights_only=False)

    def roll_back(self, trainer: L.Trainer, pl_module: L.LightningModule, decision: StopDecision,
                  level: float) -> None:
        """Restore the end of the target epoch, raise the weight decay, make the next epoch target + 1."""
        assert self.monitor is not None
        target = decision.named_epoch - self.extra_rollback_epochs
        raised = min(level * self.mul_factor, self.max_weight_decay)
        path = self.snapshot_path(trainer, target)
        if not path.is_file():
            raise ConfigurationError(f"DartsAda: the state of epoch {target} to roll back to ({path}) is missing; was "
                                     "the run directory moved or pruned? Resume from a checkpoint written before "
                                     f"epoch {target + 1}, or remove DartsAda.")
        restore_search(trainer, pl_module, torch.load(path, map_location="cpu", weights_only=False))
        space = space_of(pl_module)
        assert space is not None
        for group in self.weight_optimizer(trainer, space).param_groups:
            group["weight_decay"] = raised
        set_epoch(trainer, target)
        self.monitor.roll_back(trainer, target)
        self.genotypes = {e: g for e, g in self.genotypes.items() if e <= target}
        rollback = {**vars(decision), "target": target, "weight_decay": [level, raised]}
        self.rollbacks.append(rollback)
        self.monitor.add_event(trainer, {**rollback, "kind": "rollback", "named_epoch": target})
        self._prune(trainer, target)
        if self.verbose:
            rank_zero_info(
                f"DartsAda: the local average of the largest Hessian eigenvalue is {decision.ratio:.3g} times what "
                f"it was {self.delta} evaluations before (> factor {self.factor:g}) at epoch {decision.epoch}: rolled "
                f"back to the end of epoch {target}, "
                f"weight decay {level:g} -> {raised:g} (rollback {len(self.rollbacks)}); the search continues with "
                f"epoch {target + 1}.")

    def _prune(self, trainer: L.Trainer, target: int) -> None:
        """Remove the snapshots of undone epochs (rank 0)."""
        folder = run_dir(trainer) / SNAPSHOTS
        if trainer.is_global_zero and folder.is_dir():
            for path in folder.glob("epoch_*.ckpt"):
                if int(path.stem.split("_")[1]) > target:
                    path.unlink(missing_ok=True)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        folder = run_dir(trainer) / SNAPSHOTS
        if not self.keep_snapshots and trainer.is_global_zero and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rollbacks": copy.deepcopy(self.rollbacks),
                "first_trigger": copy.deepcopy(self.first_trigger)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.rollbacks = list(state_dict.get("rollbacks", []))
        self.first_trigger = copy.deepcopy(state_dict.get("first_trigger"))


def restore_search(trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
    """Put the search back into the state ``checkpoint`` holds, in the running fit: the module (weights, alphas,
    buffers, parts' states; its ``on_load_checkpoint`` gives every rank its random generators back), the optimizers,
    the learning-rate schedulers, and the other callbacks' states (not checkpointing, timers or the curvature
    callbacks, which keep their own account of the rollback). The loops' counters are not touched."""
    pl_module.on_load_checkpoint(checkpoint)
    pl_module.load_state_dict(checkpoint["state_dict"])
    for optimizer, state in zip(trainer.optimizers, checkpoint["optimizer_states"]):
        optimizer.load_state_dict(state)
    for config, state in zip(trainer.lr_scheduler_configs, checkpoint.get("lr_schedulers", [])):
        config.scheduler.load_state_dict(state)
    states = checkpoint.get("callbacks", {})
    for callback in trainer.callbacks:
        if isinstance(callback, (Checkpoint, Timer, CurvatureMonitor, _EigenvalueRule)):
            continue
        callback.on_load_checkpoint(trainer, pl_module, checkpoint)
        if callback.state_key in states:
            callback.load_state_dict(copy.deepcopy(states[callback.state_key]))


def set_epoch(trainer: L.Trainer, epoch: int) -> None:
    """Make the epoch that is ending (called from ``on_train_epoch_end``) number ``epoch``, so the next one is
    ``epoch + 1`` (its samplers then shuffle as after ``epoch``). The fit loop's totals keep counting."""
    current = trainer.fit_loop.epoch_progress.current
    current.ready = current.started = current.processed = epoch + 1
    current.completed = epoch  # the loop marks the epoch completed after the hooks
