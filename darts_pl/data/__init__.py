"""LightningDataModules for search and training."""
from darts_pl.data.base import ClassificationDataModule
from darts_pl.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from darts_pl.data.digits import DigitsDataModule
from darts_pl.data.image_folder import ImageFolderDataModule
from darts_pl.data.imagenet import ImageNetDataModule

__all__ = ["CIFAR10DataModule", "ClassificationDataModule", "DigitsDataModule", "ImageFolderDataModule"]
__all__ += ["ImageNetDataModule"]
from darts_pl.data.text import PTBDataModule, TextDataModule, WikiText2DataModule  # noqa: E402

__all__ += ["PTBDataModule", "TextDataModule", "WikiText2DataModule"]
__all__ += ["CIFAR100DataModule"]
from darts_pl.data.imagenet16 import ImageNet16DataModule  # noqa: E402

__all__ += ["ImageNet16DataModule"]
