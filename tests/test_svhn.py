"""SVHN against tiny files in the dataset's own MATLAB format (``train_32x32.mat``, ``test_32x32.mat``: ``X`` uint8
``(32, 32, 3, N)``, ``y`` ``(N, 1)`` with 10 for the digit 0), written with ``scipy.io.savemat``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import yaml

from darts_pl.cli import main
from darts_pl.data import SVHNDataModule
from darts_pl.data.svhn import SVHN_MEAN, SVHN_STD
from darts_pl.errors import DataNotFoundError

from .conftest import REPO, run_dir


def write_svhn(root: Path, train: int = 40, test: int = 12, seed: int = 0) -> Path:
    """Tiny ``train_32x32.mat`` / ``test_32x32.mat`` in SVHN's layout; labels cycle 1..10 (10 is the digit 0)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train_32x32.mat", train), ("test_32x32.mat", test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n, dtype=np.uint8) % 10 + 1).reshape(n, 1)
        scipy.io.savemat(root / name, {"X": x, "y": y})
    return root


@pytest.fixture
def fake_svhn_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny files are not the official ones: accept them without their MD5 sums (tests only)."""
    import torchvision.datasets.svhn as svhn

    monkeypatch.setattr(svhn, "check_integrity", lambda *args, **kwargs: True)


@pytest.fixture
def tiny_svhn(tmp_path: Path, fake_svhn_checksums: None) -> Path:
    return write_svhn(tmp_path / "svhn")


def test_search_split_reads_the_mat_files(tiny_svhn: Path) -> None:
    dm = SVHNDataModule(data_dir=str(tiny_svhn), download=False, batch_size=4)
    dm.prepare_data()
    loaders = dm.train_dataloader()
    train_idx, val_idx = dm.search_indices()
    assert len(train_idx) == len(val_idx) == 20 and sorted(train_idx + val_idx) == list(range(40))
    x, y = next(iter(loaders["train"]))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.long
    labels = sorted({int(label) for _, label in dm.val_dataloader().dataset})
    assert labels == list(range(10))  # the file's 10 is the digit 0
    assert len(dm.val_dataloader().dataset) == 20


def test_pixels_and_normalisation_are_robust_darts(tiny_svhn: Path) -> None:
    raw = scipy.io.loadmat(tiny_svhn / "train_32x32.mat")
    dm = SVHNDataModule(data_dir=str(tiny_svhn), download=False, batch_size=4)
    dm.setup()
    image, label = dm._train_plain[3]  # the evaluation view: no augmentation
    expected = torch.from_numpy(raw["X"][:, :, :, 3]).permute(2, 0, 1).double() / 255  # (3, 32, 32)
    mean, std = torch.tensor(SVHN_MEAN).double()[:, None, None], torch.tensor(SVHN_STD).double()[:, None, None]
    torch.testing.assert_close(image.double(), (expected - mean) / std, rtol=0, atol=1e-5)
    assert label == int(raw["y"][3, 0]) % 10
    assert SVHN_MEAN == (0.4377, 0.4438, 0.4728) and SVHN_STD == (0.1980, 0.2010, 0.1970)
    train_tf = repr(dm.transforms()[0])
    assert "RandomCrop(size=(32, 32), padding=4)" in train_tf and "RandomHorizontalFlip" in train_tf


def test_train_mode_validates_on_the_test_file_with_cutout(tiny_svhn: Path) -> None:
    dm = SVHNDataModule(data_dir=str(tiny_svhn), download=False, batch_size=4, mode="train", cutout_length=16)
    assert len(dm.train_dataloader().dataset) == 40
    assert len(dm.val_dataloader().dataset) == 12
    assert [label for _, label in dm.val_dataloader().dataset][:10] == list(range(10))  # classes interleaved
    assert "Cutout(length=16)" in repr(dm.transforms()[0])


def test_search_mode_needs_only_the_training_file(tmp_path: Path, fake_svhn_checksums: None) -> None:
    root = write_svhn(tmp_path / "svhn")
    (root / "test_32x32.mat").unlink()
    dm = SVHNDataModule(data_dir=str(root), download=False, batch_size=4)
    dm.prepare_data()
    assert len(dm.val_dataloader().dataset) == 20
    with pytest.raises(DataNotFoundError, match=r"no test_32x32\.mat there"):
        SVHNDataModule(data_dir=str(root), download=False, mode="train").prepare_data()


def test_missing_or_corrupt_files_name_the_settings(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"--data\.data_dir '.*none'.*train_32x32\.mat.*--data\.download"):
        SVHNDataModule(data_dir=str(tmp_path / "none"), download=False).prepare_data()
    write_svhn(tmp_path / "bad")  # real MATLAB files, but not the official ones: torchvision's MD5 check fails
    with pytest.raises(DataNotFoundError, match=r"train_32x32\.mat: torchvision says: Dataset not found or corrupted"):
        SVHNDataModule(data_dir=str(tmp_path / "bad"), download=False).setup()


def test_unreadable_file_is_one_line(tmp_path: Path, fake_svhn_checksums: None) -> None:
    root = tmp_path / "svhn"
    root.mkdir()
    (root / "train_32x32.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(DataNotFoundError, match=r"train_32x32\.mat cannot be read as SVHN's MATLAB file"):
        SVHNDataModule(data_dir=str(root), download=False).setup()


def test_cli_reports_missing_svhn_in_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--data", "darts_pl.data.SVHNDataModule",
              "--data.init_args.data_dir", str(tmp_path / "none"), "--data.init_args.download", "false",
              "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("darts-pl: error:")]
    assert len(lines) == 1 and "SVHN is not available" in lines[0] and "--data.download" in lines[0]


@pytest.mark.slow
def test_search_runs_on_svhn_in_a_robust_darts_space(tiny_svhn: Path, tmp_path: Path, capsys) -> None:
    """RobustDARTS's third dataset through the CLI: the quickstart's search, in S2, on tiny SVHN files."""
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--config",
            str(REPO / "configs" / "spaces" / "s2.yaml"), "--data", "darts_pl.data.SVHNDataModule",
            "--data.init_args.data_dir", str(tiny_svhn), "--data.init_args.download", "false",
            "--data.init_args.batch_size", "8", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
            "--trainer.default_root_dir", str(tmp_path / "runs")]
    main(args)
    run = run_dir(tmp_path / "runs")
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["init_args"]["space"]["init_args"]["in_channels"] == 3  # linked from the data module
    assert (run / "genotype.json").is_file()
