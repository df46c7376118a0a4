"""Every YAML under configs/ parses; bad keys and bad types exit 2 with a one-line reason."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from darts_pl.cli import main

from .conftest import REPO

CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml"))
OVERLAYS = {"first_order.yaml", "second_order.yaml", "debug.yaml", "wandb.yaml", "ddp.yaml", "benchmark_nb201.yaml"}


@pytest.mark.parametrize("config", [p for p in CONFIGS if p.name not in OVERLAYS], ids=lambda p: p.name)
def test_config_prints(config: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path" in capsys.readouterr().out


@pytest.mark.parametrize("overlay", sorted(OVERLAYS & {p.name for p in CONFIGS}))
def test_overlays_apply_to_the_cifar_search(overlay: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "configs" / "search_cifar.yaml"),
              "--config", str(REPO / "configs" / overlay), "--print_config"])
    assert exit_info.value.code in (0, None)


def test_benchmark_overlay_appends_the_lookup_with_its_path(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "configs" / "search_nb201_imagenet16.yaml"),
              "--config", str(REPO / "configs" / "benchmark_nb201.yaml"),
              "--trainer.callbacks.init_args.path", "/data/NATS-tss-v1_0-3ffb9-simple", "--print_config"])
    out = capsys.readouterr().out
    assert "darts_pl.callbacks.GenotypeCheckpoint" in out  # the job's callbacks stay
    assert "darts_pl.callbacks.BenchmarkLookup" in out and "path: /data/NATS-tss-v1_0-3ffb9-simple" in out


def test_first_order_overlay_switches_the_strategy(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "configs" / "search_cifar.yaml"),
              "--config", str(REPO / "configs" / "first_order.yaml"), "--print_config"])
    out = capsys.readouterr().out
    assert "darts_pl.strategies.FirstOrder" in out and "SecondOrder" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["--model.init_args.grad_clp", "1"], "Option 'grad_clp' is not accepted"),
    (["--model.init_args.grad_clip", "abc"], "grad_clip"),
    (["--trainer.max_epochs", "x"], "trainer.max_epochs"),
    (["--data.init_args.train_portion", "1.5"], "train_portion=1.5 must be in (0, 1)"),
    (["--model.init_args.space.init_args.num_cells", "2"], "num_cells=2 is too small"),
    (["--model.init_args.space.init_args.primitives", "[none, sep_conv_9x9]"], "Unknown primitive 'sep_conv_9x9'"),
])
def test_bad_settings_exit_2_with_one_line(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("darts-pl: error:")]
    assert len(errors) == 1 and message in errors[0], err[-2000:]


def test_console_command_exits_2_without_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "darts_pl.cli", "fit", "--config",
                           str(REPO / "configs" / "quickstart.yaml"), "--model.init_args.grad_clp", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("darts-pl: error: ")
    assert "Traceback" not in proc.stderr
