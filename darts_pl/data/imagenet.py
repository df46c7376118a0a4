"""ImageNet (ILSVRC-2012) in the standard ImageFolder layout, for training a found cell in the mobile
setting (Liu et al., 2019, Sec. 3.3; augmentation as in the original ``train_imagenet.py``), and for searching
on per-class subsets of its training set (PC-DARTS, Xu et al., 2020, Sec. 4.3: 10% for weights, 2.5% for
architecture)."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import ImageFolder

from darts_pl.data.base import ClassificationDataModule, Mode
from darts_pl.data.image_folder import IMAGENET_MEAN, IMAGENET_STD
from darts_pl.errors import ConfigurationError, DataNotFoundError

LAYOUT = """expected layout (the standard ImageNet ImageFolder layout):
  DATA_DIR/train/n01440764/n01440764_10026.JPEG
  DATA_DIR/train/n01443537/...                   (one folder per class: 1000 wnids)
  DATA_DIR/val/n01440764/ILSVRC2012_val_00000293.JPEG
  DATA_DIR/val/n01443537/...                     (the validation images sorted into the same class folders)"""


def _folder(root: Path, transform: T.Compose) -> ImageFolder:
    try:
        return ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as err:
        raise DataNotFoundError(f"--data.data_dir: {str(root)!r} holds no class folders of images ({err}).\n"
                                f"{LAYOUT}") from None


class ImageNetDataModule(ClassificationDataModule):
    """ImageNet with the DARTS augmentation.

    Training: random resized crop to ``crop_size``, horizontal flip, colour jitter (brightness, contrast,
    saturation 0.4, hue 0.2), normalise. Evaluation: resize the short side to ``resize_size``, centre
    crop ``crop_size``, normalise. In ``mode="train"`` the ``val/`` split is the validation and test set.

    In ``mode="search"`` the training set is split in two (``train_portion``), or, with ``train_subset`` and
    ``val_subset``, two disjoint random subsets are drawn from every class: PC-DARTS searches on 10% and 2.5%
    of ImageNet's training images (``configs/search_imagenet_pc_darts.yaml``). The authors draw them once into
    a folder of their own; here they are drawn (seeded) from the full folder, so none is copied.

    Args:
        data_dir: Root holding ``train/`` and ``val/`` (see ``LAYOUT``).
        crop_size: Side of the training and evaluation crops (224 in the mobile setting; the network's
            final 7×7 pooling expects it).
        resize_size: Short side evaluation images are resized to before the centre crop (256).
        color_jitter: Colour jitter in the training augmentation (DARTS's ``train_imagenet.py``; PC-DARTS's
            ImageNet search has none).
        train_subset: Search mode: the fraction of every class's training images used for weight steps
            (0.1 in PC-DARTS); with ``val_subset``, replaces the ``train_portion`` split.
        val_subset: Search mode: the fraction of every class's training images, disjoint from the first, used
            for alpha steps and validation (0.025 in PC-DARTS).
        mode, batch_size, eval_batch_size, train_portion, num_workers, seed: See
            :class:`~darts_pl.data.base.ClassificationDataModule`.
    """

    def __init__(self, data_dir: str = "data/imagenet", mode: Mode = "train", batch_size: int = 128,
                 eval_batch_size: int | None = None, train_portion: float = 0.5, num_workers: int = 8,
                 seed: int = 0, crop_size: int = 224, resize_size: int = 256, color_jitter: bool = True,
                 train_subset: float | None = None, val_subset: float | None = None) -> None:
        super().__init__(mode=mode, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         train_portion=train_portion, num_workers=num_workers, seed=seed)
        if not 0 < crop_size <= resize_size:
            raise ConfigurationError(f"ImageNetDataModule: crop_size={crop_size} must be in (0, resize_size="
                                     f"{resize_size}] (224 and 256 in the paper).")
        if (train_subset is None) != (val_subset is None):
            raise ConfigurationError(f"ImageNetDataModule: train_subset={train_subset} and val_subset={val_subset}; "
                                     "set both (PC-DARTS: 0.1 and 0.025) or neither (the train_portion split).")
        if train_subset is not None and val_subset is not None and not (
                0 < train_subset < 1 and 0 < val_subset < 1 and train_subset + val_subset <= 1):
            raise ConfigurationError(f"ImageNetDataModule: train_subset={train_subset}, val_subset={val_subset} must "
                                     "be fractions in (0, 1) summing to at most 1 (PC-DARTS: 0.1 and 0.025).")
        self.data_dir = data_dir
        self.color_jitter = color_jitter
        self.train_subset = train_subset
        self.val_subset = val_subset
        self.crop_size = crop_size
        self.resize_size = resize_size
        self.classes: list[str] = []

    def _roots(self) -> tuple[Path, Path]:
        root = Path(self.data_dir)
        missing = [name for name in ("train", "val") if not (root / name).is_dir()]
        if missing:
            where = "does not exist" if not root.is_dir() else f"has no {' or '.join(f'{m}/' for m in missing)}"
            raise DataNotFoundError(f"--data.data_dir {self.data_dir!r} {where}.\n{LAYOUT}")
        return root / "train", root / "val"

    def transforms(self) -> tuple[T.Compose, T.Compose]:
        normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        train = T.Compose([
            T.RandomResizedCrop(self.crop_size),
            T.RandomHorizontalFlip(),
            *([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)] if self.color_jitter else []),
            *normalize,
        ])
        evaluation = T.Compose([T.Resize(self.resize_size), T.CenterCrop(self.crop_size), *normalize])
        return train, evaluation

    def prepare_data(self) -> None:
        self._roots()

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset | None]:
        train_root, val_root = self._roots()
        train_tf, eval_tf = self.transforms()
        train_aug = _folder(train_root, train_tf)
        # The same file list with the evaluation transform: scanning 1.28M files once is enough.
        train_plain = copy.copy(train_aug)
        train_plain.transform = eval_tf
        val = _folder(val_root, eval_tf)
        if val.classes != train_aug.classes:
            extra = sorted(set(val.classes) ^ set(train_aug.classes))[:5]
            raise DataNotFoundError(
                f"--data.data_dir {self.data_dir!r}: the class folders of val/ ({len(val.classes)}) differ from "
                f"train/ ({len(train_aug.classes)}), e.g. {extra}; sort val/ into the train/ class folders.\n{LAYOUT}")
        self.classes = train_aug.classes
        return train_aug, train_plain, val

    def search_indices(self) -> tuple[list[int], list[int]]:
        """The weight-train / alpha-val split: ``train_portion`` of a seeded permutation, or with ``train_subset``
        and ``val_subset`` that fraction of every class (at least one image each), drawn without overlap."""
        if self.train_subset is None or self.val_subset is None:
            return super().search_indices()
        by_class: dict[int, list[int]] = {}
        for index, label in enumerate(self._train_aug.targets):  # type: ignore[union-attr]
            by_class.setdefault(int(label), []).append(index)
        generator = torch.Generator().manual_seed(self.seed)
        train, val = [], []
        for label in sorted(by_class):
            members = by_class[label]
            order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
            n_train = max(1, round(self.train_subset * len(members)))
            n_val = max(1, round(self.val_subset * len(members)))
            train += order[:n_train]
            val += order[n_train:n_train + n_val]
        return train, val

    @property  # type: ignore[override]
    def num_classes(self) -> int:
        """Number of class folders under ``train/`` (no image is opened); 0 while the data is absent."""
        if self.classes:
            return len(self.classes)
        train_root = Path(self.data_dir) / "train"
        if not train_root.is_dir():
            return 0
        return sum(1 for p in train_root.iterdir() if p.is_dir())
