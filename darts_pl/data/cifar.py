"""CIFAR-10 and CIFAR-100 through torchvision (the python pickle batches), for search and for training derived
cells."""
from __future__ import annotations

import urllib.error
from pathlib import Path

from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import CIFAR10, CIFAR100

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.data.holdout import HoldoutSearchSplit, SearchSplit
from darts_pl.data.transforms import Cutout, check_cutout_length
from darts_pl.errors import DataNotFoundError

CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
CIFAR100_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)


class CIFAR10DataModule(ClassificationDataModule):
    """CIFAR-10 with the DARTS augmentation (random crop 32 with padding 4, horizontal flip, normalise,
    and cutout in the training recipe).

    Args:
        data_dir: Directory holding (or to receive) ``cifar-10-batches-py/``.
        download: Download CIFAR-10 with torchvision when it is not in ``data_dir``.
        cutout_length: Side of the cutout square (16 in the paper's training recipe; 0 disables it,
            as in the search).
        mode, batch_size, eval_batch_size, train_portion, num_workers, seed: See
            :class:`~darts_pl.data.base.ClassificationDataModule`.
    """

    num_classes = 10
    in_channels = 3
    dataset_class: type[CIFAR10] = CIFAR10
    dataset_name = "CIFAR-10"
    mean, std = CIFAR_MEAN, CIFAR_STD

    def __init__(self, data_dir: str = "data/cifar10", download: bool = True, mode: Mode = "search",
                 batch_size: int = 64, eval_batch_size: int | None = None, train_portion: float = 0.5,
                 num_workers: int = 0, seed: int = 0, cutout_length: int = 0) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        check_cutout_length(type(self).__name__, cutout_length)
        self.data_dir = data_dir
        self.download = download
        self.cutout_length = cutout_length

    def _present(self) -> bool:
        folder = Path(self.data_dir) / self.dataset_class.base_folder
        return (folder / self.dataset_class.train_list[0][0]).is_file()

    def _missing(self, reason: str) -> DataNotFoundError:
        return DataNotFoundError(
            f"{self.dataset_name} is not available under --data.data_dir {self.data_dir!r} ({reason}). Either set "
            "--data.download true on a machine with internet access, or copy the extracted "
            f"'{self.dataset_class.base_folder}/' folder into --data.data_dir and set --data.download false.")

    def prepare_data(self) -> None:
        if self._present():
            return
        if not self.download:
            raise self._missing(f"no {self.dataset_class.base_folder}/ there and --data.download is false")
        try:
            self.dataset_class(self.data_dir, train=True, download=True)
        except (urllib.error.URLError, OSError) as err:
            raise self._missing(f"the download failed: {err}") from None

    def transforms(self) -> tuple[T.Compose, T.Compose]:
        normalize = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        train = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *normalize]
        if self.cutout_length:
            train.append(Cutout(self.cutout_length))
        return T.Compose(train), T.Compose(normalize)

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        if not self._present():
            self.prepare_data()
        train_tf, eval_tf = self.transforms()
        try:
            train_aug = self.dataset_class(self.data_dir, train=True, transform=train_tf)
            train_plain = self.dataset_class(self.data_dir, train=True, transform=eval_tf)
            test = self.dataset_class(self.data_dir, train=False, transform=eval_tf)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            raise self._missing(f"torchvision says: {err}") from None
        return train_aug, train_plain, test


class CIFAR100DataModule(HoldoutSearchSplit, CIFAR10DataModule):
    """CIFAR-100 (100 fine labels) with the same augmentation, normalised with the CIFAR-100 statistics that the
    NAS-Bench-201 code uses (mean ``(129.3, 124.1, 112.4) / 255``, std ``(68.2, 65.4, 70.4) / 255``).

    Args:
        data_dir: Directory holding (or to receive) ``cifar-100-python/`` (``train``, ``test``, ``meta``).
        search_split: ``"train"`` (weights and alphas split the training set by ``train_portion``) or ``"holdout"``
            (the NAS-Bench-201 searches: weights on all 50k training images, alphas on 5k of the test images;
            :mod:`darts_pl.data.holdout`).
        split_file: With ``"holdout"``: the authors' ``cifar100-test-split.txt``, whose ``xvalid`` half the alphas
            see (the benchmark's ``x-valid`` set); a seeded half without it.
        download, mode, batch_size, eval_batch_size, train_portion, num_workers, seed, cutout_length: See
            :class:`CIFAR10DataModule`.
    """

    num_classes = 100
    dataset_class = CIFAR100
    dataset_name = "CIFAR-100"
    mean, std = CIFAR100_MEAN, CIFAR100_STD

    def __init__(self, data_dir: str = "data/cifar100", download: bool = True, mode: Mode = "search",
                 batch_size: int = 64, eval_batch_size: int | None = None, train_portion: float = 0.5,
                 num_workers: int = 0, seed: int = 0, cutout_length: int = 0, search_split: SearchSplit = "train",
                 split_file: str | None = None) -> None:
        super().__init__(data_dir=data_dir, download=download, mode=mode, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, train_portion=train_portion, num_workers=num_workers,
                         seed=seed, cutout_length=cutout_length)
        self.init_search_split(search_split, split_file)

    def augmented_heldout(self) -> Dataset:
        return self.dataset_class(self.data_dir, train=False, transform=self.transforms()[0])
