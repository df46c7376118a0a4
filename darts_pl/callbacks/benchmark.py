"""``BenchmarkLookup``: what NAS-Bench-201 / NATS-Bench say the cell derived after each search epoch scores.

A search on the NAS-Bench-201 space (:class:`darts_pl.search.NB201SearchSpace`) derives one of the benchmark's
15,625 cells every epoch; the benchmark holds that cell's accuracy after full training. This callback looks the cell
up in the user's benchmark file (:class:`darts_pl.tabular.TabularBenchmark`: the NATS-Bench topology archive
``NATS-tss-v1_0-3ffb9-simple/`` is the fastest; ``NAS-Bench-201-v1_[01]-*.pth`` works too) after every training
epoch and at the end of the fit, as the benchmark's authors do in their searches (``api.query_by_arch(genotype,
"200")`` after each epoch, AutoDL-Projects ``exps/NAS-Bench-201-algos/DARTS-V1.py``), with the numbers of the
paper's Table 5 (:data:`darts_pl.tabular.TABLE5`: last epoch of the 200-epoch schedule, mean over trials, percent):

=============================================  ========================================================
key (every logger)                             what
=============================================  ========================================================
``benchmark/cifar10-valid/train_acc``          trained on CIFAR-10's 25k train half: accuracy on it
``benchmark/cifar10-valid/valid_acc``          ... on the 25k valid half (``x-valid``; Table 5's CIFAR-10 validation)
``benchmark/cifar10/train_acc``                trained on all 50k CIFAR-10 training images: accuracy on them
``benchmark/cifar10/test_acc``                 ... on the 10k test images (``ori-test``; Table 5's CIFAR-10 test)
``benchmark/cifar100/{train,valid,test}_acc``  CIFAR-100: training set; ``x-valid``, ``x-test`` (5k test images each)
``benchmark/ImageNet16-120/{...}_acc``         ImageNet16-120: training set; ``x-valid``, ``x-test`` (3k images each)
=============================================  ========================================================

The values of an epoch are logged at the step of that epoch's other monitors (the search iteration that ended it,
:func:`darts_pl.callbacks.media.log_step`). The cell derived at the end of the fit is the last epoch's unless the
fit stopped inside an epoch; then it is logged too, at the step where the fit stopped.

``benchmark.json`` in the run directory (atomic, rank 0, rewritten after every epoch and at the end; read it with
:func:`darts_pl.tabular.load_benchmark_history`) holds ``benchmark`` (path, kind, hp, number of architectures),
``splits`` (each split's set name in the benchmark) and ``split_descriptions``, ``epochs`` (one record per epoch:
``epoch``, ``step``, ``arch``, ``index``, ``accuracy`` ``{dataset: {split: percent}}``, ``trials`` ``{dataset: trials
averaged}``) and ``final`` (the record at the end of the fit, ``null`` before).

Under DDP rank 0 opens the benchmark and looks cells up; every rank receives the same record (a broadcast) and logs
the same values, and a failure on rank 0 stops every rank with the same error. What was looked up is callback state,
so a resumed run continues the same history.

Example::

    darts-pl fit --config configs/search_nb201_cifar10.yaml --config configs/benchmark_nb201.yaml \\
        --trainer.callbacks.init_args.path ~/.torch/NATS-tss-v1_0-3ffb9-simple
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from darts_pl.atomic import atomic_write
from darts_pl.callbacks import media
from darts_pl.callbacks.rundir import run_dir
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import NB201_PRIMITIVES, NB201Genotype
from darts_pl.search.base import space_of
from darts_pl.tabular import HISTORY_FILE, Hp, TabularBenchmark, benchmark_arch_str, history_document, metric_keys


class BenchmarkLookup(Callback):
    """Look the derived NAS-Bench-201 cell up in the benchmark after every search epoch and at the end; log the
    accuracies and keep them in ``benchmark.json`` (the module docstring lists the keys and the file).

    Args:
        path: Required. The benchmark: a NATS-Bench topology archive directory (``NATS-tss-v1_0-3ffb9-simple/`` or
            ``-full/``), the single file ``NATS-tss-v1_0-3ffb9.pickle.pbz2``, or ``NAS-Bench-201-v1_0-e61699.pth``
            / ``NAS-Bench-201-v1_1-096897.pth``. Nothing is downloaded.
        hp: The benchmark's training schedule: ``"200"`` epochs (the paper's tables) or ``"12"``.
        dirpath: Where ``benchmark.json`` goes; the run directory when omitted.
        verbose: Print each epoch's lookup in one line.

    Raises:
        ConfigurationError: In ``__init__``, no ``path`` or a bad ``hp``; at setup, a missing benchmark path or a
            file of another kind (one line each), or a search space whose genotype is not a NAS-Bench-201 cell (or
            whose ops or nodes the benchmark does not hold); after an epoch, a cell the benchmark does not hold.

    Example::

        trainer = L.Trainer(callbacks=[GenotypeCheckpoint(), BenchmarkLookup("~/.torch/NATS-tss-v1_0-3ffb9-simple")])
    """

    def __init__(self, path: str | None = None, hp: Hp = "200", dirpath: str | None = None,
                 verbose: bool = True) -> None:
        if not path:
            raise ConfigurationError("BenchmarkLookup needs the benchmark's path: --trainer.callbacks.init_args.path "
                                     "PATH after --config configs/benchmark_nb201.yaml (NATS-tss-v1_0-3ffb9-simple/, "
                                     "NATS-tss-v1_0-3ffb9.pickle.pbz2 or NAS-Bench-201-v1_[01]-*.pth).")
        if hp not in ("12", "200"):
            raise ConfigurationError(f"BenchmarkLookup: hp={hp!r} is not a NAS-Bench-201 training schedule; use "
                                     "'200' (200 epochs, the paper's tables) or '12' (quoted in YAML: hp: \"200\").")
        self.path = path
        self.hp = hp
        self.dirpath = dirpath
        self.verbose = verbose
        self.history: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self.benchmark: TabularBenchmark | None = None
        self._described: dict[str, Any] = {"path": str(Path(path).expanduser()), "hp": hp}

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(hp=self.hp)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        _check_space(pl_module)
        if self.benchmark is None:
            self._described = self._on_rank_zero(trainer, self._open)

    def _open(self) -> dict[str, Any]:
        try:
            self.benchmark = TabularBenchmark(self.path, self.hp)  # type: ignore[arg-type]
        except ConfigurationError as err:  # name the setting: the message is the module's, for any caller
            raise ConfigurationError(f"BenchmarkLookup path (--trainer.callbacks.init_args.path): {err}") from None
        return self.benchmark.describe()

    def _on_rank_zero(self, trainer: L.Trainer, action: Callable[[], Any]) -> Any:
        """``action()`` on rank 0, its result (or its ``ConfigurationError``) on every rank."""
        result, error, failure = None, None, None
        if trainer.is_global_zero:
            try:
                result = action()
            except Exception as err:  # the other ranks wait in the broadcast: tell them, then stop together
                failure = err
                error = (isinstance(err, ConfigurationError), f"{type(err).__name__} on rank 0: {err}")
        result, error = trainer.strategy.broadcast((result, error), src=0)
        if failure is not None:
            raise failure
        if error is not None:
            raise (ConfigurationError if error[0] else RuntimeError)(error[1])
        return result

    def _lookup(self, trainer: L.Trainer, arch: str) -> dict[str, Any]:
        """The benchmark's record of ``arch`` (from the history when it was looked up before), on every rank."""
        known = next((r for r in [*reversed(self.history), self.final] if r is not None and r["arch"] == arch), None)
        if known is not None:
            return {key: known[key] for key in ("arch", "index", "hp", "accuracy", "trials")}
        return self._on_rank_zero(trainer, lambda: self.benchmark.query(arch))  # type: ignore[union-attr]

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        record = {"epoch": epoch, "step": media.log_step(trainer),
                  **self._lookup(trainer, benchmark_arch_str(pl_module.space.genotype()))}
        self.history = [r for r in self.history if r["epoch"] < epoch] + [record]  # a resumed epoch is redone
        self.final = None
        for key, value in metric_keys(record).items():  # the same on every rank (broadcast): no reduction needed
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=False)
        self._save(trainer)
        if self.verbose:
            rank_zero_info(f"Epoch {epoch} cell in the benchmark: {_summary(record)}")

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        last = self.history[-1] if self.history else None
        arch = benchmark_arch_str(pl_module.space.genotype())
        record = {"epoch": trainer.current_epoch, "step": media.log_step(trainer), **self._lookup(trainer, arch)}
        if last is not None and last["arch"] == arch and last["step"] == record["step"]:
            record["epoch"] = last["epoch"]  # the last epoch's cell: logged with it already
        elif trainer.is_global_zero:  # the fit stopped inside an epoch: a cell no epoch logged
            for logger in trainer.loggers:
                logger.log_metrics(metric_keys(record), step=record["step"])
                logger.save()
        self.final = record
        self._save(trainer)
        if self.verbose:
            rank_zero_info(f"Final cell in the benchmark: {_summary(record)}")

    def _save(self, trainer: L.Trainer) -> None:
        directory = Path(self.dirpath) if self.dirpath else run_dir(trainer)  # every rank: log_dir broadcasts
        if trainer.is_global_zero:
            document = history_document(self._described, self.history, self.final)
            atomic_write(directory / HISTORY_FILE, json.dumps(document, indent=1) + "\n")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "final": self.final, "benchmark": self._described}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.final = state_dict.get("final")


def _check_space(pl_module: L.LightningModule) -> None:
    """Refuse, before the first epoch, a search whose cells the benchmark cannot hold."""
    space = space_of(pl_module)
    genotype = space.genotype() if space is not None else None
    if genotype is None or genotype.kind != NB201Genotype.kind:
        kind = f"{genotype.kind} genotypes" if genotype is not None else "no genotype (no search space)"
        raise ConfigurationError(
            f"BenchmarkLookup looks cells up in NAS-Bench-201, but {type(pl_module).__name__} derives {kind}; search "
            "with darts_pl.search.NB201SearchSpace, or remove the callback from this run.")
    unknown = [op for op in space.primitives if op not in NB201_PRIMITIVES]
    if unknown or len(genotype.nodes) != 3:
        raise ConfigurationError(
            f"BenchmarkLookup: the search space derives cells the benchmark does not hold (ops {unknown or 'known'}, "
            f"{len(genotype.nodes) + 1} nodes); NAS-Bench-201 cells have 4 nodes and the ops "
            f"{', '.join(NB201_PRIMITIVES)}.")


def _summary(record: dict[str, Any]) -> str:
    """One line: index, the Table 5 accuracies."""
    parts = [f"{dataset} {split} {value:.2f}" for dataset, splits in record["accuracy"].items()
             for split, value in splits.items() if split != "train" and value is not None]
    return f"#{record['index']} {record['arch']}: " + ", ".join(parts) + f" (percent, hp={record['hp']})"
