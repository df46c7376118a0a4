"""The bilevel search loop of DARTS (Liu et al., 2019, Alg. 1), for every search space and strategy.

Per training batch ``{"train": ..., "val": ...}``:

1. alpha step on the val batch: the strategy computes dL_val/dalpha (first or second order), the arch
   optimizer (Adam) steps;
2. weight step on the train batch: zero, backward into the weights only, clip, SGD step.

Manual optimization (Lightning's GAN template is the skeleton). The weight scheduler is stepped once per
epoch. The search space carries whatever state it needs between batches (the RNN's hidden states).

Variants of DARTS plug into this one loop through typed arguments (see ``configs/variants/``): the space's
relaxation, edge and derivation; ``regularizers`` of the alpha loss; a ``perturbation`` of the architecture
for the weight step; and ``schedules`` that move a part's coefficient over the epochs.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import MeanMetric

from darts_pl.distributed import broadcast_, configure_cpu_threads
from darts_pl.errors import ConfigurationError, NonFiniteError, check_finite
from darts_pl.modules.resumable import ResumableRNG
from darts_pl.schedules import Schedule
from darts_pl.search.base import LossOutput, SearchSpace
from darts_pl.strategies import ArchStrategy, FirstOrder
from darts_pl.strategies.base import grads_or_zeros
from darts_pl.strategies.perturbation import ArchPerturbation
from darts_pl.strategies.regularizers import ArchRegularizer

SCHEDULE_KEY = "darts_pl.schedules"
PERTURBATION_KEY = "darts_pl.perturbation"


def _sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=3e-4)


def _adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)


class LitSearch(ResumableRNG):
    """DARTS architecture search.

    Args:
        space: The supernet (``CNNSearchSpace``, ``RNNSearchSpace``...).
        strategy: How alpha gradients are computed (``FirstOrder`` when omitted, or ``SecondOrder``).
        weight_optimizer: Optimizer of the weights w (the paper: SGD lr 0.025, momentum 0.9, wd 3e-4).
        arch_optimizer: Optimizer of the alphas (the paper: Adam lr 3e-4, betas (0.5, 0.999), wd 1e-3).
        weight_scheduler: Scheduler of the weight optimizer, stepped once per epoch (the paper: cosine to
            0.001 over the search); none keeps the learning rate constant.
        grad_clip: Max global norm of the weight gradient (5 for CNN cells, 0.25 for recurrent ones);
            ``None`` disables clipping. Trainer-level clipping does not apply to manual optimization.
        warmup_epochs: Epochs of weight steps only before alpha steps begin (0 in the paper).
        nonfinite: What a NaN/inf loss, gradient or alpha does: ``"stop"`` the run with a message naming
            the step and the phase (the last checkpoint stays as it was), or ``"skip"`` the batch's
            remaining optimizer steps (counted in ``nonfinite/skipped``).
        regularizers: Terms of the architecture alone added to the alpha loss (β-decay, zero-one, Dirichlet).
        perturbation: Edge weights for the weight step (SDARTS's random or adversarial perturbation); none
            trains the weights at the relaxation's edge weights, as DARTS does.
        schedules: Values that move over the epochs, set at the start of each epoch (GDAS's temperature...).

    Raises:
        ConfigurationError: an unrolled (second-order) strategy with a stochastic relaxation: the finite
            difference would compare passes that each draw another sample.

    Note:
        The random-number generators are saved with every checkpoint (``ResumableRNG``), so a run
        resumed from an epoch-end checkpoint continues exactly as the uninterrupted run would.
    """

    def __init__(
        self,
        space: SearchSpace,
        strategy: ArchStrategy | None = None,
        weight_optimizer: OptimizerCallable = _sgd,
        arch_optimizer: OptimizerCallable = _adam,
        weight_scheduler: LRSchedulerCallable | None = None,
        grad_clip: float | None = 5.0,
        warmup_epochs: int = 0,
        nonfinite: Literal["stop", "skip"] = "stop",
        regularizers: list[ArchRegularizer] | None = None,
        perturbation: ArchPerturbation | None = None,
        schedules: list[Schedule] | None = None,
    ) -> None:
        super().__init__()
        if grad_clip is not None and grad_clip <= 0:
            raise ConfigurationError(f"LitSearch: grad_clip={grad_clip} must be > 0, or null to disable clipping.")
        if warmup_epochs < 0:
            raise ConfigurationError(f"LitSearch: warmup_epochs={warmup_epochs} must be >= 0.")
        self.automatic_optimization = False
        self.space = space
        self.strategy = strategy if strategy is not None else FirstOrder()
        self.weight_optimizer = weight_optimizer
        self.arch_optimizer = arch_optimizer
        self.weight_scheduler = weight_scheduler
        self.grad_clip = grad_clip
        self.warmup_epochs = warmup_epochs
        if nonfinite not in ("stop", "skip"):
            raise ConfigurationError(f"LitSearch: nonfinite={nonfinite!r}; use 'stop' or 'skip'.")
        self.nonfinite = nonfinite
        self.regularizers = list(regularizers or [])
        self.perturbation = perturbation
        self.schedules = list(schedules or [])
        if self.strategy.unrolled and space.relaxation.stochastic:
            raise ConfigurationError(
                f"LitSearch: strategy={type(self.strategy).__name__} (unrolled, second order) cannot be combined with "
                f"the stochastic relaxation {type(space.relaxation).__name__}: its finite difference compares "
                "passes that would each draw another sample. Use strategy FirstOrder (as the method's authors do).")
        for schedule in self.schedules:
            schedule.resolve(self)  # a wrong target fails now, not after the first epoch
        self.skipped_batches = 0
        # Alphas get their gradients from torch.autograd.grad, averaged by the strategy; DDP must not
        # expect them in its reducer (they never receive .grad from the weight step's backward).
        self._ddp_params_and_buffers_to_ignore = [f"space.{name}" for name, _ in space.named_arch_parameters()]
        self.metrics = torch.nn.ModuleDict({
            f"{split}_{name}": MeanMetric() for split in ("train", "arch", "val") for name in ("loss", "acc")
        })

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> Any:
        weight_opt = self.weight_optimizer(self.space.weight_parameters())
        arch_opt = self.arch_optimizer(self.space.arch_parameters())
        if self.weight_scheduler is None:
            return [weight_opt, arch_opt]
        return [weight_opt, arch_opt], [{"scheduler": self.weight_scheduler(weight_opt), "interval": "epoch"}]

    def setup(self, stage: str) -> None:
        configure_cpu_threads(self.trainer)

    def on_fit_start(self) -> None:
        broadcast_(self.space.arch_parameters())  # DDP syncs the weights at wrap time, not the ignored alphas

    # ------------------------------------------------------------------ the loop
    def on_train_epoch_start(self) -> None:
        self.space.reset_state()
        for schedule in self.schedules:
            value = schedule.apply(self, self.current_epoch, self.trainer.max_epochs)
            self.log(f"schedule/{schedule.target}", value, on_step=False, on_epoch=True, sync_dist=False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[SCHEDULE_KEY] = {s.target: float(getattr(*s.resolve(self))) for s in self.schedules}
        if callable(getattr(self.perturbation, "state_dict", None)):
            checkpoint[PERTURBATION_KEY] = self.perturbation.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        for schedule in self.schedules:
            value = checkpoint.get(SCHEDULE_KEY, {}).get(schedule.target)
            if value is not None:
                setattr(*schedule.resolve(self), value)
        if PERTURBATION_KEY in checkpoint and callable(getattr(self.perturbation, "load_state_dict", None)):
            self.perturbation.load_state_dict(checkpoint[PERTURBATION_KEY])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if not (isinstance(batch, dict) and {"train", "val"} <= set(batch)):
            raise ConfigurationError("LitSearch needs batches {'train': ..., 'val': ...}; use a data module in "
                                     "search mode (e.g. --data.init_args.mode search).")
        try:
            self._search_step(batch["train"], batch["val"])
        except NonFiniteError as err:
            where = f"epoch {self.current_epoch}, batch {batch_idx}, global step {self.global_step}"
            if self.nonfinite == "stop":
                raise NonFiniteError(
                    f"{err} ({where}). Stopped; the last checkpoint is left as it was. Lower the learning "
                    "rates or grad_clip, or set --model.init_args.nonfinite skip to skip such batches.") from None
            self.skipped_batches += 1
            for opt in self.optimizers():
                opt.zero_grad(set_to_none=True)
            rank_zero_warn(f"Skipped the rest of a batch: {err} ({where}); {self.skipped_batches} skipped so far.")
        self.log("nonfinite/skipped", float(self.skipped_batches), on_step=False, on_epoch=True, reduce_fx="max")

    def _search_step(self, train_batch: Any, val_batch: Any) -> None:
        weight_opt, arch_opt = self.optimizers()
        with _scaled_lr(weight_opt.optimizer, self.space.lr_scale(train_batch)):
            # Phase 1: alpha step on the val batch.
            if self.current_epoch >= self.warmup_epochs:
                arch_opt.zero_grad(set_to_none=True)
                step = self.strategy.arch_gradients(self.space, train_batch, val_batch,
                                                    weight_opt.optimizer, self.grad_clip)
                check_finite(step.val.loss, "validation loss", "alpha step")
                grads = self._add_regularizers(step.grads)
                for alpha, grad in zip(self.space.arch_parameters(), grads):
                    check_finite(grad, "alpha gradient", "alpha step")
                    alpha.grad = grad  # already averaged over ranks by the strategy
                arch_opt.step()
                self.space.commit("val")
                self._update_metrics("arch", step.val)

            # Phase 2: weight step on the train batch; backward into the weights only.
            weight_opt.zero_grad(set_to_none=True)
            out = self._weight_loss(train_batch)
            check_finite(out.loss, "training loss", "weight step")
            weights = self.space.weight_parameters()
            self.manual_backward(out.loss, inputs=weights)
            grads = [w.grad for w in weights if w.grad is not None]
            check_finite(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))), "weight gradient norm",
                         "weight step")
            if self.grad_clip is not None:
                self.clip_gradients(weight_opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
            weight_opt.step()
            self.space.commit("train")
        self._update_metrics("train", out._replace(loss=out.loss.detach()))

    def _add_regularizers(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Add the gradients of the architecture-only terms of the alpha loss (the same on every rank)."""
        if not self.regularizers:
            return grads
        penalty = sum(regularizer(self.space) for regularizer in self.regularizers)
        self.log("arch/regularizer", penalty.detach(), on_step=False, on_epoch=True, sync_dist=False)
        extra = grads_or_zeros(penalty, self.space.arch_parameters())
        return [g + e.to(g.dtype) for g, e in zip(grads, extra)]

    def _weight_loss(self, train_batch: Any) -> LossOutput:
        """The weight step's loss: at the relaxation's edge weights, or at the perturbation's."""
        if self.perturbation is None:
            return self.space(train_batch, "train", regularized=True)
        weights = self.perturbation.perturb(self.space, train_batch)
        with self.space.fixed_edge_weights(weights):
            return self.space(train_batch, "train", regularized=True)

    def on_train_epoch_end(self) -> None:
        self._log_split("train")  # weight steps
        self._log_split("arch")  # alpha steps (their val batches)
        for name, opt in zip(("weight", "arch"), self.optimizers()):
            self.log(f"lr/{name}", opt.optimizer.param_groups[0]["lr"], sync_dist=False)
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._update_metrics("val", self.space(batch, "val"))

    def on_validation_epoch_start(self) -> None:
        self.space.reset_state()

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")

    # ------------------------------------------------------------------ metrics
    def _update_metrics(self, split: str, out: LossOutput) -> None:
        n = out.target.numel() if out.target is not None else 1
        self.metrics[f"{split}_loss"].update(out.loss.detach(), n)
        if out.preds is not None and out.target is not None and out.preds.dim() == out.target.dim() + 1:
            correct = (out.preds.argmax(-1) == out.target).float()
            self.metrics[f"{split}_acc"].update(correct.mean(), correct.numel())

    def _log_split(self, split: str) -> None:
        prefix = split
        loss, acc = self.metrics[f"{split}_loss"], self.metrics[f"{split}_acc"]
        if loss.update_count:
            value = loss.compute()
            self.log(f"{prefix}/loss", value, prog_bar=prefix != "train")
            if getattr(self.space, "task", "") == "language_model":
                self.log(f"{prefix}/ppl", torch.exp(value.clamp(max=50)), prog_bar=True)
            loss.reset()
        if acc.update_count:
            self.log(f"{prefix}/acc", acc.compute(), prog_bar=True)
            acc.reset()


@contextlib.contextmanager
def _scaled_lr(optimizer: torch.optim.Optimizer, scale: float) -> Iterator[None]:
    """Multiply every group's learning rate by ``scale`` for one step (the RNN's variable length)."""
    if scale == 1.0:
        yield
        return
    base = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * scale
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr
