"""LightningDataModules for search and training."""
from darts_pl.data.base import ClassificationDataModule
from darts_pl.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from darts_pl.data.digits import DigitsDataModule
from darts_pl.data.image_folder import ImageFolderDataModule
from darts_pl.data.imagenet import ImageNetDataModule
from darts_pl.data.imagenet16 import ImageNet16DataModule
from darts_pl.data.svhn import SVHNDataModule
from darts_pl.data.text import PTBDataModule, TextDataModule, WikiText2DataModule

__all__ = [
    "CIFAR10DataModule", "CIFAR100DataModule", "ClassificationDataModule", "DigitsDataModule", "ImageFolderDataModule",
    "ImageNet16DataModule", "ImageNetDataModule", "PTBDataModule", "SVHNDataModule", "TextDataModule",
    "WikiText2DataModule",
]
