"""Any image-classification dataset in the ImageFolder layout, for searching a cell on your own data.

Layout: ``data_dir/<class>/*.jpg`` (search only), or ``data_dir/train/<class>/*`` with
``data_dir/val/<class>/*`` (or ``test/``) for search and training. An unreadable or corrupt image stops
the run with an error naming the file (it is not skipped: a silently smaller dataset changes the split).

The augmentation is the CIFAR-10 recipe's at ``image_size`` (random crop with padding ``image_size / 8``,
horizontal flip, normalisation, optional cutout), so ``--data darts_pl.data.ImageFolderDataModule``
keeps a CIFAR-10 config's recipe; the normalisation is computed from the training images unless given.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms as T
from torchvision.datasets import ImageFolder

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.data.transforms import Cutout, check_cutout_length
from darts_pl.errors import ConfigurationError, DataNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STATISTICS_SAMPLE = 10_000
"""Most training images read to compute the normalisation (a seeded sample; all of them when fewer)."""

Triple = tuple[float, float, float]

LAYOUT = """expected layout:
  DATA_DIR/train/<class_a>/xxx.jpg   (or DATA_DIR/<class_a>/xxx.jpg for search only)
  DATA_DIR/train/<class_b>/yyy.png
  DATA_DIR/val/<class_a>/zzz.jpg     (or test/; needed for mode=train)"""


def find_split(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


_NOTED: set[str] = set()


def _note_once(kind: str, message: str) -> None:
    """Say once per process and kind of image what is done to it (the first file named)."""
    if kind not in _NOTED:
        _NOTED.add(kind)
        warnings.warn(message, stacklevel=3)


def load_image(path: str) -> Image.Image:
    """Open an image as RGB; an unreadable or corrupt file stops the run with its path (no silent skip).
    Images in another colour mode (grayscale, CMYK, palette...) are converted, and images smaller than 8 px on a
    side are used as they are (resized like the others): each is said once, naming the first such file."""
    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            image.load()
    except (OSError, UnidentifiedImageError) as err:
        raise DataNotFoundError(f"cannot read image {path!r} ({err}); remove or replace the file.") from None
    if image.mode != "RGB":
        _note_once(f"mode:{image.mode}", f"image folder: {image.mode} images are converted to RGB (first: {path!r}).")
    if min(image.size) < 8:
        _note_once("tiny", f"image folder: images smaller than 8 px on a side are resized like the others (first: "
                           f"{path!r}, {image.size[0]}x{image.size[1]}).")
    return image.convert("RGB")


def channel_statistics(dataset: Dataset, seed: int, num_workers: int = 0) -> tuple[Triple, Triple]:
    """Per-channel mean and standard deviation over every pixel of (a seeded sample of) ``dataset``'s
    images as ``(C, H, W)`` tensors in [0, 1], as CIFAR-10's published constants are computed."""
    count = min(len(dataset), STATISTICS_SAMPLE)  # type: ignore[arg-type]
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]  # type: ignore[arg-type]
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for x, _ in DataLoader(Subset(dataset, order.tolist()), batch_size=256, num_workers=num_workers):
        x = x.double().transpose(0, 1).flatten(1)  # (C, N·H·W)
        total += x.sum(1)
        squares += x.pow(2).sum(1)
        pixels += x.size(1)
    mean = total / pixels
    std = (squares / pixels - mean.pow(2)).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())  # type: ignore[return-value]


def image_folder(root: Path, transform: T.Compose, setting: str) -> ImageFolder:
    """torchvision's ImageFolder, with an error that shows the expected layout."""
    try:
        return ImageFolder(str(root), transform=transform, loader=load_image)
    except (FileNotFoundError, RuntimeError) as err:
        raise DataNotFoundError(f"{setting} {str(root)!r} is not an image folder ({err}).\n{LAYOUT}") from None


class ImageFolderDataModule(ClassificationDataModule):
    """Images in class folders, resized to ``image_size``, with the CIFAR-10 augmentation (module docstring).

    Args:
        data_dir: Root of the image folders (see the module docstring for the layout).
        image_size: Side the images are resized to (32 searches like CIFAR-10).
        cutout_length: Side of the cutout square of the training images (16 in the paper's CIFAR-10
            training recipe; 0 disables it, as in the search).
        mean: Per-channel normalisation mean; computed from the training images when omitted (at most
            ``STATISTICS_SAMPLE`` of them, seeded by ``seed``), e.g. ImageNet's ``[0.485, 0.456, 0.406]``.
        std: Per-channel normalisation standard deviation; computed with the mean when omitted.
        mode, batch_size, eval_batch_size, train_portion, num_workers, seed: See
            :class:`~darts_pl.data.base.ClassificationDataModule`.
    """

    def __init__(self, data_dir: str, image_size: int = 32, mode: Mode = "search", batch_size: int = 64,
                 eval_batch_size: int | None = None, train_portion: float = 0.5, num_workers: int = 0,
                 seed: int = 0, mean: Triple | None = None, std: Triple | None = None, cutout_length: int = 0) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        if image_size < 8:
            raise ConfigurationError(f"ImageFolderDataModule: image_size={image_size} must be >= 8.")
        if (mean is None) != (std is None):
            raise ConfigurationError(f"ImageFolderDataModule: mean={mean} and std={std}: give both, or neither to "
                                     "compute them from the training images.")
        if std is not None and min(std) <= 0:
            raise ConfigurationError(f"ImageFolderDataModule: std={std} must be positive in every channel.")
        check_cutout_length("ImageFolderDataModule", cutout_length)
        self.data_dir = data_dir
        self.image_size = image_size
        self.cutout_length = cutout_length
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self.classes: list[str] = []

    def _roots(self) -> tuple[Path, Path | None]:
        root = Path(self.data_dir)
        if not root.is_dir():
            raise DataNotFoundError(f"--data.data_dir {self.data_dir!r} does not exist.\n{LAYOUT}")
        train = find_split(root, ("train",)) or root
        return train, find_split(root, ("val", "test"))

    def transforms(self) -> tuple[T.Compose, T.Compose]:
        """(training, evaluation) transforms; the normalisation must be known (given or computed at setup)."""
        size = self.image_size
        normalize = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        train = [T.Resize((size, size)), T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip(), *normalize]
        if self.cutout_length:
            train.append(Cutout(self.cutout_length))
        return T.Compose(train), T.Compose([T.Resize((size, size)), *normalize])

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        train_root, test_root = self._roots()
        if self.mean is None:
            size = self.image_size
            plain = image_folder(train_root, T.Compose([T.Resize((size, size)), T.ToTensor()]), "--data.data_dir")
            self.mean, self.std = channel_statistics(plain, self.seed, self.num_workers)
            rank_zero_info(f"ImageFolderDataModule: normalisation from {min(len(plain), STATISTICS_SAMPLE)} training "
                           f"images: mean={[round(m, 4) for m in self.mean]}, std={[round(s, 4) for s in self.std]}")
        train_tf, eval_tf = self.transforms()
        train_aug = image_folder(train_root, train_tf, "--data.data_dir")
        train_plain = image_folder(train_root, eval_tf, "--data.data_dir")
        test = image_folder(test_root, eval_tf, "--data.data_dir") if test_root else None
        if test is not None and test.classes != train_aug.classes:
            raise ConfigurationError(f"--data.data_dir {self.data_dir!r}: the class folders of {test_root.name}/ "
                             f"{test.classes} differ from train/ {train_aug.classes}; use the same classes.")
        self.classes = train_aug.classes
        return train_aug, train_plain, test

    def prepare_data(self) -> None:
        self._roots()

    @property  # type: ignore[override]
    def num_classes(self) -> int:
        """Number of class folders (read from the directory names, no image is opened)."""
        if self.classes:
            return len(self.classes)
        root = Path(self.data_dir)
        if not root.is_dir():
            return 0
        train_root = find_split(root, ("train",)) or root
        return sum(1 for p in train_root.iterdir() if p.is_dir())
