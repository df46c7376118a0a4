"""Resume after a kill, determinism, the non-finite guard, run directories, exit statuses."""
from __future__ import annotations

import json
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

from .conftest import REPO, run_dir

TINY = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.deterministic", "true",
        "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
        "--data.init_args.batch_size", "32"]



def _float_tensors(state_dict: dict) -> list[torch.Tensor]:
    """The floating-point tensors of a state dict (parts' extra states are dicts)."""
    return [v for v in state_dict.values() if torch.is_tensor(v) and v.is_floating_point()]

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
    # the uninterrupted run, alongside the one that is killed (one thread each)
    reference_log = open(tmp_path / "a.log", "w")  # a file, not a pipe nobody reads while it runs
    reference = subprocess.Popen(cli(tmp_path / "a"), env=env(), stdout=subprocess.DEVNULL, stderr=reference_log)

    root_b = tmp_path / "b"
    proc = subprocess.Popen(cli(root_b), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list(root_b.glob("*/version_0/checkpoints/last.ckpt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    run_b = run_dir(root_b)
    ckpt = run_b / "checkpoints" / "last.ckpt"
    time.sleep(0.2)  # into epoch 1 (of 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_epoch = torch.load(ckpt, weights_only=False)["epoch"]
    assert killed_epoch < 1, "the run finished before it could be killed"
    assert not (run_b / "genotype.json").exists()

    resumed = subprocess.run(cli(root_b, "--ckpt_path", "last"), env=env(), capture_output=True, text=True,
                             timeout=300)
    reference.wait(timeout=300)
    reference_log.close()
    assert reference.returncode == 0, (tmp_path / "a.log").read_text()[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run_a = run_dir(tmp_path / "a")
    assert sorted(root_b.glob("*/version_*")) == [run_b]  # same run dir
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
    assert all(torch.isfinite(v).all() for v in _float_tensors(state["state_dict"]))


def test_nonfinite_virtual_step_is_named(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteError, match="virtual step"):
        fit(tmp_path, tiny_module(SecondOrder()), enable_checkpointing=False, callbacks=[InjectInf(epoch=0, call=1)])


def test_nonfinite_skip_counts_and_continues(tmp_path: Path) -> None:
    module = tiny_module(nonfinite="skip")
    trainer = fit(tmp_path, module, enable_checkpointing=False, callbacks=[InjectInf(epoch=0, call=2)])
    assert module.skipped_batches == 1
    assert trainer.callback_metrics["nonfinite/skipped"] == 1
    assert all(torch.isfinite(p).all() for p in module.parameters())


KILLED_IN_EPOCH_1 = r"""
import os, signal, sys
from darts_pl.modules import LitClassifier
step = LitClassifier.training_step
def training_step(self, batch, batch_idx):
    if self.current_epoch == 1 and batch_idx == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, batch, batch_idx)
LitClassifier.training_step = training_step
from darts_pl.cli import main
main(sys.argv[1:])
"""


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
    # killed in epoch 1, batch 3 (after epoch 0's checkpoint): at a fixed point, however fast the machine is
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_EPOCH_1, *train_cli(root_b)[3:]], env=env(),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    ckpt = root_b / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["epoch"] == 0
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


class InjectNaNStem(Callback):
    """Makes the stem's convolution output NaN on the forward calls numbered in ``calls`` (counted over the fit)."""

    def __init__(self, calls: set[int]) -> None:
        self.calls, self.count = calls, 0

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(module, args, output):
            if module.training:
                self.count += 1
                if self.count in self.calls:
                    return output * float("nan")
            return output
        pl_module.space.stem[0].register_forward_hook(hook)


def test_skip_keeps_nonfinite_values_out_of_weights_buffers_and_optimizer_state(tmp_path: Path) -> None:
    module = tiny_module(nonfinite="skip")
    fit(tmp_path, module, enable_checkpointing=False, callbacks=[InjectNaNStem(calls={2})])  # call 2: a weight step
    assert module.skipped_batches == 1
    for name, tensor in [*module.state_dict().items(),
                         *((f"opt{i}.{k}", v) for i, opt in enumerate(module.optimizers())
                           for state in opt.optimizer.state.values() for k, v in state.items())]:
        if torch.is_tensor(tensor) and tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name


def test_skip_stops_past_the_limit_of_consecutive_skips(tmp_path: Path) -> None:
    module = tiny_module(nonfinite="skip", max_consecutive_skips=2)
    with pytest.raises(NonFiniteError, match=r"3 batches in a row.*max_consecutive_skips=2.*Stopped"):
        fit(tmp_path, module, enable_checkpointing=False, callbacks=[InjectNaNStem(calls=set(range(1, 100)))])
    assert module.skipped_batches == 2


def test_skip_stops_when_a_step_makes_the_model_nonfinite(tmp_path: Path) -> None:
    # A weight learning rate far too large, without clipping: the step itself overflows the weights, which no
    # skipped batch can repair. The run stops, and no checkpoint with non-finite values is written.
    module = tiny_module(nonfinite="skip", grad_clip=None,
                         weight_optimizer=lambda params: torch.optim.SGD(params, lr=1e37, momentum=0.9))
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    with pytest.raises(NonFiniteError, match=r"weights.*Stopped"):
        fit(tmp_path, module, callbacks=[ckpt], max_epochs=3)
    for path in (tmp_path / "ckpt").glob("*.ckpt"):
        state = torch.load(path, weights_only=False)
        assert all(torch.isfinite(v).all() for v in _float_tensors(state["state_dict"])), path


# ------------------------------------------------------------------ runs: directories, resume, exit codes
QUICK = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--trainer.max_epochs", "1",
         "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",  # ("1" would mean 100%)
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
         "--data.init_args.batch_size", "16", "--trainer.callbacks", json.dumps([  # the quickstart's, no drawing
             {"class_path": "darts_pl.callbacks.GenotypeCheckpoint", "init_args": {"diagrams": False}},
             {"class_path": "darts_pl.callbacks.ArchitectureMonitor", "init_args": {"log_media": False}},
             {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}])]


def run_main(*args: str) -> int:
    """``darts-pl`` in this process; its exit status."""
    from darts_pl.cli import main

    try:
        main(list(args))
    except SystemExit as exit_info:
        return int(exit_info.code or 0)
    return 0


def test_runs_without_a_logger_get_their_own_directories(tmp_path: Path) -> None:
    for _ in range(2):
        assert run_main(*QUICK, "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)) == 0
    runs = sorted(tmp_path.glob("*/version_*"))
    assert [p.name for p in runs] == ["version_0", "version_1"]
    for run in runs:
        assert {"genotype.json", "alpha_history.npz", "config.yaml", "checkpoints"} <= {p.name for p in run.iterdir()}


def test_last_looks_only_in_this_jobs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    other = tmp_path / "someone_else"
    assert run_main(*QUICK, "--trainer.default_root_dir", str(other)) == 0
    monkeypatch.chdir(tmp_path)  # the default root is the working directory, which holds the other run below it
    assert run_main(*QUICK, "--trainer.default_root_dir", "null", "--ckpt_path", "last") == 0
    assert "no checkpoint of an earlier run" in capsys.readouterr().err
    assert (run_dir(tmp_path) / "genotype.json").is_file()
    assert [p.name for p in other.glob("*/version_*")] == ["version_0"]


def test_resume_with_another_model_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    assert run_main(*QUICK, "--trainer.default_root_dir", str(tmp_path)) == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()
    status = run_main(*QUICK, "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "2",
                      "--model.init_args.space.init_args.channels", "6", "--ckpt_path", "last")
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("darts-pl: error:")]
    assert len(lines) == 1 and "different model" in lines[0] and "differ in shape" in lines[0], err[-2000:]
    assert "size mismatch" not in err
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # config.yaml, logs, checkpoints: untouched


def test_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert run_main(*QUICK, "--trainer.default_root_dir", str(tmp_path)) == 0
    finally:
        os.umask(old)
    run = run_dir(tmp_path)
    for name in ["genotype.json", "alpha_history.npz", "alpha_history.json",
                 "genotypes/epoch_000.json", "checkpoints/last.ckpt", "config.yaml"]:
        assert (run / name).stat().st_mode & 0o777 == 0o640, name


def test_alpha_history_is_one_unit_when_the_second_write_fails(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from darts_pl.callbacks import monitor

    history = monitor.AlphaHistory(["a", "b"], ["e0"])
    history.append(0, 1, {"normal": np.array([[0.4, 0.6]])})
    history.save(tmp_path)
    history.append(1, 2, {"normal": np.array([[0.3, 0.7]])})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill between the .npz and the .json

    monkeypatch.setattr(monitor, "atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        history.save(tmp_path)
    loaded = monitor.AlphaHistory.load(tmp_path)
    assert loaded.epochs == [0, 1] and len(loaded.probs["normal"]) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--model.init_args.weight_optimizer.init_args.lr", "-0.1"], "Invalid learning rate"),
    (["--model.init_args.weight_optimizer.init_args.momentum", "-1"], "Invalid momentum"),
    (["--model.init_args.arch_optimizer.init_args.lr", "-1"], "Invalid learning rate"),
    (["--trainer.accelerator", "gpu"], "gpu"),
    (["--trainer.max_epochs", "0"], "max_epochs=0"),
    (["--trainer.max_epoch", "1"], "max_epoch"),
    (["--data.init_args.num_workers", "-1"], "num_workers=-1"),
    (["--data.init_args.eval_batch_size", "0"], "eval_batch_size=0"),
    (["--model.init_args.space.init_args.primitives", "[none]"], "has no op besides 'none'"),
    (["--model.init_args.space.init_args.primitives", "[]"], "has no op besides 'none'"),
    (["--model.init_args.space.init_args.primitives", "[sep_conv_3x3, sep_conv_3x3]"], "more than once"),
    (["--model.init_args.space", "darts_pl.search.RNNSearchSpace"], "not token windows"),
])
def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str, capsys) -> None:
    status = run_main(*QUICK, "--trainer.default_root_dir", str(tmp_path), *args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("darts-pl: error:")]
    assert status == 2 and len(lines) == 1 and message in lines[0], err[-2000:]
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"], ids=["zero-byte", "truncated"])
def test_damaged_checkpoint_path_exits_2(tmp_path: Path, content: bytes, capsys) -> None:
    ckpt = tmp_path / "given.ckpt"
    ckpt.write_bytes(content)
    status = run_main(*QUICK, "--trainer.default_root_dir", str(tmp_path / "root"), "--ckpt_path", str(ckpt))
    err = capsys.readouterr().err
    assert status == 2 and "given.ckpt" in err.splitlines()[-1], err[-2000:]
    assert not (tmp_path / "root").exists()  # nothing claimed, nothing written


def test_wandb_runs_keep_their_config_and_resume_the_same_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    args = [*QUICK, "--config", str(REPO / "configs" / "wandb.yaml"), "--trainer.logger.init_args.save_dir",
            str(tmp_path / "wandb")]
    ids = []
    for seed in ("1", "2"):
        try:
            assert run_main(*args, "--seed_everything", seed) == 0
            ids.append(wandb.run.id)
            assert wandb.run.config["seed_everything"] == int(seed)  # the resolved config, in the W&B run
            assert wandb.run.config["model"]["class_path"] == "darts_pl.modules.LitSearch"
        finally:
            wandb.finish()
    project = tmp_path / "wandb" / "darts_pl"
    assert sorted(p.name for p in project.iterdir()) == sorted(ids)
    for run_id, seed in zip(ids, ("1", "2")):
        assert f"seed_everything: {seed}" in (project / run_id / "config.yaml").read_text()
    assert not (tmp_path / "wandb" / "config.yaml").exists()
    try:
        assert run_main(*args, "--seed_everything", "2", "--trainer.max_epochs", "2", "--ckpt_path", "last") == 0
        assert wandb.run.id == ids[1]  # the newest run continues, under its own id
    finally:
        wandb.finish()
    assert torch.load(project / ids[1] / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize("strategy", [FirstOrder(), SecondOrder()], ids=["first", "second"])
def test_each_phase_checks_finiteness_with_one_host_sync(tmp_path: Path, strategy, monkeypatch) -> None:
    """Every check of a phase (losses, the virtual step's, gradients, alphas) is verified together: one reduction
    of the verdict, hence one host sync, per phase, i.e. two per search iteration."""
    import darts_pl.finite as finite

    calls: list[int] = []
    original = finite.all_reduce_min_

    def counting(tensor):
        calls.append(1)
        return original(tensor)

    monkeypatch.setattr(finite, "all_reduce_min_", counting)
    fit(tmp_path, tiny_module(strategy), max_epochs=1, limit_train_batches=3, limit_val_batches=0,
        enable_checkpointing=False)
    assert len(calls) == 2 * 3


# ------------------------------------------------------------------ the command's messages
def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("darts-pl: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def test_an_overlay_before_its_base_config_says_so(tmp_path: Path, capsys) -> None:
    overlay, base = REPO / "configs" / "variants" / "gdas.yaml", REPO / "configs" / "quickstart.yaml"
    status = run_main("fit", "--config", str(overlay), "--config", str(base), "--trainer.default_root_dir",
                      str(tmp_path / "root"))
    line = error_line(capsys)
    assert status == 2
    assert f"{overlay} is an overlay" in line and f"after the base config that sets it ({base})" in line, line
    assert f"--config {base} --config {overlay}" in line, line
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(("option", "typo", "meant", "known"), [
    ("--model.init_args.space.init_args.relaxation", "darts_pl.search.GumbleSoftmax", "darts_pl.search.GumbelSoftmax",
     ["darts_pl.search.Softmax", "darts_pl.search.Sigmoid", "darts_pl.search.Dirichlet"]),
    ("--model.init_args.strategy", "darts_pl.strategies.FirstOrdr", "darts_pl.strategies.FirstOrder",
     ["darts_pl.strategies.SecondOrder"]),
    ("--model", "darts_pl.modules.LitSerch", "darts_pl.modules.LitSearch", ["darts_pl.modules.LitClassifier"]),
    ("--data", "darts_pl.data.DigitDataModule", "darts_pl.data.DigitsDataModule", ["darts_pl.data.CIFAR10DataModule"]),
    ("--model.init_args.weight_optimizer", "torch.optim.SDG", "torch.optim.SGD", ["torch.optim.Adam"]),
])
def test_a_mistyped_class_path_gets_a_suggestion_and_the_known_parts(tmp_path: Path, capsys, option: str, typo: str,
                                                                     meant: str, known: list[str]) -> None:
    status = run_main(*QUICK, "--trainer.default_root_dir", str(tmp_path), option, typo)
    line = error_line(capsys)
    assert status == 2
    assert line.startswith(f"darts-pl: error: {option}: no class {typo}") and f"did you mean {meant}?" in line, line
    assert all(path in line for path in known), line


def run_config(root: Path, method: str | None, logger: object = None, ckpt_path: str | None = None):
    from jsonargparse import Namespace

    init_args = Namespace(method=method) if method else Namespace()
    return Namespace(trainer=Namespace(default_root_dir=str(root), logger=logger, callbacks=[]), ckpt_path=ckpt_path,
                     model=Namespace(class_path="darts_pl.modules.LitSearch", init_args=init_args))


def a_finished_run(directory: Path, step: int) -> Path:
    (directory / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}, "epoch": 0, "global_step": step}, directory / "checkpoints" / "last.ckpt")
    return directory / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("logger", [None, False], ids=["tensorboard", "no-logger"])
def test_runs_are_named_after_their_method(tmp_path: Path, logger) -> None:
    """``<root>/<method>/version_N`` (the logger's name, or the directory itself without a logger), and
    ``--ckpt_path last`` looks among that method's runs only."""
    from darts_pl.cli import DartsCLI, _release_lock, place_run

    try:
        cfg = run_config(tmp_path, "gdas", logger)
        place_run(cfg)
        assert (tmp_path / "gdas" / "version_0").is_dir()
        if logger is None:
            assert cfg.trainer.logger.init_args.name == "gdas" and cfg.trainer.logger.init_args.version == 0
        else:
            assert cfg.trainer.default_root_dir == str(tmp_path / "gdas" / "version_0")
        _release_lock()
        gdas = a_finished_run(tmp_path / "gdas" / "version_0", step=4)
        time.sleep(0.01)
        a_finished_run(tmp_path / "darts" / "version_0", step=8)  # newer, of another method
        cfg = run_config(tmp_path, "gdas", logger, ckpt_path="last")
        place_run(cfg)
        assert cfg.ckpt_path == str(gdas)
        _release_lock()
        place_run(cfg := run_config(tmp_path, None, logger))  # no method (a training job): the logger's default
        assert (tmp_path / "lightning_logs" / "version_0").is_dir()
    finally:
        _release_lock()
        DartsCLI.claimed = None


def test_a_resume_of_another_models_run_names_the_run_that_matches(tmp_path: Path, capsys) -> None:
    """Two searches of different methods under one logger name; ``last`` with the first one's config finds the
    second (newest) run: the refusal says that run was another model and which checkpoint continues this one."""
    logger = json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger",
                         "init_args": {"save_dir": str(tmp_path), "name": "shared"}})
    base = [*QUICK, "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", logger]
    gdas = ["--config", str(REPO / "configs" / "variants" / "gdas.yaml")]
    assert run_main(*base) == 0
    assert run_main(*base, *gdas) == 0
    darts_run, gdas_run = tmp_path / "shared" / "version_0", tmp_path / "shared" / "version_1"
    capsys.readouterr()
    assert run_main(*base, "--trainer.max_epochs", "2", "--ckpt_path", "last") == 2
    line = error_line(capsys)
    assert f"The newest run here, {str(gdas_run)!r}," in line, line
    assert "gdas" in line.lower() or "GumbelSoftmax" in line, line  # what differs
    assert f"--ckpt_path {str(darts_run / 'checkpoints' / 'last.ckpt')!r}" in line, line


@pytest.mark.parametrize("flag", ["--print_config", "--print_config=skip_null"])
def test_print_config_shows_the_sizes_the_run_takes_from_the_data(tmp_path: Path, capsys, flag: str) -> None:
    import yaml

    status = run_main("fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--trainer.default_root_dir",
                      str(tmp_path / "root"), flag)
    out = capsys.readouterr().out
    assert status == 0
    space = yaml.safe_load(out)["model"]["init_args"]["space"]["init_args"]
    assert space["in_channels"] == 1 and space["num_classes"] == 10  # the digits: 8x8 grey images, 10 classes
    assert not (tmp_path / "root").exists()


@pytest.mark.slow
def test_the_genotype_of_each_epoch_is_printed_on_a_line_of_its_own(tmp_path: Path) -> None:
    """With the progress bar on, the per-epoch genotype (a log message) starts a line of its own instead of
    being written after the bar's text on the bar's line (stdout and stderr into one terminal: one pipe here)."""
    at = QUICK.index("--trainer.enable_progress_bar")
    args = QUICK[:at] + QUICK[at + 2:]
    done = subprocess.run([sys.executable, "-m", "darts_pl.cli", *args, "--trainer.default_root_dir", str(tmp_path)],
                          env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    at = done.stdout.index("Epoch 0 genotype")
    on_screen = done.stdout[:at].split("\n")[-1].split("\r")[-1]  # what the terminal's line holds before it
    assert on_screen.strip() == "", repr(done.stdout[at - 200:at + 20])


def test_fit_help_names_the_nested_help_and_each_spelling_works(capsys, monkeypatch) -> None:
    from darts_pl.cli import NESTED_HELP

    assert run_main("fit", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    monkeypatch.chdir(REPO)  # the examples name configs/ relative to the repository
    for example in NESTED_HELP:
        assert example in text, example
        assert run_main("fit", *example.split()) == 0, (example, capsys.readouterr().err[-2000:])
        shown = capsys.readouterr().out
        assert "usage:" in shown and "--" in shown.split("usage:", 1)[1], example


def test_a_run_that_fails_before_it_starts_leaves_no_directory(tmp_path: Path, capsys) -> None:
    earlier = tmp_path / "lightning_logs" / "version_0"  # the job's runs directory exists already
    earlier.mkdir(parents=True)
    (earlier / "config.yaml").write_text("seed_everything: 0\n")
    status = run_main(*QUICK, "--trainer.default_root_dir", str(tmp_path),
                      "--model.init_args.space.init_args.num_cells", "2")  # refused when the space is built
    assert status == 2 and "num_cells=2" in error_line(capsys)
    assert sorted(tmp_path.rglob("version_*")) == [earlier]


def test_a_logger_left_at_its_default_name_files_runs_under_the_method(tmp_path: Path) -> None:
    from jsonargparse import Namespace

    from darts_pl.cli import _release_lock, place_run

    logger = Namespace(class_path="lightning.pytorch.loggers.CSVLogger",
                       init_args=Namespace(save_dir=str(tmp_path), name="lightning_logs"))  # as jsonargparse fills it
    try:
        place_run(run_config(tmp_path, "gdas", logger))
        place_run(run_config(tmp_path, "gdas", Namespace(class_path=logger.class_path, init_args=Namespace(
            save_dir=str(tmp_path), name="mine"))))
    finally:
        _release_lock()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/version_*")) == [
        "gdas/version_0", "mine/version_0"]
