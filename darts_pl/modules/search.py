"""The bilevel search loop of DARTS (Liu et al., 2019, Alg. 1), for every search space and strategy.

Per training batch ``{"train": ..., "val": ...}``:

1. alpha step on the val batch: the strategy computes dL_val/dalpha (first or second order), the arch
   optimizer (Adam) steps;
2. weight step on the train batch: zero, backward into the weights only, clip, SGD step.

Manual optimization (Lightning's GAN template is the skeleton). The weight scheduler is stepped once per
epoch. The search space carries whatever state it needs between batches (the RNN's hidden states).

Variants of DARTS plug into this one loop through typed arguments (see ``configs/variants/``): the space's
relaxation, edge and derivation; ``regularizers`` of the alpha loss; a ``perturbation`` of the architecture
for the weight step; ``weight_terms`` added to the weight step's gradient; and ``schedules`` that move a part's
coefficient over the epochs.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchmetrics import MeanMetric

from darts_pl.callbacks.media import iterations
from darts_pl.checkpoints import upgrade_checkpoint
from darts_pl.distributed import broadcast_, configure_cpu_threads
from darts_pl.errors import ConfigurationError, NonFiniteError
from darts_pl.finite import FiniteChecks
from darts_pl.modules.resumable import ResumableRNG
from darts_pl.parts import ArchPerturbation, ArchRegularizer, Schedule, WeightStepTerm
from darts_pl.search.base import LossOutput, SearchSpace
from darts_pl.strategies import ArchStrategy, FirstOrder
from darts_pl.strategies.base import grads_or_zeros

PARTS = ("space", "strategy", "weight_optimizer", "arch_optimizer", "weight_scheduler", "regularizers",
         "perturbation", "schedules", "weight_terms")
"""Constructor arguments that are objects (modules, optimizer factories), not plain settings."""


def _built_by_cli() -> bool:
    """Whether LightningCLI is building this module: it then hands ``save_hyperparameters`` the resolved config."""
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    return _given_hyperparameters.get() is not None


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
            remaining optimizer steps (counted in ``nonfinite/skipped``). Skipping never lets a non-finite
            value into the model: a skipped batch's batch-norm statistics are rolled back, and a step whose
            result is non-finite (weights, alphas or optimizer state) stops the run in either mode. Each
            phase is checked once, with one host sync, agreed over all ranks under DDP.
        max_consecutive_skips: With ``nonfinite="skip"``, the batches in a row that may be skipped; one more
            stops the run as ``"stop"`` would (a model that fails every batch is not recovering).
        regularizers: Terms of the architecture alone added to the alpha loss (β-decay, zero-one, Dirichlet).
        perturbation: Edge weights for the weight step (SDARTS's random or adversarial perturbation); none
            trains the weights at the relaxation's edge weights, as DARTS does.
        schedules: Values that move over the epochs, set at the start of each epoch (GDAS's temperature...).
        weight_terms: Terms added to the weight step's gradient before clipping (Λ-DARTS's alignment of the cells'
            gradients); they see the step's own backward and may evaluate its loss again.
        method: The method's name (``darts``, ``gdas``...; each overlay in ``configs/variants/`` sets it): runs are
            filed under it (``<root>/<method>/version_N``) and the run's first line names it.

    Raises:
        ConfigurationError: an unrolled (second-order) strategy with a space that draws noise (a stochastic
            relaxation, skip dropout, RobustDARTS's ``noise`` op): the finite difference would compare passes that
            each draw another sample, mask or noise; likewise a weight-step term that evaluates the step's loss again.
            A weight-step term the space cannot run. A schedule that would set a value outside its target's range
            (checked before the fit).

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
        max_consecutive_skips: int = 5,
        regularizers: list[ArchRegularizer] | None = None,
        perturbation: ArchPerturbation | None = None,
        schedules: list[Schedule] | None = None,
        method: str = "darts",
        weight_terms: list[WeightStepTerm] | None = None,
    ) -> None:
        super().__init__()
        # A checkpoint says how to rebuild its module. Built by darts-pl (LightningCLI), the hyperparameters are
        # the resolved config: class paths and init args of every part, so load_from_checkpoint(path) needs
        # nothing else. Built in Python, the parts are objects that no config describes: only the plain
        # settings are kept, and load_from_checkpoint takes the parts as arguments.
        self.save_hyperparameters(ignore=None if _built_by_cli() else list(PARTS))
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
        if max_consecutive_skips < 0:
            raise ConfigurationError(f"LitSearch: max_consecutive_skips={max_consecutive_skips} must be >= 0.")
        self.max_consecutive_skips = max_consecutive_skips
        self.consecutive_skips = 0
        self.regularizers = torch.nn.ModuleList(regularizers or [])
        self.perturbation = perturbation
        self.schedules = torch.nn.ModuleList(schedules or [])
        self.weight_terms = torch.nn.ModuleList(weight_terms or [])
        if not isinstance(method, str) or not method or not all(c.isalnum() or c in "-_." for c in method):
            raise ConfigurationError(f"LitSearch: method={method!r} names the run's directory; use letters, digits, "
                                     "'-', '_' or '.' (e.g. darts, gdas, pc_darts).")
        self.method = method
        for schedule in self.schedules:
            schedule.bind(self)  # a wrong target fails now, not after the first epoch; the target knows it moves
        if self.strategy.unrolled and space.stochastic:
            raise ConfigurationError(
                f"LitSearch: strategy={type(self.strategy).__name__} (unrolled, second order) cannot be combined with "
                f"parts that draw noise ({', '.join(space.noise_sources())}): its finite difference compares passes "
                "that would each draw another sample or mask. Use strategy FirstOrder (as the methods' authors do).")
        for term in self.weight_terms:
            term.check_space(space)
            if term.reruns_forward and space.stochastic:
                raise ConfigurationError(
                    f"LitSearch: the weight-step term {type(term).__name__} evaluates the step's loss again, which "
                    f"cannot be combined with parts that draw noise ({', '.join(space.noise_sources())}): each pass "
                    "would draw another sample or mask. Use a deterministic relaxation (Softmax, Sigmoid).")
        self.skipped_batches = 0
        self._checked_for: L.Trainer | None = None
        # Alphas get their gradients from torch.autograd.grad, averaged by the strategy; DDP must not
        # expect them in its reducer (they never receive .grad from the weight step's backward).
        self._ddp_params_and_buffers_to_ignore = [f"space.{name}" for name, _ in space.named_arch_parameters()]
        self.metrics = torch.nn.ModuleDict({
            f"{split}_{name}": MeanMetric() for split in ("train", "arch", "val") for name in ("loss", "acc")
        })

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> LitSearch:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``. A checkpoint written by ``darts-pl`` carries its config, so the
        path is enough; one of a module built in Python keeps only the plain settings, so pass its parts
        (``space=...``, and ``strategy=...``, the optimizers... to train it further).

        Raises:
            ConfigurationError: The checkpoint describes no search space and ``space`` is not given.
        """
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except TypeError as err:
            if "'space'" not in str(err):
                raise
            raise ConfigurationError(
                f"LitSearch.load_from_checkpoint({str(checkpoint_path)!r}): the checkpoint comes from a LitSearch "
                "built in Python, so it does not say how to build the search space; pass it, e.g. "
                "LitSearch.load_from_checkpoint(path, space=CNNSearchSpace(...)) (runs of darts-pl need only the path)."
            ) from None

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> Any:
        weight_opt = self.weight_optimizer(self.space.weight_parameters())
        arch_opt = self.arch_optimizer(self.space.arch_parameters())
        if self.weight_scheduler is None:
            return [weight_opt, arch_opt]
        return [weight_opt, arch_opt], [{"scheduler": self.weight_scheduler(weight_opt), "interval": "epoch"}]

    def setup(self, stage: str) -> None:
        configure_cpu_threads(self.trainer)
        if stage == "fit" and self._checked_for is not self.trainer:  # darts-pl checked it before writing anything
            self.check_fit(self.trainer)

    def check_fit(self, trainer: L.Trainer) -> None:
        """What can only be checked once the trainer is known (``darts-pl`` calls it before anything is written):
        every value the schedules will set, DDP's unused parameters, alpha steps before the last epoch.

        Raises:
            ConfigurationError: a schedule leaves its target's range; DDP without ``find_unused_parameters`` on a
                space whose steps leave some weights without a gradient.
        """
        self._checked_for = trainer
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
        for schedule in self.schedules:
            schedule.check_values(self, max_epochs)
        strategy = trainer.strategy
        if self.space.unused_parameters and isinstance(strategy, DDPStrategy) and \
                not strategy._ddp_kwargs.get("find_unused_parameters"):
            raise ConfigurationError(
                f"LitSearch: the {type(self.space.edge).__name__} edge runs one sampled op per edge, so the others get "
                "no gradient in a step, which DDP must be told: use --trainer.strategy "
                "ddp_find_unused_parameters_true (or ddp_spawn_find_unused_parameters_true).")
        if max_epochs > 0 and self.warmup_epochs >= max_epochs:
            rank_zero_warn(f"LitSearch: warmup_epochs={self.warmup_epochs} >= trainer.max_epochs={max_epochs}: this "
                           "search takes no alpha step, and its genotype is read off the initial alphas. Lower "
                           "--model.init_args.warmup_epochs or raise --trainer.max_epochs.")

    def on_fit_start(self) -> None:
        broadcast_(self.space.arch_parameters())  # DDP syncs the weights at wrap time, not the ignored alphas
        rank_zero_info(f"darts-pl: method {self.method}: {self.describe()}")

    def describe(self) -> str:
        """One line: the space and its parts, the strategy, the loop's parts (what a run prints at its start)."""
        loop = [f"strategy {self.strategy!r}"]
        loop += [f"regularizer {r!r}" for r in self.regularizers]
        loop += [f"perturbation {self.perturbation!r}"] if self.perturbation is not None else []
        loop += [f"weight term {t!r}" for t in self.weight_terms]
        loop += [f"schedule {s!r}" for s in self.schedules]
        if self.warmup_epochs:
            loop.append(f"{self.warmup_epochs} warm-up epochs")
        return f"{self.space.describe_parts()}; {'; '.join(loop)}"

    # ------------------------------------------------------------------ the loop
    def on_train_epoch_start(self) -> None:
        self.space.reset_state()
        for schedule in self.schedules:
            value = schedule.apply(self, self.current_epoch, self.trainer.max_epochs)
            self.log(f"schedule/{schedule.target}", value, on_step=False, on_epoch=True, sync_dist=False)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Parts keep their state in the model's state_dict; a checkpoint of an earlier release kept some of it
        # under keys of its own: bring it up to date before Lightning loads the state_dict.
        upgrade_checkpoint(self, checkpoint)
        super().on_load_checkpoint(checkpoint)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if not (isinstance(batch, dict) and {"train", "val"} <= set(batch)):
            raise ConfigurationError("LitSearch needs batches {'train': ..., 'val': ...}; use a data module in "
                                     "search mode (e.g. --data.init_args.mode search).")
        buffers = [b.detach().clone() for b in self.space.buffers()] if self.nonfinite == "skip" else None
        try:
            self._search_step(batch["train"], batch["val"])
            self.consecutive_skips = 0
        except NonFiniteError as err:
            self._skip_or_stop(err, batch_idx, buffers)
        self.log("nonfinite/skipped", float(self.skipped_batches), on_step=False, on_epoch=True, reduce_fx="max")

    def _skip_or_stop(self, err: NonFiniteError, batch_idx: int, buffers: list[torch.Tensor] | None) -> None:
        """Skip the rest of the batch (restoring the batch-norm statistics its forwards changed), or stop."""
        where = f"epoch {self.current_epoch}, batch {batch_idx}, global step {self.global_step}"
        self.consecutive_skips += 1
        reason = ""
        if self.nonfinite == "skip" and self.consecutive_skips > self.max_consecutive_skips:
            reason = (f"; {self.consecutive_skips} batches in a row failed "
                      f"(max_consecutive_skips={self.max_consecutive_skips})")
        elif self.nonfinite == "skip" and not err.recoverable:
            reason = "; the step itself made the model non-finite, which skipping cannot repair"
        if self.nonfinite == "stop" or reason:
            raise NonFiniteError(
                f"{err} ({where}){reason}. Stopped; the last checkpoint is left as it was. Lower the learning "
                "rates or grad_clip, or set --model.init_args.nonfinite skip to skip such batches.",
                recoverable=False) from None
        self.skipped_batches += 1
        for opt in self.optimizers():
            opt.zero_grad(set_to_none=True)
        if buffers is not None:
            with torch.no_grad():
                for buffer, saved in zip(self.space.buffers(), buffers):
                    buffer.copy_(saved)
        rank_zero_warn(f"Skipped the rest of a batch: {err} ({where}); {self.skipped_batches} skipped so far.")

    def _search_step(self, train_batch: Any, val_batch: Any) -> None:
        # Each phase's values are checked together when its FiniteChecks block ends: one host sync (and one
        # all-reduce under DDP) per phase, before its optimizer steps, so every rank skips or stops alike.
        weight_opt, arch_opt = self.optimizers()
        skip = self.nonfinite == "skip"
        with _scaled_lr(weight_opt.optimizer, self.space.lr_scale(train_batch)):
            # Phase 1: alpha step on the val batch.
            if self.current_epoch >= self.warmup_epochs:
                arch_opt.zero_grad(set_to_none=True)
                with FiniteChecks("alpha step") as checks:  # also collects the strategy's check_finite calls
                    if skip:  # the previous weight step's result; in stop mode the next loss shows it
                        checks.add_all(_model_state(weight_opt.optimizer), "weights or their optimizer state "
                                       "after the previous weight step", recoverable=False)
                    step = self.strategy.arch_gradients(self.space, train_batch, val_batch,
                                                        weight_opt.optimizer, self.grad_clip)
                    checks.add(step.val.loss, "validation loss")
                    grads = self._add_regularizers(step.grads)
                    checks.add_all(grads, "alpha gradient")
                    if skip:
                        checks.add_all(self.space.buffers(), "batch-norm statistics")
                for alpha, grad in zip(self.space.arch_parameters(), grads):
                    alpha.grad = grad  # already averaged over ranks by the strategy
                arch_opt.step()
                self.space.commit("val")
                self._update_metrics("arch", step.val)

            # Phase 2: weight step on the train batch; backward into the weights only.
            weight_opt.zero_grad(set_to_none=True)
            with FiniteChecks("weight step") as checks:
                # The alpha step's result (a few small tensors): genotypes and files never see a NaN alpha.
                checks.add_all(_model_state(arch_opt.optimizer), "alphas or their optimizer state after the "
                               "alpha step", recoverable=False)
                weights = self.space.weight_parameters()
                out = self._weight_gradients(train_batch, weights)
                checks.add(out.loss, "training loss")
                grads = [w.grad for w in weights if w.grad is not None]
                checks.add(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))), "weight gradient norm")
                if skip:
                    checks.add_all(self.space.buffers(), "batch-norm statistics")
            if self.grad_clip is not None:
                self.clip_gradients(weight_opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
            weight_opt.step()
            self.space.commit("train")
        self._update_metrics("train", out._replace(loss=out.loss.detach()))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Search iterations so far, for checkpoint names ("{iteration}"): trainer.global_step counts the
        # optimizer steps, two per iteration (one in warm-up epochs). Not sent to the loggers: their x axis is it.
        self.log("iteration", float(iterations(self.trainer)), on_step=True, on_epoch=False, logger=False)

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
        with self._weight_step_edges(train_batch):
            return self.space(train_batch, "train", regularized=True)

    @contextlib.contextmanager
    def _weight_step_edges(self, train_batch: Any) -> Iterator[None]:
        """Every forward inside runs at the weight step's edge weights: the relaxation's, or the perturbation's (drawn
        once for the step)."""
        if self.perturbation is None:
            yield
            return
        with self.space.fixed_edge_weights(self.perturbation.perturb(self.space, train_batch)):
            yield

    def _weight_gradients(self, train_batch: Any, weights: Sequence[torch.Tensor],
                          backward: Callable[[torch.Tensor, list[torch.Tensor]], None] | None = None) -> LossOutput:
        """The weight step's forward and backward into the weights' ``.grad`` (``backward(loss, inputs)``, by default
        ``manual_backward``), then the weight-step terms' gradients added to them."""
        if backward is None:
            def backward(loss: torch.Tensor, inputs: list[torch.Tensor]) -> None:
                self.manual_backward(loss, inputs=inputs)
        weights = list(weights)
        with self._weight_step_edges(train_batch), contextlib.ExitStack() as watching:
            watched = [watching.enter_context(term.watch(self.space)) for term in self.weight_terms]
            out = self.space(train_batch, "train", regularized=True)
            watching.close()
            backward(out.loss, weights + [t for tensors in watched for t in tensors])
            for term, tensors in zip(self.weight_terms, watched):
                self._add_weight_term(term, train_batch, weights, tensors)
        return out

    def _add_weight_term(self, term: WeightStepTerm, train_batch: Any, weights: list[torch.Tensor],
                         watched: list[torch.Tensor]) -> None:
        def loss() -> torch.Tensor:
            return self.space(train_batch, "train", regularized=True).loss

        grads = [torch.zeros_like(t) if t.grad is None else t.grad for t in watched]
        extra = term.gradients(self.space, loss, weights, grads)
        if extra is None:
            return
        for weight, grad in zip(weights, extra):
            if weight.grad is None:
                weight.grad = grad.detach().clone()
            else:
                weight.grad.add_(grad.to(weight.grad.dtype))
        if self._trainer is not None:
            for name, value in term.metrics.items():
                self.log(f"weight_terms/{name}", value, on_step=False, on_epoch=True, sync_dist=False)

    def on_train_epoch_end(self) -> None:
        self._log_split("train")  # weight steps
        self._log_split("arch")  # alpha steps (their val batches)
        for name, opt in zip(("weight", "arch"), self.optimizers()):
            self.log(f"lr/{name}", opt.optimizer.param_groups[0]["lr"], sync_dist=False)
        for regularizer in self.regularizers:  # the same on every rank: values of the architecture alone
            for name, value in regularizer.epoch_metrics(self.space).items():
                self.log(name, value, on_step=False, on_epoch=True, sync_dist=False)
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
        if split != "val":  # the loggers get it every log_every_n_steps, the progress bar every iteration
            self.log(f"{split}/loss_step", out.loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        if out.preds is not None and out.target is not None and out.preds.dim() == out.target.dim() + 1:
            correct = (out.preds.argmax(-1) == out.target).float()
            self.metrics[f"{split}_acc"].update(correct.mean(), correct.numel())

    def _log_split(self, split: str) -> None:
        prefix = split
        loss, acc = self.metrics[f"{split}_loss"], self.metrics[f"{split}_acc"]
        if loss.update_count:
            value = loss.compute()
            self.log(f"{prefix}/loss", value, prog_bar=prefix != "train")
            for name, metric in self.space.epoch_metrics(prefix, value).items():
                self.log(name, metric, prog_bar=True)
            loss.reset()
        if acc.update_count:
            self.log(f"{prefix}/acc", acc.compute(), prog_bar=True)
            acc.reset()


def _model_state(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters an optimizer steps and the tensors of its state (momentum buffers, Adam moments)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return params + [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


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
