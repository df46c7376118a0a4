"""Image data modules against tiny files in the real on-disk formats, and the real CIFAR-10 JPEGs."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from darts_pl.cli import main
from darts_pl.data import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule
from darts_pl.errors import ConfigurationError, DataNotFoundError

from .conftest import REPO

CLASSES = ("ant", "bee", "cat", "dog")


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


@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
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


def test_image_folder_errors_show_the_layout(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "images", splits=("train",))
    with pytest.raises(DataNotFoundError, match="expected layout"):
        ImageFolderDataModule(data_dir=str(tmp_path / "missing")).prepare_data()
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="expected layout"):
        ImageFolderDataModule(data_dir=str(empty)).setup()
    dm = ImageFolderDataModule(data_dir=str(images), mode="train", batch_size=4)
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


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", splits=("train",))
    bad = next((root / "train" / "cat").iterdir())
    bad.write_bytes(b"not a png")
    dm = ImageFolderDataModule(data_dir=str(root), image_size=16, batch_size=4, mode="search", train_portion=0.5,
                               mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    with pytest.raises(DataNotFoundError, match=rf"cannot read image .*{bad.name}.*remove or replace"):
        for loader in dm.train_dataloader().values():
            for _ in loader:
                pass


def test_converted_and_tiny_images_are_said_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    import darts_pl.data.image_folder as image_folder

    monkeypatch.setattr(image_folder, "_NOTED", set())
    cmyk = [tmp_path / f"cmyk{i}.jpg" for i in range(2)]
    for path in cmyk:
        Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(path)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tiny)
    with pytest.warns(UserWarning) as record:
        images = [image_folder.load_image(str(p)) for p in [*cmyk, tiny, tiny]]
    assert all(image.mode == "RGB" for image in images)
    messages = [str(w.message) for w in record]
    assert messages == [f"image folder: CMYK images are converted to RGB (first: {str(cmyk[0])!r}).",
                        f"image folder: images smaller than 8 px on a side are resized like the others (first: "
                        f"{str(tiny)!r}, 1x1)."]


# ----------------------------------------------------------------------------------------- tiny image folders
def write_image_folder(root: Path, per_class: int = 6, size: int = 16, splits: tuple[str, ...] = ("train", "val"),
                       seed: int = 0) -> Path:
    """PNG images in class folders (``root/<split>/<class>/NNNN.png``), files sorted by class as in most
    real datasets; channel scales 1, 0.5, 0.25 give each channel its own statistics."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3)) * np.array([1.0, 0.5, 0.25])
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root


def folder_pixels(root: Path) -> np.ndarray:
    """Every pixel of the images below ``root`` as (N, 3) floats in [0, 1]."""
    paths = sorted(root.rglob("*.png"))
    images = [np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255 for path in paths]
    return np.concatenate([image.reshape(-1, 3) for image in images])


def test_image_folder_normalises_with_statistics_of_its_training_images(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images")
    dm = ImageFolderDataModule(data_dir=str(root), image_size=16, mode="train", batch_size=4)
    dm.setup()
    pixels = folder_pixels(root / "train")
    assert np.allclose(dm.mean, pixels.mean(0), atol=1e-5) and np.allclose(dm.std, pixels.std(0), atol=1e-5)
    assert dm.mean[0] > 1.5 * dm.mean[1] > 2 * dm.mean[2]  # per channel, not ImageNet's constants
    x = torch.stack([dm._train_plain[i][0] for i in range(len(dm._train_plain))])  # (N, 3, 16, 16)
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    given = ImageFolderDataModule(data_dir=str(root), image_size=16, batch_size=4, mean=(0.5, 0.4, 0.3),
                                  std=(0.2, 0.2, 0.2))
    given.setup()
    assert given.mean == (0.5, 0.4, 0.3) and "mean=(0.5, 0.4, 0.3)" in repr(given.transforms()[1])


def test_image_folder_has_the_cifar_cutout(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images")
    dm = ImageFolderDataModule(data_dir=str(root), image_size=16, mode="train", batch_size=4, cutout_length=8)
    dm.setup()
    train_tf, eval_tf = dm.transforms()
    assert "Cutout(length=8)" in repr(train_tf) and "Cutout" not in repr(eval_tf)
    with pytest.raises(ConfigurationError, match=r"cutout_length=-1 must be >= 0"):
        ImageFolderDataModule(data_dir=str(root), cutout_length=-1)


def test_limited_evaluation_of_a_class_sorted_folder_sees_every_class(tmp_path: Path) -> None:
    """``limit_val_batches`` (configs/debug.yaml) evaluates a prefix of the loader: it must not be one class."""
    root = write_image_folder(tmp_path / "images")
    dm = ImageFolderDataModule(data_dir=str(root), image_size=16, mode="train", batch_size=4)
    first = next(iter(dm.val_dataloader()))[1]
    assert sorted(first.tolist()) == [0, 1, 2, 3]
    assert torch.equal(first, next(iter(dm.val_dataloader()))[1])  # deterministic
    assert sorted(next(iter(dm.test_dataloader()))[1].tolist()) == [0, 1, 2, 3]
    labels = torch.cat([y for _, y in dm.val_dataloader()])
    assert sorted(labels.tolist()) == sorted(dm._test.targets)  # still the whole set, each image once
    search = ImageFolderDataModule(data_dir=str(root / "train"), image_size=16, batch_size=4)
    assert sorted(next(iter(search.test_dataloader()))[1].tolist()) == [0, 1, 2, 3]


def _cli(args: list[str], tmp_path: Path) -> list[str]:
    return ["validate", "--config", str(REPO / "configs" / "train_cifar.yaml"), *args,
            "--model.init_args.channels", "4", "--model.init_args.num_cells", "3", "--model.init_args.auxiliary",
            "false", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "runs")]


def test_switching_to_an_image_folder_keeps_the_cifar_recipe(tmp_path: Path, capsys) -> None:
    root = write_image_folder(tmp_path / "images")
    args = ["--data", "darts_pl.data.ImageFolderDataModule", "--data.data_dir", str(root),
            "--data.batch_size", "4", "--data.num_workers", "0"]
    with pytest.raises(SystemExit):
        main([*_cli(args, tmp_path), "--print_config"])
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["init_args"]["cutout_length"] == 16  # train_cifar.yaml's, carried over
    main(_cli(args, tmp_path))  # download: true (CIFAR-10's default) is dropped without an error


def test_switching_data_modules_refuses_to_drop_a_setting(tmp_path: Path, capsys) -> None:
    root = write_image_folder(tmp_path / "images")
    overlay = tmp_path / "folder.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"class_path": "darts_pl.data.ImageFolderDataModule", "init_args": {
        "data_dir": str(root), "image_size": 24, "batch_size": 4}}}))
    with pytest.raises(SystemExit) as exit_info:
        main(_cli(["--config", str(overlay), "--data", "darts_pl.data.CIFAR10DataModule", "--data.download", "false"],
                  tmp_path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "image_size=24" in err and "ImageFolderDataModule" in err and "CIFAR10DataModule" in err
