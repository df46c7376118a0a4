"""Image data modules against tiny files in the real on-disk formats, and the real CIFAR-10 JPEGs."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch

from darts_pl.data import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule
from darts_pl.errors import DataNotFoundError


def test_cifar10_search_split_from_real_pickle_format(tiny_cifar: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(tiny_cifar), download=False, batch_size=4)
    dm.prepare_data()
    loaders = dm.train_dataloader()
    assert set(loaders) == {"train", "val"}
    train_idx, val_idx = dm.search_indices()
    assert len(train_idx) == len(val_idx) == 20 and not set(train_idx) & set(val_idx)
    assert sorted(train_idx + val_idx) == list(range(40))
    x, y = next(iter(loaders["train"]))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.long
    assert dm.search_indices() == (train_idx, val_idx)  # seeded: the same on every call/rank
    assert len(dm.val_dataloader().dataset) == 20


def test_cifar10_train_mode_uses_test_set_and_cutout(tiny_cifar: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(tiny_cifar), download=False, batch_size=4, mode="train", cutout_length=16)
    assert len(dm.train_dataloader().dataset) == 40
    assert len(dm.val_dataloader().dataset) == 8
    assert "Cutout(length=16)" in repr(dm.transforms()[0])


def test_cifar10_missing_names_the_settings(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(tmp_path / "none"), download=False)
    with pytest.raises(DataNotFoundError, match=r"--data\.data_dir.*--data\.download"):
        dm.prepare_data()


def extract_jpegs(tar_path: Path, dest: Path, per_class: int, split: str = "train") -> Path:
    """Unpack the first ``per_class`` images of every class of one split (real CIFAR-10 JPEGs)."""
    counts: dict[str, int] = {}
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or split not in parts:
                continue
            cls = parts[-2]
            if counts.get(cls, 0) >= per_class:
                if len(counts) == 10 and min(counts.values()) >= per_class:
                    break
                continue
            counts[cls] = counts.get(cls, 0) + 1
            target = dest / split / cls / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return dest


@pytest.fixture(scope="module")
def cifar_jpegs(tmp_path_factory) -> Path:
    from .conftest import SHARED_DATA

    tar = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not tar.is_file():
        pytest.skip("real CIFAR-10 JPEGs not available")
    return extract_jpegs(tar, tmp_path_factory.mktemp("jpegs"), per_class=4)


def test_image_folder_search_split_on_real_jpegs(cifar_jpegs: Path) -> None:
    dm = ImageFolderDataModule(data_dir=str(cifar_jpegs), image_size=32, batch_size=8)
    assert dm.num_classes == 10
    loaders = dm.train_dataloader()
    x, y = next(iter(loaders["train"]))
    assert x.shape == (8, 3, 32, 32) and y.max() < 10
    assert len(loaders["train"].dataset) == len(loaders["val"].dataset) == 20
    assert dm.classes[0] == "airplane"


def test_image_folder_errors_show_the_layout(tmp_path: Path, cifar_jpegs: Path) -> None:
    with pytest.raises(DataNotFoundError, match="expected layout"):
        ImageFolderDataModule(data_dir=str(tmp_path / "missing")).prepare_data()
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="expected layout"):
        ImageFolderDataModule(data_dir=str(empty)).setup()
    dm = ImageFolderDataModule(data_dir=str(cifar_jpegs), mode="train")
    with pytest.raises(ValueError, match="mode='train' needs a test"):
        dm.setup()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_portion": 1.0}, "train_portion=1.0 must be in"),
    ({"train_portion": 0.0}, "train_portion=0.0 must be in"),
    ({"batch_size": 5000}, "batch_size=5000 is larger than the weight-train split"),
    ({"mode": "eval"}, "unknown mode='eval'"),
])
def test_bad_data_settings(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        DigitsDataModule(**kwargs).setup()


def test_digits_is_real_and_offline() -> None:
    dm = DigitsDataModule(batch_size=32)
    dm.setup()
    train_idx, val_idx = dm.search_indices()
    assert len(train_idx) + len(val_idx) + len(dm.test_dataloader().dataset) == 1797
    x, y = next(iter(dm.train_dataloader()["train"]))
    assert x.shape == (32, 1, 8, 8) and set(y.tolist()) <= set(range(10))


def test_corrupt_image_is_named(tmp_path: Path, cifar_jpegs: Path) -> None:
    import shutil

    root = tmp_path / "images"
    shutil.copytree(cifar_jpegs, root)
    bad = next((root / "train" / "cat").iterdir())
    bad.write_bytes(b"not a jpeg")
    dm = ImageFolderDataModule(data_dir=str(root), batch_size=20, mode="search", train_portion=0.5)
    with pytest.raises(DataNotFoundError, match=rf"cannot read image .*{bad.name}.*remove or replace"):
        for loader in dm.train_dataloader().values():
            for _ in loader:
                pass
