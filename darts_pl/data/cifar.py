"""CIFAR-10 through torchvision (the python pickle batches), for search and for training derived cells."""
from __future__ import annotations

import urllib.error
from pathlib import Path

from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import CIFAR10

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.data.transforms import Cutout, check_cutout_length
from darts_pl.errors import DataNotFoundError

CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)


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

    def __init__(self, data_dir: str = "data/cifar10", download: bool = True, mode: Mode = "search",
                 batch_size: int = 64, eval_batch_size: int | None = None, train_portion: float = 0.5,
                 num_workers: int = 0, seed: int = 0, cutout_length: int = 0) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        check_cutout_length("CIFAR10DataModule", cutout_length)
        self.data_dir = data_dir
        self.download = download
        self.cutout_length = cutout_length

    def _present(self) -> bool:
        return (Path(self.data_dir) / CIFAR10.base_folder / "data_batch_1").is_file()

    def _missing(self, reason: str) -> DataNotFoundError:
        return DataNotFoundError(
            f"CIFAR-10 is not available under --data.data_dir {self.data_dir!r} ({reason}). Either set "
            "--data.download true on a machine with internet access, or copy the extracted "
            f"'{CIFAR10.base_folder}/' folder into --data.data_dir and set --data.download false.")

    def prepare_data(self) -> None:
        if self._present():
            return
        if not self.download:
            raise self._missing(f"no {CIFAR10.base_folder}/ there and --data.download is false")
        try:
            CIFAR10(self.data_dir, train=True, download=True)
        except (urllib.error.URLError, OSError) as err:
            raise self._missing(f"the download failed: {err}") from None

    def transforms(self) -> tuple[T.Compose, T.Compose]:
        normalize = [T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
        train = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *normalize]
        if self.cutout_length:
            train.append(Cutout(self.cutout_length))
        return T.Compose(train), T.Compose(normalize)

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        if not self._present():
            self.prepare_data()
        train_tf, eval_tf = self.transforms()
        try:
            train_aug = CIFAR10(self.data_dir, train=True, transform=train_tf)
            train_plain = CIFAR10(self.data_dir, train=True, transform=eval_tf)
            test = CIFAR10(self.data_dir, train=False, transform=eval_tf)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            raise self._missing(f"torchvision says: {err}") from None
        return train_aug, train_plain, test
