"""Training derived CNNs: loss, drop-path schedule, data modules on real on-disk formats, configs, and the
search → genotype.json → training round trip."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import Callback

from darts_pl import genotypes
from darts_pl.callbacks import DropPathSchedule, GenotypeCheckpoint
from darts_pl.cli import main as cli_main
from darts_pl.data import CIFAR10DataModule, DigitsDataModule, ImageNetDataModule
from darts_pl.data.transforms import Cutout
from darts_pl.errors import DataNotFoundError
from darts_pl.genotypes import DARTS_V2, RNN_DARTS_V2, GenotypeError
from darts_pl.modules import LitClassifier, LitSearch
from darts_pl.search import CNNSearchSpace
from darts_pl.strategies import FirstOrder

from .conftest import SHARED_DATA, write_cifar10_batches

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
CLASSES = ("airplane", "automobile", "bird")



def _trainer(root: Path, **kwargs) -> L.Trainer:
    options = dict(default_root_dir=root, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                   gradient_clip_val=5.0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1)
    options.update(kwargs)
    return L.Trainer(**options)


def _tiny(**kwargs) -> LitClassifier:
    options = dict(genotype="DARTS_V2", network="cifar", channels=4, num_cells=3, num_classes=10, auxiliary=True)
    options.update(kwargs)
    return LitClassifier(**options)


# ----------------------------------------------------------------------------- fake data in real formats
@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAR-10 as torchvision reads it: cifar-10-batches-py/ with pickled batches and batches.meta."""
    return write_cifar10_batches(tmp_path_factory.mktemp("cifar10"), per_batch=4, test_size=6)


@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
def imagenet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ImageNet-layout folder of real JPEGs: 2 train and 1 val image for each of 3 CIFAR classes."""
    archive = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real image samples not found at {archive}")
    root = tmp_path_factory.mktemp("imagenet")
    wanted = {f"train/{c}/{i:04d}.jpg": (("train" if i < 2 else "val"), c) for c in CLASSES for i in range(3)}
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.name in wanted:
                split, cls = wanted.pop(member.name)
                target = root / split / cls / Path(member.name).name.replace(".jpg", ".JPEG")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
            if not wanted:
                break
    assert not wanted, f"missing from the archive: {sorted(wanted)}"
    return root


# ----------------------------------------------------------------------------- loss and transforms
def test_label_smoothing_matches_its_formula() -> None:
    model = _tiny(label_smoothing=0.1, auxiliary_weight=0.4)
    logits, logits_aux = torch.randn(5, 10), torch.randn(5, 10)
    target = torch.tensor([0, 3, 9, 3, 1])

    def smoothed(z: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
        # The original CrossEntropyLabelSmooth: q = (1 - eps)·one_hot + eps/K; loss = mean_b sum_k -q log p.
        q = (1 - eps) * F.one_hot(target, 10).float() + eps / 10
        return (-q * z.log_softmax(1)).sum(1).mean()

    loss, loss_aux = model.training_loss(logits, logits_aux, target)
    torch.testing.assert_close(loss_aux, smoothed(logits_aux))
    torch.testing.assert_close(loss, smoothed(logits) + 0.4 * smoothed(logits_aux))
    assert not torch.allclose(smoothed(logits), F.cross_entropy(logits, target))
    plain, none = _tiny(label_smoothing=0.0).training_loss(logits, None, target)
    assert none is None
    torch.testing.assert_close(plain, F.cross_entropy(logits, target))


def test_cutout_masks_a_square_of_the_given_size() -> None:
    cutout = Cutout(16, generator=torch.Generator().manual_seed(0))
    full = 0
    for _ in range(40):
        out = cutout(torch.ones(3, 32, 32))
        zero = out == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # every channel alike
        rows, cols = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert rows.tolist() == list(range(rows[0], rows[0] + h)) and cols.tolist() == list(range(cols[0], cols[0] + w))
        assert int(zero[0].sum()) == h * w  # a filled rectangle
        assert 0 < h <= 16 and 0 < w <= 16  # clipped at the border, never larger
        full += (h, w) == (16, 16)
    assert full >= 10  # away from the border it is the whole 16×16 square


def test_bad_genotypes_are_refused_with_the_setting_named(tmp_path) -> None:
    with pytest.raises(GenotypeError, match=r"--model.genotype.*recurrent"):
        _tiny(genotype="RNN_DARTS_V2")
    with pytest.raises(GenotypeError, match=r"--model.genotype.*Unknown genotype 'DARTS_V9'"):
        _tiny(genotype="DARTS_V9")
    bad = genotypes.to_dict(DARTS_V2)
    bad["normal"] = bad["normal"][:7]
    with pytest.raises(GenotypeError, match="7 edges"):
        _tiny(genotype=bad)
    genotypes.save(RNN_DARTS_V2, tmp_path / "rnn.json")
    with pytest.raises(GenotypeError, match="recurrent"):
        _tiny(genotype=str(tmp_path / "rnn.json"))
    empty = genotypes.to_dict(DARTS_V2)  # a threshold derivation before any weight reached the threshold
    empty["normal"] = [["none", j] for _, j in empty["normal"]]
    with pytest.raises(GenotypeError, match=r"the normal cell keeps no op.*search longer"):
        _tiny(genotype=empty)
    model = _tiny(genotype=genotypes.to_dict(DARTS_V2))
    assert model.network.genotype == DARTS_V2 and model.hparams["genotype"] == genotypes.to_dict(DARTS_V2)


# ----------------------------------------------------------------------------- drop-path schedule
class _RecordDropPath(Callback):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(pl_module.network.drop_path_prob)


def test_drop_path_schedule_ramps_linearly(tmp_path) -> None:
    record = _RecordDropPath()
    model = _tiny(auxiliary=False, in_channels=1, drop_path_prob=0.3)
    data = DigitsDataModule(mode="train", batch_size=8)
    trainer = _trainer(tmp_path, max_epochs=4, limit_train_batches=1, limit_val_batches=0,
                       callbacks=[DropPathSchedule(), record])
    trainer.fit(model, data)
    assert record.seen == pytest.approx([0.0, 0.075, 0.15, 0.225])  # 0.3 · epoch / 4
    assert trainer.callback_metrics["drop_path_prob"].item() == pytest.approx(0.225)


# ----------------------------------------------------------------------------- real fits on tiny files
def test_fit_cifar10_pickles_two_batches(tmp_path, cifar_dir: Path, fake_cifar_checksums: None) -> None:
    data = CIFAR10DataModule(data_dir=str(cifar_dir), download=False, mode="train", batch_size=4, cutout_length=16)
    model = _tiny(auxiliary=True)
    before = [p.detach().clone() for p in model.network.parameters()]
    trainer = _trainer(tmp_path, callbacks=[DropPathSchedule()])
    trainer.fit(model, data)
    assert trainer.global_step == 2
    assert "Cutout(length=16)" in repr(data._train_aug.transform)
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/loss_aux", "train/acc", "train/acc_top5", "val/loss", "val/acc", "val/acc_top5"):
        assert torch.isfinite(metrics[key]), key
    assert 0.0 <= metrics["val/acc"] <= metrics["val/acc_top5"] <= 1.0
    changed = [not torch.equal(a, b) for a, b in zip(before, model.network.parameters())]
    assert all(changed[:3]) and sum(changed) > 0.9 * len(changed)


def test_fit_imagenet_folder_one_batch(tmp_path, imagenet_dir: Path) -> None:
    data = ImageNetDataModule(data_dir=str(imagenet_dir), batch_size=2, num_workers=0)
    assert data.num_classes == 3
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (2, 3, 224, 224) and y.dtype == torch.long
    assert next(iter(data.val_dataloader()))[0].shape == (2, 3, 224, 224)
    model = LitClassifier("DARTS_V2", network="imagenet", channels=8, num_cells=3, num_classes=data.num_classes,
                          auxiliary=True, label_smoothing=0.1, drop_path_prob=0.0)
    trainer = _trainer(tmp_path, limit_train_batches=1)
    trainer.fit(model, data)
    assert trainer.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


def test_imagenet_missing_folders_show_the_layout(tmp_path) -> None:
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match=r"has no val/(.|\n)*DATA_DIR/val/n01440764"):
        ImageNetDataModule(data_dir=str(tmp_path)).setup()
    with pytest.raises(DataNotFoundError, match=r"does not exist(.|\n)*DATA_DIR/train/n01440764"):
        ImageNetDataModule(data_dir=str(tmp_path / "nowhere")).prepare_data()


# ----------------------------------------------------------------------------- configs and the CLI
def test_train_cifar_config_is_the_paper_recipe(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(CONFIGS / "train_cifar.yaml"), "--model.genotype", "DARTS_V2",
                  "--print_config"])
    assert exit_info.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    model, trainer, data = cfg["model"]["init_args"], cfg["trainer"], cfg["data"]["init_args"]
    assert (model["genotype"], model["network"], model["channels"], model["num_cells"]) == ("DARTS_V2", "cifar", 36, 20)
    assert (model["auxiliary"], model["auxiliary_weight"], model["drop_path_prob"]) == (True, 0.4, 0.2)
    assert model["optimizer"]["class_path"] == "torch.optim.SGD"
    opt = model["optimizer"]["init_args"]
    assert (opt["lr"], opt["momentum"], opt["weight_decay"]) == (0.025, 0.9, 3e-4)
    sched = model["scheduler"]
    assert sched["class_path"].endswith("CosineAnnealingLR") and sched["init_args"]["T_max"] == 600
    assert sched["init_args"]["eta_min"] == 0.0
    clip = (trainer["gradient_clip_val"], trainer["gradient_clip_algorithm"])
    assert trainer["max_epochs"] == 600 and clip == (5.0, "norm")
    assert any(cb["class_path"] == "darts_pl.callbacks.DropPathSchedule" for cb in trainer["callbacks"])
    assert (data["mode"], data["batch_size"], data["cutout_length"]) == ("train", 96, 16)


def test_train_imagenet_config_is_the_paper_recipe(capsys) -> None:
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", str(CONFIGS / "train_imagenet.yaml"), "--print_config"])
    cfg = yaml.safe_load(capsys.readouterr().out)
    model, trainer, data = cfg["model"]["init_args"], cfg["trainer"], cfg["data"]["init_args"]
    assert (model["network"], model["channels"], model["num_cells"], model["num_classes"]) == ("imagenet", 48, 14, 1000)
    assert (model["auxiliary_weight"], model["label_smoothing"]) == (0.4, 0.1)
    opt = model["optimizer"]["init_args"]
    assert (opt["lr"], opt["momentum"], opt["weight_decay"]) == (0.1, 0.9, 3e-5)
    assert model["scheduler"]["class_path"].endswith("StepLR")
    assert (model["scheduler"]["init_args"]["step_size"], model["scheduler"]["init_args"]["gamma"]) == (1, 0.97)
    assert (trainer["max_epochs"], trainer["gradient_clip_val"]) == (250, 5.0)
    assert (data["batch_size"], data["crop_size"], data["resize_size"]) == (128, 224, 256)


def test_train_cifar_config_runs_one_batch_with_inline_genotype(tmp_path, cifar_dir: Path,
                                                                fake_cifar_checksums: None) -> None:
    # On the command line an integer limit_*_batches reads as a float (1 -> 100%), so count steps instead.
    overlay = tmp_path / "small.yaml"
    overlay.write_text(yaml.safe_dump({"model": {"init_args": {
        "genotype": genotypes.to_dict(DARTS_V2), "channels": 4, "num_cells": 3}}}))
    cli_main(["fit", "--config", str(CONFIGS / "train_cifar.yaml"), "--config", str(overlay),
              "--data.data_dir", str(cifar_dir), "--data.download", "false", "--data.batch_size", "4",
              "--data.num_workers", "0", "--trainer.max_epochs", "1", "--trainer.max_steps", "1",
              "--trainer.limit_val_batches", "2", "--trainer.num_sanity_val_steps", "0",
              "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false"])
    saved = yaml.safe_load(next((tmp_path / "run").rglob("config.yaml")).read_text())
    assert saved["model"]["init_args"]["genotype"]["normal"][0] == ["sep_conv_3x3", 0]
    assert list((tmp_path / "run").rglob("last.ckpt"))


def test_search_then_train_the_found_cell_end_to_end(tmp_path) -> None:
    # A tiny search writes genotype.json ...
    L.seed_everything(0)
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    search = LitSearch(space, FirstOrder())
    trainer = _trainer(tmp_path / "search", gradient_clip_val=None,  # LitSearch clips by itself
                       callbacks=[GenotypeCheckpoint(dirpath=str(tmp_path))])
    trainer.fit(search, DigitsDataModule(mode="search", batch_size=16))
    path = tmp_path / "genotype.json"
    found = genotypes.load(path)
    assert found == space.genotype()
    # ... and the training config trains that cell.
    run = tmp_path / "train"
    cli_main(["fit", "--config", str(CONFIGS / "train_digits.yaml"), "--model.genotype", str(path),
              "--trainer.max_epochs", "1", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "2",
              "--trainer.num_sanity_val_steps", "0", "--trainer.default_root_dir", str(run),
              "--trainer.enable_progress_bar", "false"])
    ckpt = next(run.rglob("last.ckpt"))
    model = LitClassifier.load_from_checkpoint(ckpt)
    assert model.network.genotype == found
    assert model.network.in_channels == 1  # linked from the data module
    state = torch.load(ckpt, weights_only=False)
    assert state["global_step"] == 2


def test_cli_refuses_a_bad_genotype_in_one_line(tmp_path, capsys) -> None:
    bad = genotypes.to_dict(DARTS_V2)
    bad["reduce"][0] = ["max_pool_3x3", 5]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    cases = (("DARTS_V9", "Unknown genotype 'DARTS_V9'"),
             (str(path), "field 'reduce', edge 0 (node 0): input index 5 out of range"))
    for spec, expected in cases:
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["fit", "--config", str(CONFIGS / "train_digits.yaml"), "--model.genotype", spec,
                      "--trainer.default_root_dir", str(tmp_path / "run")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("darts-pl: error: LitClassifier: --model.genotype") and expected in err
