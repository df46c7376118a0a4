"""``CurvatureMonitor``: the largest eigenvalue of the Hessian of the validation loss in the architecture, every few
search epochs, in every logger and in ``curvature.json``.

Zela et al. (ICLR 2020) show that this eigenvalue grows while DARTS collapses into parameter-free cells; their
``Analyzer`` (automl/RobustDARTS ``src/search/analyze.py``), called at the end of every ``report_freq_hessian``-th epoch
and of the last one, builds ``∇²_α L_val`` explicitly from one validation batch with the network in training mode and
both cells' alphas together, plus the alpha optimizer's L2 term. This monitor computes the same quantity from exact
Hessian-vector products (:class:`darts_pl.curvature.ArchHessian`), by Lanczos or power iteration, at the same epochs.

Deviations from the authors, on purpose:

* the batches are FIXED: the first ``num_batches`` alpha-val batches the search draws (each rank its own under DDP),
  kept for the whole run and saved in the checkpoint, so the curve moves with the architecture, not with the batch
  (the authors take the last random validation batch of each epoch);
* every tensor of ``space.arch`` takes part (the alphas of every cell type, and PC-DARTS's edge-normalisation tensors
  when present): what the alpha optimizer steps;
* the evaluation changes nothing: batch-norm running statistics and every random generator are as before (the
  authors' forward updates the running statistics).

Logged at the step of the epoch's other monitors (:func:`darts_pl.callbacks.media.log_step`), to every logger:
``arch/hessian_max_eig``. ``curvature.json`` in the run directory (atomic, rank 0, rewritten after every evaluation;
read it with :func:`darts_pl.curvature.load_curvature`) holds ``settings``, ``records`` (``epoch``, ``step``,
``max_eig``, ``iterations``, ``converged``, ``seconds``, ``branch``, ``active``; ``spectrum`` with ``spectrum=True``)
and ``events`` (early stops and rollbacks that :class:`~darts_pl.callbacks.DartsEarlyStop` and
:class:`~darts_pl.callbacks.DartsAda` decide from these values).

Under DDP every rank keeps the batches of its own shard, each Hessian-vector product is averaged over the ranks (the
Hessian of the global batch, as the strategies average their gradients), and every rank logs rank 0's result.

Example::

    darts-pl fit --config configs/search_cifar.yaml --config configs/collapse/curvature.yaml
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning_utilities.core.apply_func import apply_to_collection
from typing_extensions import override

from darts_pl.atomic import atomic_write
from darts_pl.callbacks import media
from darts_pl.callbacks.rundir import run_dir
from darts_pl.curvature import CURVATURE_FILE, Method, Mode, curvature_document, hessian_eigen
from darts_pl.errors import ConfigurationError
from darts_pl.search.base import SearchSpace, space_of


class CurvatureMonitor(Callback):
    """Compute and log the largest eigenvalue of ``∇²_α L_val`` after every ``every_n_epochs``-th training epoch and
    the last one (see the module docstring for what is computed, logged and written).

    Args:
        every_n_epochs: Evaluate after epochs 0, n, 2n, ... and the last epoch (the authors' search scripts: 2).
        num_batches: Alpha-val batches the Hessian averages over (the authors: 1).
        iterations: Most products with the Hessian per evaluation (per run of power iteration).
        method: ``"lanczos"`` (Lanczos with full reorthogonalisation; the largest eigenvalue in few products) or
            ``"power"`` (power iteration, shifted when the eigenvalue of largest magnitude is negative).
        tol: Relative tolerance of the eigenvalue.
        spectrum: Build the explicit Hessian and keep every eigenvalue (``eigvalsh``) in the records; one product per
            architecture entry, refused above ``max_spectrum_size`` entries.
        max_spectrum_size: The largest architecture ``spectrum`` accepts.
        samples: For a space whose forward draws noise (``space.stochastic``), the number of fixed draws the Hessian is
            averaged over; such a space is refused without it. See :mod:`darts_pl.curvature` for what the value is.
        mode: ``"train"``: batch statistics (the search's own forward, the authors' choice); ``"eval"``: running
            statistics, no dropout.
        include_weight_decay: Add the alpha optimizer's L2 coefficient to the Hessian (``+ wd · I``), as the authors'
            ``Analyzer`` does; decoupled decay (AdamW) is no term of the loss and is never added.
        seed: Seed of the Lanczos/power start vector and of the draws (the same at every evaluation).
        dirpath: Where ``curvature.json`` goes; the run directory when omitted.
        verbose: Print each evaluation in one line.

    Raises:
        ConfigurationError: A setting out of range; at setup, a model without a search space, a stochastic space
            without ``samples``, ``spectrum`` on an architecture above ``max_spectrum_size``.
    """

    def __init__(self, every_n_epochs: int = 1, num_batches: int = 1, iterations: int = 30,
                 method: Method = "lanczos", tol: float = 1e-4, spectrum: bool = False, max_spectrum_size: int = 1024,
                 samples: int | None = None, mode: Mode = "train", include_weight_decay: bool = True, seed: int = 0,
                 dirpath: str | None = None, verbose: bool = True) -> None:
        for name, value in (("every_n_epochs", every_n_epochs), ("num_batches", num_batches),
                            ("iterations", iterations), ("max_spectrum_size", max_spectrum_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"CurvatureMonitor: {name}={value!r} must be an integer >= 1.")
        if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 1):
            raise ConfigurationError(f"CurvatureMonitor: samples={samples!r} must be an integer >= 1 (draws to average "
                                     "over), or null for a deterministic space.")
        if method not in ("lanczos", "power"):
            raise ConfigurationError(f"CurvatureMonitor: method={method!r} is unknown; use 'lanczos' or 'power'.")
        if mode not in ("train", "eval"):
            raise ConfigurationError(f"CurvatureMonitor: mode={mode!r} is unknown; use 'train' (batch statistics, as "
                                     "the authors) or 'eval' (running statistics).")
        if not tol > 0:
            raise ConfigurationError(f"CurvatureMonitor: tol={tol!r} must be > 0 (e.g. 1e-4).")
        self.every_n_epochs = every_n_epochs
        self.num_batches = num_batches
        self.iterations = iterations
        self.method = method
        self.tol = tol
        self.spectrum = spectrum
        self.max_spectrum_size = max_spectrum_size
        self.samples = samples
        self.mode = mode
        self.include_weight_decay = include_weight_decay
        self.seed = seed
        self.dirpath = dirpath
        self.verbose = verbose
        self.batches: list[Any] = []
        self.frozen = False
        self.records: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.branch = 0
        self._evaluated_at: int | None = None
        self._weight_decay: list[float] = []

    # ------------------------------------------------------------------ setup
    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        space = space_of(pl_module)
        if space is None:
            raise ConfigurationError(f"CurvatureMonitor watches a search, but {type(pl_module).__name__} has no search "
                                     "space; remove the callback from this run.")
        if space.stochastic and self.samples is None:
            raise ConfigurationError(
                "CurvatureMonitor: the search space draws noise in every forward "
                f"({', '.join(space.noise_sources())}), so the Hessian of its loss is a random matrix; set samples=N "
                "to average it over N fixed draws (--trainer.callbacks.init_args.samples 8).")
        numel = sum(a.numel() for a in space.arch_parameters())
        if self.spectrum and numel > self.max_spectrum_size:
            raise ConfigurationError(
                f"CurvatureMonitor: spectrum=true builds the explicit Hessian, and this architecture has {numel} "
                f"entries (> max_spectrum_size={self.max_spectrum_size}); set spectrum false (the largest eigenvalue "
                "by Lanczos) or raise max_spectrum_size.")

    # ------------------------------------------------------------------ the fixed batches
    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.frozen or len(self.batches) >= self.num_batches:
            return
        if not (isinstance(batch, dict) and "val" in batch):
            raise ConfigurationError("CurvatureMonitor needs search batches {'train': ..., 'val': ...} (the Hessian "
                                     "is that of the alpha-val loss); use a data module in search mode.")
        self.batches.append(apply_to_collection(batch["val"], torch.Tensor, lambda t: t.detach().clone()))

    # ------------------------------------------------------------------ evaluation
    def due(self, epoch: int, max_epochs: int | None) -> bool:
        """Whether epoch ``epoch`` ends with an evaluation (every ``every_n_epochs``-th, and the last)."""
        last = max_epochs is not None and max_epochs > 0 and epoch == max_epochs - 1
        return epoch % self.every_n_epochs == 0 or last

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """This epoch's record: computed on the first call at an epoch that is :meth:`due`, the same record on later
        calls (the early-stop callbacks call it, in whatever order the callbacks are listed); ``None`` when not due."""
        step = media.iterations(trainer)
        if self._evaluated_at == step:
            return self.records[-1]
        epoch = trainer.current_epoch
        if not self.due(epoch, trainer.max_epochs):
            return None
        space = space_of(pl_module)
        assert space is not None
        if not self.batches:
            raise ConfigurationError("CurvatureMonitor: no alpha-val batch was seen before the evaluation "
                                     "(limit_train_batches 0?); the Hessian needs at least one.")
        if not self.frozen and len(self.batches) < self.num_batches:
            rank_zero_warn(f"CurvatureMonitor: only {len(self.batches)} alpha-val batches came before the first "
                           f"evaluation (num_batches={self.num_batches}); every evaluation uses those.")
        self.frozen = True
        record = self._compute(trainer, space, epoch, media.log_step(trainer))
        self.records.append(record)
        self._evaluated_at = step
        pl_module.log("arch/hessian_max_eig", record["max_eig"], on_step=False, on_epoch=True, sync_dist=False)
        self.save(trainer)
        if self.verbose:
            rank_zero_info(f"Epoch {epoch}: largest eigenvalue of the alpha-val Hessian {record['max_eig']:.6g} "
                           f"({record['iterations']} products, {record['seconds']:.1f} s"
                           f"{'' if record['converged'] else ', not converged'})")
        return record

    def _compute(self, trainer: L.Trainer, space: SearchSpace, epoch: int, step: int) -> dict[str, Any]:
        batches = [move_data_to_device(b, space.arch_parameters()[0].device) for b in self.batches]
        self._weight_decay = arch_weight_decay(trainer, space) if self.include_weight_decay else []
        start = time.perf_counter()
        eigen = hessian_eigen(space, batches, method=self.method, iterations=self.iterations, tol=self.tol,
                              spectrum=self.spectrum, mode=self.mode, samples=self.samples, seed=self.seed,
                              weight_decay=self._weight_decay or 0.0)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, "step": step, "max_eig": eigen.max_eig, "iterations": eigen.iterations,
                  "converged": eigen.converged, "seconds": seconds, "branch": self.branch, "active": True}
        if eigen.spectrum is not None:
            record["spectrum"] = eigen.spectrum
        # Every rank computed the same numbers; rank 0's are what every rank logs and decides on.
        return trainer.strategy.broadcast(record, src=0)

    # ------------------------------------------------------------------ what the early-stop callbacks read and add
    def curve(self) -> tuple[list[int], list[float]]:
        """Epochs and eigenvalues of the search's current line (records a rollback undid left out)."""
        active = [r for r in self.records if r["active"]]
        return [r["epoch"] for r in active], [r["max_eig"] for r in active]

    def add_event(self, trainer: L.Trainer, event: dict[str, Any]) -> None:
        self.events.append(dict(event))
        self.save(trainer)

    def roll_back(self, trainer: L.Trainer, epoch: int) -> None:
        """The search continues from the end of ``epoch``: later records leave the current line."""
        for record in self.records:
            if record["active"] and record["epoch"] > epoch:
                record["active"] = False
        self.branch += 1
        self.save(trainer)

    def settings(self) -> dict[str, Any]:
        return {"every_n_epochs": self.every_n_epochs, "num_batches": len(self.batches) or self.num_batches,
                "batch_sizes": [_batch_size(b) for b in self.batches], "iterations": self.iterations,
                "method": "explicit" if self.spectrum else self.method, "tol": self.tol, "samples": self.samples,
                "mode": self.mode, "weight_decay": self._weight_decay, "seed": self.seed}

    def save(self, trainer: L.Trainer) -> Path:
        directory = Path(self.dirpath) if self.dirpath else run_dir(trainer)  # every rank: it broadcasts
        path = directory / CURVATURE_FILE
        if trainer.is_global_zero:
            document = curvature_document(self.settings(), self.records, self.events)
            atomic_write(path, json.dumps(document, indent=1) + "\n")
        return path

    # ------------------------------------------------------------------ checkpoints
    @override
    def state_dict(self) -> dict[str, Any]:
        batches = [apply_to_collection(b, torch.Tensor, lambda t: t.detach().cpu()) for b in self.batches]
        return {"batches": batches, "frozen": self.frozen, "records": copy.deepcopy(self.records),
                "events": copy.deepcopy(self.events), "branch": self.branch}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches = list(state_dict.get("batches", []))
        self.frozen = bool(state_dict.get("frozen", False))
        self.records = copy.deepcopy(list(state_dict.get("records", [])))
        self.events = copy.deepcopy(list(state_dict.get("events", [])))
        self.branch = int(state_dict.get("branch", 0))


def arch_weight_decay(trainer: L.Trainer, space: SearchSpace) -> list[float]:
    """The L2 coefficient the alpha optimizer adds to each architecture tensor's gradient (0 for decoupled decay)."""
    owners = {id(p): (opt, group) for opt in trainer.optimizers for group in opt.param_groups for p in group["params"]}
    decay = []
    for alpha in space.arch_parameters():
        opt, group = owners.get(id(alpha), (None, {}))
        decoupled = isinstance(opt, torch.optim.AdamW) or bool(group.get("decoupled_weight_decay", False))
        decay.append(0.0 if decoupled else float(group.get("weight_decay", 0.0) or 0.0))
    return decay


def _batch_size(batch: Any) -> int:
    tensors: list[torch.Tensor] = []
    apply_to_collection(batch, torch.Tensor, tensors.append)
    return int(tensors[0].shape[0]) if tensors else 0
