"""scikit-learn's handwritten digits (1,797 real 8×8 grayscale images, 10 classes), shipped inside the
installed package: the quickstart's offline dataset."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, TensorDataset

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.errors import ConfigurationError


class DigitsDataModule(ClassificationDataModule):
    """``sklearn.datasets.load_digits`` as ``(1, 8, 8)`` tensors, standardised; no download.

    In train mode a seeded ``test_fraction`` of the images is held out as the test set; in search mode
    the rest is split into the weight-train and alpha-val parts.

    Args:
        test_fraction: Share of the images held out for testing.
        mode, batch_size, eval_batch_size, train_portion, num_workers, seed: See
            :class:`~darts_pl.data.base.ClassificationDataModule`.
    """

    num_classes = 10
    in_channels = 1

    def __init__(self, mode: Mode = "search", batch_size: int = 64, eval_batch_size: int | None = None,
                 train_portion: float = 0.5, num_workers: int = 0, seed: int = 0,
                 test_fraction: float = 0.2) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        if not 0.0 < test_fraction < 1.0:
            raise ConfigurationError(f"DigitsDataModule: test_fraction={test_fraction} must be in (0, 1).")
        self.test_fraction = test_fraction

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
        labels = torch.tensor(digits.target, dtype=torch.long)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed + 1))
        n_test = int(self.test_fraction * len(labels))
        test_idx, train_idx = order[:n_test], order[n_test:]
        mean, std = images[train_idx].mean(), images[train_idx].std()
        images = (images - mean) / std
        train = TensorDataset(images[train_idx], labels[train_idx])
        test = TensorDataset(images[test_idx], labels[test_idx])
        return train, train, test
