"""LightningDataModules for search and training."""
from darts_pl.data.base import ClassificationDataModule
from darts_pl.data.cifar import CIFAR10DataModule
from darts_pl.data.digits import DigitsDataModule
from darts_pl.data.image_folder import ImageFolderDataModule

__all__ = ["CIFAR10DataModule", "ClassificationDataModule", "DigitsDataModule", "ImageFolderDataModule"]
