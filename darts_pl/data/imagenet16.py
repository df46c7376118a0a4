"""ImageNet16-120: NAS-Bench-201's third dataset, the downsampled ImageNet at 16×16 restricted to 120 classes.

The images are those of "A Downsampled Variant of ImageNet as an Alternative to the CIFAR datasets" (Chrabaszcz,
Loshchilov, Hutter, 2017, arXiv 1707.08819) at 16×16, in their Python pickle batches: ``train_data_batch_1`` ...
``train_data_batch_10`` and ``val_data``, each ``{"data": uint8 (N, 768), "labels": N labels in 1..1000, ...}``
with a row holding the red, green and blue 16×16 planes in turn. NAS-Bench-201 (Dong & Yang, ICLR 2020) keeps the images
whose label is at most 120 (AutoDL-Projects ``lib/datasets/DownsampledImageNet.py``, ``ImageNet16(..., 120)``: 151,700
training and 6,000 validation images) and uses label - 1 as the class. The augmentation and normalisation are the
benchmark's (``get_datasets`` in ``lib/datasets/get_dataset_with_transform.py``): random horizontal flip, random crop
16 with padding 2, mean ``(122.68, 116.66, 104.01) / 255``, std ``(63.22, 61.26, 65.09) / 255``.

``mode="train"`` trains on the training images and validates and tests on the 6,000 validation images (the
benchmark's ``ori-test``). ``mode="search"`` splits the training images (``search_split="train"``, ``train_portion``)
or, as the benchmark's searches, trains the weights on all of them and the alphas on half of the validation images
(``search_split="holdout"``; :mod:`darts_pl.data.holdout`).

Note:
    The authors stack all 1.28M images of the ten batches (0.98 GB) before keeping the first 120 classes; here
    each batch is filtered as it is read (the same images in the same order), so loading needs about one batch
    (98 MB) beyond the kept images (151,700 × 768 bytes = 117 MB).
"""
from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.data.holdout import HoldoutSearchSplit, SearchSplit
from darts_pl.data.transforms import Cutout, check_cutout_length
from darts_pl.errors import ConfigurationError, DataNotFoundError

IMAGENET16_MEAN = (122.68 / 255, 116.66 / 255, 104.01 / 255)
IMAGENET16_STD = (63.22 / 255, 61.26 / 255, 65.09 / 255)
TRAIN_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
VAL_FILES = ("val_data",)
FOLDER = "ImageNet16"


def read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 16, 16, 3)`` (uint8, HWC) and 0-based labels of one pickle batch, only classes ``1..num_classes``.

    Raises:
        DataNotFoundError: The file is not such a batch.
    """
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle, encoding="latin1")  # the files are Python 2 pickles
        data, labels = np.asarray(entry["data"], dtype=np.uint8), np.asarray(entry["labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise DataNotFoundError(f"{str(path)!r} is not a downsampled-ImageNet pickle batch ({type(err).__name__}: "
                                f"{err}).") from None
    if data.ndim != 2 or data.shape[1] != 3 * 16 * 16 or len(labels) != len(data):
        raise DataNotFoundError(f"{str(path)!r}: 'data' has shape {data.shape} and there are {len(labels)} labels; a "
                                "16x16 batch holds (N, 768) uint8 rows and N labels (the 32x32 or 64x64 variants "
                                "are not ImageNet16).")
    keep = (labels >= 1) & (labels <= num_classes)  # labels are 1-based in the files
    images = data[keep].reshape(-1, 3, 16, 16).transpose(0, 2, 3, 1)  # (N, 768) -> (N, 3, 16, 16) -> (N, 16, 16, 3)
    return np.ascontiguousarray(images), labels[keep] - 1


class ImageNet16(Dataset):
    """The downsampled ImageNet 16×16 images of the classes ``1..num_classes`` (the module docstring has the format).

    Args:
        root: The folder holding ``train_data_batch_1..10`` and ``val_data``.
        train: The ten training batches, or ``val_data``.
        num_classes: Keep the images labelled ``1..num_classes`` (120: ImageNet16-120); classes become 0-based.
        transform: Applied to each PIL image.
    """

    def __init__(self, root: str | Path, train: bool, num_classes: int = 120,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        root = Path(root)
        parts = [read_batch(root / name, num_classes) for name in (TRAIN_FILES if train else VAL_FILES)]
        self.data = np.concatenate([images for images, _ in parts])  # (N, 16, 16, 3)
        self.targets: list[int] = np.concatenate([labels for _, labels in parts]).tolist()
        self.transform = transform

    def with_transform(self, transform: Callable[[Image.Image], Any] | None) -> ImageNet16:
        """The same images (shared, not copied) with another transform."""
        other = copy.copy(self)
        other.transform = transform
        return other

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.data[index])
        return (self.transform(image) if self.transform is not None else image), self.targets[index]

    def __repr__(self) -> str:
        return f"ImageNet16({len(self)} images, {len(set(self.targets))} classes)"


class ImageNet16DataModule(HoldoutSearchSplit, ClassificationDataModule):
    """ImageNet16-120 (NAS-Bench-201) with the benchmark's augmentation and normalisation.

    Args:
        data_dir: The folder holding ``train_data_batch_1`` ... ``train_data_batch_10`` and ``val_data`` (or its
            parent, holding ``ImageNet16/``). Nothing is downloaded: the files come with NAS-Bench-201's data or
            from the downsampled ImageNet's site (``Imagenet16_train.zip``, ``Imagenet16_val.zip``).
        num_classes: Keep the classes ``1..num_classes`` of the files (120: ImageNet16-120; the authors' code also
            knows 150 and 200).
        cutout_length: Side of a cutout square after normalisation (0: none, as the benchmark).
        search_split: ``"train"`` (split the training images by ``train_portion``) or ``"holdout"`` (the benchmark's
            searches: weights on all training images, alphas on half of the validation images).
        split_file: With ``"holdout"``: the authors' ``imagenet-16-120-test-split.txt``, whose ``xvalid`` half the
            alphas see (the benchmark's ``x-valid`` set); a seeded half without it.
        mode, batch_size, eval_batch_size, train_portion, num_workers, seed: See
            :class:`~darts_pl.data.base.ClassificationDataModule`.

    Raises:
        ConfigurationError: ``num_classes`` outside 1..1000, a bad ``search_split`` or ``cutout_length``.
        DataNotFoundError: At setup, a missing folder or batch file, or a file that is not a 16×16 batch.
    """

    in_channels = 3
    mean, std = IMAGENET16_MEAN, IMAGENET16_STD

    def __init__(self, data_dir: str = "data/ImageNet16", num_classes: int = 120, mode: Mode = "search",
                 batch_size: int = 64, eval_batch_size: int | None = None, train_portion: float = 0.5,
                 num_workers: int = 0, seed: int = 0, cutout_length: int = 0, search_split: SearchSplit = "train",
                 split_file: str | None = None) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        if not 1 <= num_classes <= 1000:
            raise ConfigurationError(f"ImageNet16DataModule: num_classes={num_classes} must be in 1..1000 (120 for "
                                     "ImageNet16-120).")
        check_cutout_length(type(self).__name__, cutout_length)
        self.init_search_split(search_split, split_file)
        self.data_dir = data_dir
        self.num_classes = num_classes
        self.cutout_length = cutout_length

    def root(self) -> Path:
        """The folder with the batch files: ``data_dir`` or ``data_dir/ImageNet16``.

        Raises:
            DataNotFoundError: Neither holds every file; the message lists the missing ones.
        """
        base = Path(self.data_dir).expanduser()
        for folder in (base, base / FOLDER):
            if all((folder / name).is_file() for name in (*TRAIN_FILES, *VAL_FILES)):
                return folder
        folder = base / FOLDER if (base / FOLDER).is_dir() else base
        if not folder.is_dir():
            raise DataNotFoundError(f"ImageNet16 is not available under --data.data_dir {self.data_dir!r}: no such "
                                    "folder; give the folder holding train_data_batch_1..10 and val_data (the 16x16 "
                                    "downsampled ImageNet pickles, nothing is downloaded).")
        missing = [name for name in (*TRAIN_FILES, *VAL_FILES) if not (folder / name).is_file()]
        raise DataNotFoundError(f"ImageNet16 is incomplete under --data.data_dir {self.data_dir!r}: {str(folder)!r} "
                                f"lacks {', '.join(missing)}; it needs train_data_batch_1..10 and val_data.")

    def prepare_data(self) -> None:
        self.root()

    def transforms(self) -> tuple[T.Compose, T.Compose]:
        normalize = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        train = [T.RandomHorizontalFlip(), T.RandomCrop(16, padding=2), *normalize]  # the benchmark's order
        if self.cutout_length:
            train.append(Cutout(self.cutout_length))
        return T.Compose(train), T.Compose(normalize)

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        root = self.root()
        train_tf, eval_tf = self.transforms()
        train = ImageNet16(root, train=True, num_classes=self.num_classes, transform=train_tf)
        self._val_images = ImageNet16(root, train=False, num_classes=self.num_classes, transform=eval_tf)
        return train, train.with_transform(eval_tf), self._val_images

    def augmented_heldout(self) -> Dataset:
        return self._val_images.with_transform(self.transforms()[0])
