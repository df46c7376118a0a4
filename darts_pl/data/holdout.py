"""NAS-Bench-201's search split: weights on the whole training set, alphas on half of the held-out set.

The benchmark's searches on CIFAR-100 and ImageNet16-120 (AutoDL-Projects, ``get_nas_search_loaders`` in
``lib/datasets/get_dataset_with_transform.py``) do not split the training set: each iteration takes a weight batch
from all training images and an alpha batch from the ``xvalid`` half of the test set (CIFAR-100: 5,000 of 10,000,
``configs/nas-benchmark/cifar100-test-split.txt``; ImageNet16-120: 3,000 of the 6,000 validation images,
``imagenet-16-120-test-split.txt``), with the training augmentation on both, and evaluate on the ``xvalid`` half
without augmentation. That half is the benchmark's ``x-valid`` set. So an epoch is a pass over the whole training
set (about 781 iterations on CIFAR-100 at batch 64, 2,370 on ImageNet16-120), twice the weight steps of a 50/50
split.

``search_split="holdout"`` builds that: ``{"train": all training images, "val": the held-out half (augmented)}`` for
the search (Lightning cycles the shorter alpha loader, as the authors draw random ``xvalid`` images), and the same
half without augmentation for validation. ``split_file`` takes the authors' split file (its ``xvalid`` list), which
gives exactly their alpha images; without it the half is a seeded random one (the same on every rank and resume).
``search_split="train"`` is the other modules' split of the training set (``train_portion``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from darts_pl.errors import ConfigurationError, DataNotFoundError

SearchSplit = Literal["train", "holdout"]


def read_split_file(path: str | Path, key: str = "xvalid") -> list[int]:
    """The ``key`` index list of an AutoDL-Projects split file (``{"xvalid": ["int", ["1", "2", ...]], ...}``).

    Raises:
        DataNotFoundError: The file is missing.
        ConfigurationError: It is not such a file, or has no ``key``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"--data.split_file {str(path)!r} does not exist; give the authors' split file "
                                "(AutoDL-Projects configs/nas-benchmark/*-test-split.txt), or leave it unset for a "
                                "seeded half.")
    try:
        content = json.loads(path.read_text())
        kind, values = content[key]
        if kind != "int":
            raise ValueError(f"type {kind!r}")
        return [int(v) for v in values]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigurationError(f"--data.split_file {str(path)!r} is not an AutoDL-Projects split file with an "
                                 f"{key!r} index list ({type(err).__name__}: {err}).") from None


class HoldoutSearchSplit:
    """Mixin for a :class:`~darts_pl.data.base.ClassificationDataModule` (listed before it): ``search_split`` and
    ``split_file`` (module docstring). The data module provides :meth:`augmented_heldout`."""

    search_split: SearchSplit
    split_file: str | None
    mode: str
    seed: int
    batch_size: int
    _test: Dataset | None

    def init_search_split(self, search_split: SearchSplit, split_file: str | None) -> None:
        if search_split not in ("train", "holdout"):
            raise ConfigurationError(f"{type(self).__name__}: search_split={search_split!r} is unknown; use 'train' "
                                     "(split the training set) or 'holdout' (NAS-Bench-201: alphas on half the "
                                     "held-out set).")
        if split_file is not None and search_split != "holdout":
            raise ConfigurationError(f"{type(self).__name__}: split_file={split_file!r} needs search_split='holdout'.")
        self.search_split = search_split
        self.split_file = split_file
        self._heldout_aug: Dataset | None = None

    def augmented_heldout(self) -> Dataset:
        """The held-out set with the training augmentation (the authors' alpha images are augmented)."""
        raise NotImplementedError

    def heldout_indices(self) -> list[int]:
        """The held-out half the alphas see: the split file's ``xvalid``, or a seeded half."""
        n = len(self._test)  # type: ignore[arg-type]
        if self.split_file is not None:
            indices = read_split_file(self.split_file)
            bad = [i for i in indices if not 0 <= i < n]
            if bad:
                raise ConfigurationError(f"--data.split_file {self.split_file!r}: index {bad[0]} is outside the "
                                         f"held-out set of {n} images; is it the split file of this dataset?")
            return indices
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        return sorted(order[: n // 2])

    def _holdout(self) -> bool:
        return self.mode == "search" and self.search_split == "holdout"

    def _check_batch_size(self) -> None:
        if not self._holdout():
            return super()._check_batch_size()  # type: ignore[misc]
        for name, size in (("training", len(self._train_aug)), ("alpha-val", len(self.heldout_indices()))):  # type: ignore[attr-defined]
            if self.batch_size > size:
                raise ConfigurationError(f"{type(self).__name__}: batch_size={self.batch_size} is larger than the "
                                         f"{name} set ({size} examples); use --data.batch_size {size} or less.")
        return None

    def train_dataloader(self) -> Any:
        if not self._holdout():
            return super().train_dataloader()  # type: ignore[misc]
        self.setup()  # type: ignore[attr-defined]
        if self._heldout_aug is None:
            self._heldout_aug = self.augmented_heldout()
        loader = self._loader  # type: ignore[attr-defined]
        return {"train": loader(self._train_aug, train=True),  # type: ignore[attr-defined]
                "val": loader(Subset(self._heldout_aug, self.heldout_indices()), train=True)}

    def val_dataloader(self) -> DataLoader:
        if not self._holdout():
            return super().val_dataloader()  # type: ignore[misc]
        self.setup()  # type: ignore[attr-defined]
        return self._loader(Subset(self._test, self.heldout_indices()), train=False)  # type: ignore[attr-defined]
