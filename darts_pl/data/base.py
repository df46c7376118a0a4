"""Shared machinery of the image-classification data modules: the search split and the loaders.

``mode="search"``: the training set is split (seeded) into a weight-train part and an alpha-val part
(``train_portion``, 50/50 in the paper); ``train_dataloader`` returns ``{"train": ..., "val": ...}``,
which Lightning cycles together (``max_size_cycle``), and ``val_dataloader`` evaluates on the alpha-val
part without augmentation. ``mode="train"``: the whole training set for training, the test set for
validation and testing.

Note:
    The original code splits the first and second halves of the training set in index order and
    augments the alpha-val half too; here the split is a seeded permutation (CIFAR-10's files are not
    class-balanced in order for every custom dataset) and the alpha-val half keeps the augmentation.
"""
from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from darts_pl.errors import ConfigurationError

Mode = Literal["search", "train"]


def class_interleaved(targets: Sequence[int]) -> list[int]:
    """Indices taking one example of each class in turn (classes in label order, examples in file order).

    Evaluation loaders read their set in this order: ``limit_val_batches`` (``configs/debug.yaml``) evaluates
    a prefix of the loader, and on a folder sorted by class the first batches would all be one class.
    """
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        by_class.setdefault(int(label), []).append(index)
    rounds = itertools.zip_longest(*(by_class[label] for label in sorted(by_class)))
    return [index for row in rounds for index in row if index is not None]


def evaluation_order(dataset: Dataset) -> Dataset:
    """``dataset`` read class by class in turn when it knows its labels (``targets``), else as it is."""
    targets = getattr(dataset, "targets", None)
    return Subset(dataset, class_interleaved(targets)) if targets is not None else dataset


class ClassificationDataModule(L.LightningDataModule):
    """Base of the image data modules.

    Args:
        mode: ``"search"`` (bilevel split of the training set) or ``"train"`` (train/test).
        batch_size: Batch size of every training loader (per device under DDP).
        eval_batch_size: Batch size of evaluation loaders (defaults to ``batch_size``).
        train_portion: Fraction of the training set used for weight steps in search mode (0.5 in the paper).
        num_workers: Loader worker processes.
        seed: Seed of the search split (the same split on every rank and every resume).
    """

    num_classes: int = 0
    in_channels: int = 3

    def __init__(self, mode: Mode = "search", batch_size: int = 64, eval_batch_size: int | None = None,
                 train_portion: float = 0.5, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        if mode not in ("search", "train"):
            raise ConfigurationError(f"{type(self).__name__}: unknown mode={mode!r}; use 'search' or 'train'.")
        if not 0.0 < train_portion < 1.0:
            raise ConfigurationError(f"{type(self).__name__}: train_portion={train_portion} must be in (0, 1) "
                             "(0.5 splits the training set in two halves, as the paper does).")
        if batch_size < 1:
            raise ConfigurationError(f"{type(self).__name__}: batch_size={batch_size} must be >= 1.")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ConfigurationError(f"{type(self).__name__}: eval_batch_size={eval_batch_size} must be >= 1, or null "
                                     "to use batch_size.")
        if num_workers < 0:
            raise ConfigurationError(f"{type(self).__name__}: num_workers={num_workers} must be >= 0 (0 loads in the "
                                     "main process).")
        self.mode = mode
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.train_portion = train_portion
        self.num_workers = num_workers
        self.seed = seed
        self._train_aug: Dataset | None = None
        self._train_plain: Dataset | None = None
        self._test: Dataset | None = None

    @abstractmethod
    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        """(training set with augmentation, the same images without, test set or None)."""

    def setup(self, stage: str | None = None) -> None:
        if self._train_aug is None:
            self._train_aug, self._train_plain, self._test = self.build_datasets()
            if self.mode == "train" and self._test is None:
                raise ConfigurationError(f"{type(self).__name__}: mode='train' needs a test/validation split, and "
                                 "this data has none; use mode='search' or add the split.")
            self._check_batch_size()

    def search_indices(self) -> tuple[list[int], list[int]]:
        """The seeded weight-train / alpha-val split of the training set."""
        n = len(self._train_aug)  # type: ignore[arg-type]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        split = int(self.train_portion * n)
        return order[:split], order[split:]

    def _check_batch_size(self) -> None:
        if self.mode == "search":
            sizes = dict(zip(("weight-train", "alpha-val"), map(len, self.search_indices())))
        else:
            sizes = {"training": len(self._train_aug)}  # type: ignore[arg-type]
        for name, size in sizes.items():
            if self.batch_size > size:
                raise ConfigurationError(f"{type(self).__name__}: batch_size={self.batch_size} is larger than the "
                                 f"{name} split ({size} examples); use --data.batch_size {size} or less.")

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        # Evaluation loaders draw their worker seeds from their own generator, not the global one, so
        # validating (e.g. Lightning's sanity check after a resume) never shifts the training shuffles.
        generator = None if train else torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=self.batch_size if train else self.eval_batch_size,
                          shuffle=train, drop_last=train, num_workers=self.num_workers, generator=generator,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader | dict[str, DataLoader]:
        self.setup()
        if self.mode == "search":
            train_idx, val_idx = self.search_indices()
            return {"train": self._loader(Subset(self._train_aug, train_idx), train=True),
                    "val": self._loader(Subset(self._train_aug, val_idx), train=True)}
        return self._loader(self._train_aug, train=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        if self.mode == "search":  # a seeded permutation already: every prefix mixes the classes
            return self._loader(Subset(self._train_plain, self.search_indices()[1]), train=False)
        return self._loader(evaluation_order(self._test), train=False)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(evaluation_order(self._test if self._test is not None else self._train_plain), train=False)
