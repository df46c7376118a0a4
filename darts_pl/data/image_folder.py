"""Any image-classification dataset in the ImageFolder layout, for searching a cell on your own data.

Layout: ``data_dir/<class>/*.jpg`` (search only), or ``data_dir/train/<class>/*`` with
``data_dir/val/<class>/*`` (or ``test/``) for search and training. An unreadable or corrupt image stops
the run with an error naming the file (it is not skipped: a silently smaller dataset changes the split).
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import ImageFolder

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.errors import ConfigurationError, DataNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LAYOUT = """expected layout:
  DATA_DIR/train/<class_a>/xxx.jpg   (or DATA_DIR/<class_a>/xxx.jpg for search only)
  DATA_DIR/train/<class_b>/yyy.png
  DATA_DIR/val/<class_a>/zzz.jpg     (or test/; needed for mode=train)"""


def find_split(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def load_image(path: str) -> Image.Image:
    """Open an image as RGB; an unreadable or corrupt file stops the run with its path (no silent skip)."""
    try:
        with open(path, "rb") as handle:
            return Image.open(handle).convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DataNotFoundError(f"cannot read image {path!r} ({err}); remove or replace the file.") from None


def image_folder(root: Path, transform: T.Compose, setting: str) -> ImageFolder:
    """torchvision's ImageFolder, with an error that shows the expected layout."""
    try:
        return ImageFolder(str(root), transform=transform, loader=load_image)
    except (FileNotFoundError, RuntimeError) as err:
        raise DataNotFoundError(f"{setting} {str(root)!r} is not an image folder ({err}).\n{LAYOUT}") from None


class ImageFolderDataModule(ClassificationDataModule):
    """Images in class folders, resized to ``image_size``; augmentation: random crop with padding, flip.

    Args:
        data_dir: Root of the image folders (see the module docstring for the layout).
        image_size: Side the images are resized to (32 searches like CIFAR-10).
        mean: Per-channel normalisation mean (ImageNet's by default).
        std: Per-channel normalisation std.
        mode, batch_size, eval_batch_size, train_portion, num_workers, seed: See
            :class:`~darts_pl.data.base.ClassificationDataModule`.
    """

    def __init__(self, data_dir: str, image_size: int = 32, mode: Mode = "search", batch_size: int = 64,
                 eval_batch_size: int | None = None, train_portion: float = 0.5, num_workers: int = 0,
                 seed: int = 0, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        if image_size < 8:
            raise ConfigurationError(f"ImageFolderDataModule: image_size={image_size} must be >= 8.")
        self.data_dir = data_dir
        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.in_channels = len(self.mean)
        self.classes: list[str] = []

    def _roots(self) -> tuple[Path, Path | None]:
        root = Path(self.data_dir)
        if not root.is_dir():
            raise DataNotFoundError(f"--data.data_dir {self.data_dir!r} does not exist.\n{LAYOUT}")
        train = find_split(root, ("train",)) or root
        return train, find_split(root, ("val", "test"))

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        train_root, test_root = self._roots()
        size = self.image_size
        normalize = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        train_tf = T.Compose([T.Resize((size, size)), T.RandomCrop(size, padding=size // 8),
                              T.RandomHorizontalFlip(), *normalize])
        eval_tf = T.Compose([T.Resize((size, size)), *normalize])
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
