"""ImageNet16-120 (NAS-Bench-201's downsampled ImageNet) and NAS-Bench-201's held-out search split.

The expected values come from the authors' reader and transforms (AutoDL-Projects f46486e, ``ImageNet16`` and
``get_datasets``) on the same tiny batches: ``tests/goldens/imagenet16.py`` regenerates them.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from darts_pl.cli import main
from darts_pl.data import CIFAR100DataModule, ImageNet16DataModule
from darts_pl.data.imagenet16 import ImageNet16
from darts_pl.errors import ConfigurationError, DataNotFoundError

from .conftest import REPO, run_dir
from .imagenet16_files import labels_for, write_imagenet16
from .test_nb201 import write_cifar100

# tests/goldens/imagenet16.py on AutoDL-Projects f46486e21b71ae6459a700be720d7648b5429569
TRAIN_LEN, VAL_LEN = 90, 18
TRAIN_TARGETS = [1, 2, 3, 4, 5, 6, 7, 119, 0, 2, 3, 4, 5, 6, 7, 119, 0, 1, 2, 3, 4, 5, 6, 7, 119, 0, 1, 3, 4, 5, 6, 7,
                 119, 0, 1, 2, 4, 5, 6, 7, 119, 0, 1, 2, 3, 4, 5, 6, 7, 119, 0, 1, 2, 3, 5, 6, 7, 119, 0, 1, 2, 3, 4, 6,
                 7, 119, 0, 1, 2, 3, 4, 5, 6, 7, 119, 0, 1, 2, 3, 4, 5, 7, 119, 0, 1, 2, 3, 4, 5, 6]
VAL_TARGETS = [0, 1, 2, 3, 4, 5, 6, 7, 119, 0, 1, 2, 3, 4, 5, 6, 7, 119]
VAL_SUMS = [174.2623470385, 147.5388957085, 143.3043900715, 165.6430887305, 156.8352401732, 186.7497240187,
            151.1552272721, 167.816882522, 140.2592540195, 145.9000578949, 194.6342721067, 114.2483220538,
            200.9832317199, 156.3860067553, 138.6410006984, 148.3756319658, 165.7957608858, 209.3560849773]
VAL_PIXEL_0 = [-0.580196023, -1.1697682142, 2.2582578659]
TRAIN_AUG_SUMS = [-152.625370695, -113.2397584274, 90.9011669038, -20.1145616923, -81.1589090815, -75.6097968286]


@pytest.fixture
def imagenet16(tmp_path: Path) -> Path:
    return write_imagenet16(tmp_path / "ImageNet16")


def _search_module(root: Path, **kwargs) -> ImageNet16DataModule:
    dm = ImageNet16DataModule(str(root), batch_size=4, **kwargs)
    dm.setup("fit")
    return dm


def test_reads_the_pickles_as_the_authors(imagenet16: Path) -> None:
    dm = ImageNet16DataModule(str(imagenet16), mode="train", batch_size=4)
    dm.setup("fit")
    assert (dm.num_classes, dm.in_channels) == (120, 3)
    train, val = dm._train_plain, dm._test
    assert (len(train), len(val)) == (TRAIN_LEN, VAL_LEN)
    assert train.targets == TRAIN_TARGETS and val.targets == VAL_TARGETS  # first 120 classes, 0-based, file order
    sums = [float(val[i][0].double().sum()) for i in range(len(val))]
    np.testing.assert_allclose(sums, VAL_SUMS, rtol=0, atol=1e-4)  # float32 images summed: 256 values each
    np.testing.assert_allclose(val[0][0][:, 3, 5].double().tolist(), VAL_PIXEL_0, rtol=0, atol=1e-6)
    torch.manual_seed(0)
    augmented = [float(dm._train_aug[i][0].double().sum()) for i in range(6)]  # flip, crop 16 pad 2, same draws
    np.testing.assert_allclose(augmented, TRAIN_AUG_SUMS, rtol=0, atol=1e-4)


def test_decodes_the_planes_of_a_row(imagenet16: Path) -> None:
    """A row is the red, then green, then blue 16×16 plane; kept rows stay in file order."""
    with open(imagenet16 / "val_data", "rb") as handle:
        raw = pickle.load(handle, encoding="latin1")
    kept = [i for i, label in enumerate(raw["labels"]) if label <= 120]
    images = ImageNet16(imagenet16, train=False).data  # (N, 16, 16, 3)
    assert images.shape == (len(kept), 16, 16, 3) and images.dtype == np.uint8
    row = raw["data"][kept[4]]
    assert images[4, 2, 7].tolist() == [row[2 * 16 + 7], row[256 + 2 * 16 + 7], row[512 + 2 * 16 + 7]]
    assert len(ImageNet16(imagenet16, train=False, num_classes=1000)) == len(raw["labels"])


def test_search_split_of_the_training_images(imagenet16: Path) -> None:
    dm = _search_module(imagenet16, train_portion=0.5)
    loaders = dm.train_dataloader()
    assert set(loaders) == {"train", "val"}
    assert len(loaders["train"].dataset) == len(loaders["val"].dataset) == TRAIN_LEN // 2
    batch = next(iter(loaders["train"]))
    assert batch[0].shape == (4, 3, 16, 16) and batch[0].dtype == torch.float32
    assert len(dm.val_dataloader().dataset) == TRAIN_LEN // 2


def test_holdout_split_trains_weights_on_everything_and_alphas_on_half_the_validation_images(
        imagenet16: Path, tmp_path: Path) -> None:
    dm = _search_module(imagenet16, search_split="holdout")
    loaders = dm.train_dataloader()
    assert len(loaders["train"].dataset) == TRAIN_LEN
    alpha = loaders["val"].dataset
    assert len(alpha) == VAL_LEN // 2 and alpha.indices == dm.heldout_indices()
    assert alpha.dataset.transform is not None and "RandomCrop" in repr(alpha.dataset.transform)  # augmented
    val = dm.val_dataloader().dataset
    assert val.indices == alpha.indices and "RandomCrop" not in repr(val.dataset.transform)
    assert dm.heldout_indices() == _search_module(imagenet16, search_split="holdout").heldout_indices()  # seeded
    # the authors' split file (AutoDL-Projects configs/nas-benchmark/imagenet-16-120-test-split.txt format)
    split = tmp_path / "imagenet-16-120-test-split.txt"
    split.write_text(json.dumps({"xvalid": ["int", ["1", "2", "5", "17"]], "xtest": ["int", ["0", "3"]]}))
    dm = _search_module(imagenet16, search_split="holdout", split_file=str(split))
    assert dm.train_dataloader()["val"].dataset.indices == [1, 2, 5, 17]
    split.write_text(json.dumps({"xvalid": ["int", ["1", "18"]]}))
    with pytest.raises(ConfigurationError, match="index 18 is outside the held-out set of 18 images"):
        _search_module(imagenet16, search_split="holdout", split_file=str(split))
    with pytest.raises(ConfigurationError, match="needs search_split='holdout'"):
        ImageNet16DataModule(str(imagenet16), split_file=str(split))


def test_cifar100_holdout_split(tmp_path: Path, fake_cifar_checksums: None) -> None:
    root = write_cifar100(tmp_path, train_size=12, test_size=8)
    dm = CIFAR100DataModule(str(root), download=False, search_split="holdout", batch_size=2)
    dm.setup("fit")
    loaders = dm.train_dataloader()
    assert len(loaders["train"].dataset) == 12 and len(loaders["val"].dataset) == 4
    assert loaders["val"].dataset.dataset.train is False  # the test images, augmented
    assert next(iter(loaders["val"]))[0].shape == (2, 3, 32, 32)
    plain = CIFAR100DataModule(str(root), download=False, batch_size=2)
    plain.setup("fit")
    assert len(plain.train_dataloader()["train"].dataset) == 6  # the 50/50 split of the training set stays default


def test_missing_and_wrong_files_are_one_line(imagenet16: Path, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no such folder"):
        ImageNet16DataModule(str(tmp_path / "nowhere")).prepare_data()
    assert ImageNet16DataModule(str(imagenet16.parent)).root() == imagenet16  # the parent of ImageNet16/ works
    (imagenet16 / "train_data_batch_7").unlink()
    with pytest.raises(DataNotFoundError, match=r"lacks train_data_batch_7; it needs") as info:
        ImageNet16DataModule(str(imagenet16)).setup("fit")
    assert "\n" not in str(info.value)
    big = np.zeros((2, 3 * 32 * 32), np.uint8)
    with open(imagenet16 / "train_data_batch_7", "wb") as handle:
        pickle.dump({"data": big, "labels": labels_for(2, 0)}, handle, protocol=2)
    with pytest.raises(DataNotFoundError, match=r"train_data_batch_7.*\(2, 3072\).*a 16x16 batch holds \(N, 768\)"):
        ImageNet16DataModule(str(imagenet16)).setup("fit")
    (imagenet16 / "train_data_batch_7").write_bytes(b"not a pickle")
    with pytest.raises(DataNotFoundError, match="is not a downsampled-ImageNet pickle batch"):
        ImageNet16DataModule(str(imagenet16)).setup("fit")
    with pytest.raises(ConfigurationError, match=r"num_classes=0 must be in 1\.\.1000"):
        ImageNet16DataModule(str(imagenet16), num_classes=0)
    with pytest.raises(ConfigurationError, match="search_split='valid' is unknown"):
        ImageNet16DataModule(str(imagenet16), search_split="valid")  # type: ignore[arg-type]


@pytest.mark.slow
def test_nb201_imagenet16_config_searches_two_batches(imagenet16: Path, tmp_path: Path, capsys) -> None:
    """The benchmark's ImageNet16-120 recipe runs on the real file format; the model gets 120 classes."""
    args = ["fit", "--config", str(REPO / "configs" / "search_nb201_imagenet16.yaml"),
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "runs"), "--data.init_args.data_dir", str(imagenet16),
            "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
            "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "1"]
    try:
        main(args)
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err[-3000:]
    run = run_dir(tmp_path / "runs")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["hyper_parameters"]["space"]["init_args"]["num_classes"] == 120
    classifier = [v for k, v in ckpt["state_dict"].items() if k.endswith("classifier.weight")]
    assert classifier and classifier[0].shape[0] == 120
    data = ckpt["datamodule_hyper_parameters"] if "datamodule_hyper_parameters" in ckpt else {}
    assert not data or data.get("search_split") == "holdout"
