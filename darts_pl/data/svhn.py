"""SVHN (Netzer et al., 2011, the cropped 32×32 digits) through torchvision, for search and for training derived cells,
with the recipe RobustDARTS used on it (Zela et al., ICLR 2020; automl/RobustDARTS, ``src/utils.py``
``_data_transforms_svhn``): random crop 32 with padding 4, horizontal flip, normalisation by the SVHN statistics
mean ``(0.4377, 0.4438, 0.4728)``, std ``(0.1980, 0.2010, 0.1970)``, and cutout in the training recipe.

The files are the dataset's own MATLAB files ``train_32x32.mat`` and ``test_32x32.mat`` (``X``: uint8
``(32, 32, 3, N)``, ``y``: ``(N, 1)`` with the label 10 for the digit 0, which torchvision maps to 0).
"""
from __future__ import annotations

import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import SVHN

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.data.transforms import Cutout, check_cutout_length
from darts_pl.errors import DataNotFoundError

SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


class Transformed(Dataset):
    """``dataset``'s examples with ``transform`` applied to the image: two views of one loaded split (with and
    without augmentation) share its arrays instead of loading the file twice.

    Args:
        dataset: A dataset of ``(image, label)`` pairs with a ``labels`` array (torchvision's ``SVHN``).
        transform: Applied to every image.
    """

    def __init__(self, dataset: SVHN, transform: Callable[[Any], Any]) -> None:
        self.dataset = dataset
        self.transform = transform
        self.targets = [int(label) for label in dataset.labels]  # read by evaluation_order

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.dataset[index]
        return self.transform(image), label


class SVHNDataModule(ClassificationDataModule):
    """SVHN's ``train`` split (73,257 digits) for search or training, its ``test`` split (26,032) for validation and
    testing in training mode; the ``extra`` split is not used, as in RobustDARTS.

    Args:
        data_dir: Directory holding (or to receive) ``train_32x32.mat`` and ``test_32x32.mat``.
        download: Download the files with torchvision when they are not in ``data_dir``.
        cutout_length: Side of the cutout square (0 disables it; RobustDARTS's ``--cutout`` uses 16).
        mode, batch_size, eval_batch_size, train_portion, num_workers, seed: See
            :class:`~darts_pl.data.base.ClassificationDataModule`.

    Note:
        As RobustDARTS, the training images are flipped horizontally at random, although they are digits.
    """

    num_classes = 10
    in_channels = 3
    mean, std = SVHN_MEAN, SVHN_STD

    def __init__(self, data_dir: str = "data/svhn", download: bool = True, mode: Mode = "search",
                 batch_size: int = 64, eval_batch_size: int | None = None, train_portion: float = 0.5,
                 num_workers: int = 0, seed: int = 0, cutout_length: int = 0) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        check_cutout_length(type(self).__name__, cutout_length)
        self.data_dir = data_dir
        self.download = download
        self.cutout_length = cutout_length

    def _splits(self) -> tuple[str, ...]:
        """The splits this mode reads: the test split only for training derived cells."""
        return ("train", "test") if self.mode == "train" else ("train",)

    def _absent(self) -> list[str]:
        return [FILES[split] for split in self._splits() if not (Path(self.data_dir) / FILES[split]).is_file()]

    def _missing(self, reason: str) -> DataNotFoundError:
        files = " and ".join(FILES[split] for split in self._splits())
        return DataNotFoundError(
            f"SVHN is not available under --data.data_dir {self.data_dir!r} ({reason}). Either set --data.download "
            f"true on a machine with internet access, or copy {files} into --data.data_dir and set --data.download "
            "false.")

    def prepare_data(self) -> None:
        absent = self._absent()
        if not absent:
            return
        if not self.download:
            raise self._missing(f"no {', '.join(absent)} there and --data.download is false")
        try:
            for split in self._splits():
                SVHN(self.data_dir, split=split, download=True)
        except (urllib.error.URLError, OSError) as err:
            raise self._missing(f"the download failed: {err}") from None

    def transforms(self) -> tuple[T.Compose, T.Compose]:
        normalize = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        train = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *normalize]
        if self.cutout_length:
            train.append(Cutout(self.cutout_length))
        return T.Compose(train), T.Compose(normalize)

    def _load(self, split: str) -> SVHN:
        from scipy.io.matlab import MatReadError  # torchvision reads the files with scipy

        try:
            return SVHN(self.data_dir, split=split)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted" (its MD5 check)
            raise self._missing(f"{FILES[split]}: torchvision says: {err}") from None
        except (MatReadError, ValueError, KeyError, OSError) as err:  # scipy cannot read it, or it lacks X / y
            raise self._missing(f"{FILES[split]} cannot be read as SVHN's MATLAB file: {err!r}") from None

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        if self._absent():
            self.prepare_data()
        train_tf, eval_tf = self.transforms()
        train = self._load("train")
        test = Transformed(self._load("test"), eval_tf) if self.mode == "train" else None
        return Transformed(train, train_tf), Transformed(train, eval_tf), test
