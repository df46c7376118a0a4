"""Resume after a kill, determinism, the non-finite guard."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from darts_pl.data import DigitsDataModule
from darts_pl.errors import NonFiniteError
from darts_pl.genotypes import load
from darts_pl.modules import LitSearch
from darts_pl.search import CNNSearchSpace
from darts_pl.strategies import FirstOrder, SecondOrder

from .conftest import REPO

TINY = ["--trainer.max_epochs", "3", "--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.deterministic", "true",
        "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
        "--data.init_args.batch_size", "32"]


def cli(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "darts_pl.cli", "fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
            "--config", str(REPO / "configs" / "second_order.yaml"), *TINY,
            "--trainer.default_root_dir", str(root), *extra]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def final_alphas(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    alphas = {k: v for k, v in state.items() if k.startswith("space.arch.")}
    assert alphas, "no architecture tensors in the checkpoint"
    return alphas


def test_killed_search_resumes_to_the_same_alphas_and_genotype(tmp_path: Path) -> None:
    reference = subprocess.run(cli(tmp_path / "a"), env=env(), capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]
    run_a = tmp_path / "a" / "lightning_logs" / "version_0"

    root_b = tmp_path / "b"
    proc = subprocess.Popen(cli(root_b), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = root_b / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into epoch 2 (of 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_epoch = torch.load(ckpt, weights_only=False)["epoch"]
    assert killed_epoch < 2, "the run finished before it could be killed"
    assert not (root_b / "lightning_logs" / "version_0" / "genotype.json").exists()

    resumed = subprocess.run(cli(root_b, "--ckpt_path", "last"), env=env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run_b = root_b / "lightning_logs" / "version_0"
    assert sorted(p.name for p in (root_b / "lightning_logs").iterdir()) == ["version_0"]  # same run dir
    a, b = final_alphas(run_a), final_alphas(run_b)
    assert a.keys() == b.keys() and len(a) == 2
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert load(run_a / "genotype.json") == load(run_b / "genotype.json")


def tiny_module(strategy=None, **kwargs) -> LitSearch:
    return LitSearch(CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3),
                     strategy or FirstOrder(), **kwargs)


def fit(tmp_path: Path, module: LitSearch, **kwargs) -> L.Trainer:
    args = dict(default_root_dir=tmp_path, max_epochs=2, limit_train_batches=3, limit_val_batches=1, logger=False,
                enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    trainer = L.Trainer(**(args | kwargs))
    trainer.fit(module, DigitsDataModule(batch_size=16))
    return trainer


def test_two_seeded_runs_are_bit_identical(tmp_path: Path) -> None:
    alphas = []
    for run in range(2):
        L.seed_everything(7)
        module = tiny_module(SecondOrder())
        fit(tmp_path / str(run), module, enable_checkpointing=False)
        alphas.append([a.detach().clone() for a in module.space.arch_parameters()])
    assert all(torch.equal(x, y) for x, y in zip(*alphas))


class InjectInf(Callback):
    """Makes the classifier output infinite on one forward call of a given epoch."""

    def __init__(self, epoch: int, call: int) -> None:
        self.epoch, self.call, self.count = epoch, call, 0

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(module, args, output):
            if trainer.current_epoch == self.epoch:
                self.count += 1
                if self.count == self.call:
                    return output * float("inf")
            return output
        pl_module.space.classifier.register_forward_hook(hook)


@pytest.mark.parametrize(("call", "phase"), [(1, "alpha step"), (2, "weight step")])
def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, call: int, phase: str) -> None:
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    module = tiny_module()
    with pytest.raises(NonFiniteError, match=rf"in the {phase}.*epoch 1, batch 0.*last checkpoint is left"):
        fit(tmp_path, module, callbacks=[ckpt, InjectInf(epoch=1, call=call)])
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert state["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_nonfinite_virtual_step_is_named(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteError, match="virtual step"):
        fit(tmp_path, tiny_module(SecondOrder()), enable_checkpointing=False, callbacks=[InjectInf(epoch=0, call=1)])


def test_nonfinite_skip_counts_and_continues(tmp_path: Path) -> None:
    module = tiny_module(nonfinite="skip")
    trainer = fit(tmp_path, module, enable_checkpointing=False, callbacks=[InjectInf(epoch=0, call=2)])
    assert module.skipped_batches == 1
    assert trainer.callback_metrics["nonfinite/skipped"] == 1
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_killed_training_job_resumes_to_the_same_weights(tmp_path: Path) -> None:
    def train_cli(root: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "darts_pl.cli", "fit", "--config", str(REPO / "configs" / "train_digits.yaml"),
                "--model.init_args.genotype", "DARTS_V2", "--model.init_args.channels", "4",
                "--model.init_args.num_cells", "3", "--trainer.max_epochs", "3", "--trainer.limit_train_batches",
                "6", "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
                "--trainer.deterministic", "true", "--trainer.default_root_dir", str(root), *extra]

    reference = subprocess.run(train_cli(tmp_path / "a"), env=env(), capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]
    root_b = tmp_path / "b"
    proc = subprocess.Popen(train_cli(root_b), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = root_b / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(ckpt, weights_only=False)["epoch"] < 2, "the run finished before it could be killed"
    resumed = subprocess.run(train_cli(root_b, "--ckpt_path", "last"), env=env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "a" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(ckpt, weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_nonfinite_loss_stops_a_training_job(tmp_path: Path) -> None:
    from darts_pl.modules import LitClassifier

    module = LitClassifier(genotype="DARTS_V2", network="cifar", channels=4, num_cells=3, num_classes=10,
                           in_channels=1, auxiliary=False)
    module.network.classifier.register_forward_hook(lambda mod, args, out: out * float("inf"))
    trainer = L.Trainer(default_root_dir=tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with pytest.raises(NonFiniteError, match=r"training loss in the weight step \(epoch 0, batch 0\)"):
        trainer.fit(module, DigitsDataModule(batch_size=16, mode="train"))
