"""Training a found CNN cell from scratch (Liu et al., 2019, Sec. 3.3 and A.2).

``LitClassifier`` builds ``NetworkCIFAR`` or ``NetworkImageNet`` from a genotype and trains it with
automatic optimization: cross-entropy (optionally label-smoothed) plus ``auxiliary_weight`` times the
auxiliary head's cross-entropy, top-1/top-5 accuracy, an optimizer and an epoch-wise scheduler from the
config. The paper's recipes are ``configs/train_cifar.yaml`` and ``configs/train_imagenet.yaml``.

Gradient clipping (norm 5 in both recipes) is the trainer's: ``trainer.gradient_clip_val: 5.0``.
Drop path is constant at ``drop_path_prob`` unless a ``DropPathSchedule`` callback ramps it, as the
paper does (0 → 0.2 linearly over the epochs).

Note:
    As in the original ImageNet code, label smoothing applies to the training loss (main and auxiliary)
    only; validation and test losses are plain cross-entropy.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from darts_pl.errors import ConfigurationError
from darts_pl.finite import check_finite
from darts_pl.genotypes import GenotypeError, resolve, to_dict
from darts_pl.modules.resumable import ResumableRNG
from darts_pl.networks.cnn import NetworkCIFAR, NetworkImageNet
from darts_pl.networks.nb201 import NB201Network

NETWORKS: dict[str, type[NetworkCIFAR] | type[NetworkImageNet] | type[NB201Network]] = {
    "cifar": NetworkCIFAR,
    "imagenet": NetworkImageNet,
    "nb201": NB201Network,
}


def _sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=3e-4)


def _split_metrics(num_classes: int) -> nn.ModuleDict:
    return nn.ModuleDict({
        "loss": MeanMetric(),
        "acc": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
        "acc_top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
    })


class LitClassifier(ResumableRNG):
    """Train a derived CNN from scratch.

    Args:
        genotype: The cell: a published name (``DARTS_V2``), the path of a search's ``genotype.json``, or
            an inline mapping with ``normal``, ``normal_concat``, ``reduce``, ``reduce_concat``.
        network: ``"cifar"`` (``NetworkCIFAR``, 32×32 inputs), ``"imagenet"`` (``NetworkImageNet``,
            the mobile setting, 224×224 inputs) or ``"nb201"`` (``NB201Network``, a NAS-Bench-201 cell given
            as an architecture string or an NB201 search's ``genotype.json``; no auxiliary head, no drop path).
        channels: Initial channels C (36 on CIFAR-10, 48 on ImageNet in the paper; 16 in NAS-Bench-201).
        num_cells: Cells (20 on CIFAR-10, 14 on ImageNet); for ``nb201``, cells per stage (N=5).
        num_classes: Classes (linked from the data module by the CLI).
        in_channels: Image channels (linked from the data module by the CLI).
        auxiliary: Train with the auxiliary head after the cell at 2/3 of the depth.
        auxiliary_weight: Weight of the auxiliary loss (0.4).
        drop_path_prob: Drop-path probability (the final one when a ``DropPathSchedule`` ramps it).
        label_smoothing: Label smoothing of the training loss (0 on CIFAR-10, 0.1 on ImageNet).
        optimizer: Optimizer of all network parameters (CIFAR-10: SGD lr 0.025, momentum 0.9, wd 3e-4).
        scheduler: Learning-rate scheduler, stepped once per epoch; none keeps the rate constant.

    Raises:
        GenotypeError: The genotype is unknown, malformed, or a recurrent cell.
        ConfigurationError: A size or weight out of range.
    """

    def __init__(
        self,
        genotype: str | dict[str, Any],
        network: Literal["cifar", "imagenet", "nb201"] = "cifar",
        channels: int = 36,
        num_cells: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        auxiliary: bool = True,
        auxiliary_weight: float = 0.4,
        drop_path_prob: float = 0.2,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = _sgd,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        _check_args(network=network, num_classes=num_classes, auxiliary_weight=auxiliary_weight,
                    drop_path_prob=drop_path_prob, label_smoothing=label_smoothing)
        try:
            cell = resolve(genotype)
        except GenotypeError as err:
            raise GenotypeError(f"LitClassifier: --model.genotype {genotype!r}: {err}") from None
        if cell.kind != NETWORKS[network].genotype_kind:
            fits = sorted(name for name, net in NETWORKS.items() if net.genotype_kind == cell.kind)
            raise GenotypeError(
                f"LitClassifier: --model.genotype {genotype!r} does not fit network={network!r}: a {cell.kind} cell "
                + (f"trains with --model.network {' or '.join(fits)}" if fits else
                   "has no network here (a recurrent cell trains with darts_pl.modules.LitLanguageModel)")
                + f"; network={network!r} takes {NETWORKS[network].genotype_kind} cells.")
        empty = cell.empty_cells()
        if empty:
            raise GenotypeError(
                f"LitClassifier: --model.genotype {genotype!r}: the {' and '.join(empty)} cell keeps no op (every edge "
                "is 'none', e.g. a threshold derivation before any weight reached it), so the network would pass "
                "nothing through it; search longer (or lower the derivation's threshold), or train another genotype.")
        if network == "nb201" and drop_path_prob > 0:
            raise ConfigurationError(f"LitClassifier: drop_path_prob={drop_path_prob}, but the NAS-Bench-201 network "
                                     "has no drop path (nor has the benchmark's recipe); set --model.drop_path_prob 0.")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.hparams["genotype"] = to_dict(cell)  # the checkpoint does not depend on the json file
        self.network = NETWORKS[network](cell, channels=channels, num_cells=num_cells, num_classes=num_classes,
                                         auxiliary=auxiliary, in_channels=in_channels)
        self.network.drop_path_prob = drop_path_prob
        self.drop_path_prob = drop_path_prob
        self.auxiliary_weight = auxiliary_weight
        self.label_smoothing = label_smoothing
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_metrics = _split_metrics(num_classes)
        self.val_metrics = _split_metrics(num_classes)
        self.test_metrics = _split_metrics(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network, without the auxiliary output (for prediction)."""
        return self.network(x)[0]  # (B, classes)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.network.parameters())
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": "epoch"}}

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self) -> None:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits, logits_aux = self.network(x)
        loss, loss_aux = self.training_loss(logits, logits_aux, y)
        check_finite(loss, "training loss",
                     f"weight step (epoch {self.current_epoch}, batch {batch_idx}); stopped, the last checkpoint "
                     "is left as it was")
        if loss_aux is not None:
            self.log("train/loss_aux", loss_aux.detach(), on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=len(y))
        self._update("train", loss, logits, y)
        return loss

    def training_loss(self, logits: torch.Tensor, logits_aux: torch.Tensor | None,
                      target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(total loss, auxiliary loss or None): CE(logits) + auxiliary_weight · CE(logits_aux), both
        label-smoothed: the target is (1 - ε)·one_hot + ε/K."""
        loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        if logits_aux is None:
            return loss, None
        loss_aux = F.cross_entropy(logits_aux, target, label_smoothing=self.label_smoothing)
        return loss + self.auxiliary_weight * loss_aux, loss_aux

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def _evaluate(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        logits, _ = self.network(x)
        self._update(split, F.cross_entropy(logits, y), logits, y)

    # ------------------------------------------------------------------ metrics
    def _update(self, split: str, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        metrics = getattr(self, f"{split}_metrics")
        metrics["loss"].update(loss.detach(), len(target))
        for name in ("acc", "acc_top5"):
            metrics[name].update(logits.detach(), target)
        for name, metric in metrics.items():
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True,
                     prog_bar=split != "train" and name != "acc_top5")


def _check_args(*, network: str, num_classes: int, auxiliary_weight: float, drop_path_prob: float,
                label_smoothing: float) -> None:
    if network not in NETWORKS:
        raise ConfigurationError(f"LitClassifier: network={network!r} is unknown; use one of {', '.join(NETWORKS)}.")
    if num_classes < 2:
        raise ConfigurationError(f"LitClassifier: num_classes={num_classes} must be >= 2.")
    if auxiliary_weight < 0:
        raise ConfigurationError(f"LitClassifier: auxiliary_weight={auxiliary_weight} must be >= 0 (0.4 in the paper).")
    if not 0.0 <= drop_path_prob < 1.0:
        raise ConfigurationError(f"LitClassifier: drop_path_prob={drop_path_prob} must be in [0, 1) "
                                 "(0.2 in the paper's CIFAR-10 recipe, 0 disables drop path).")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigurationError(f"LitClassifier: label_smoothing={label_smoothing} must be in [0, 1) "
                                 "(0.1 in the paper's ImageNet recipe).")
