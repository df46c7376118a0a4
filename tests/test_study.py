"""Studies (``darts-pl-study``): a tiny digits study of 2 methods × 2 seeds run one cell after another, two at once
and through submitit's local executor, killed in the middle and continued; its report checked against the run files
and rebuilt from them; bad and changed study files refused in one line; the report's file readers on files written
in their real formats."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from darts_pl.errors import ConfigurationError
from darts_pl.study import cells as cellfiles
from darts_pl.study import rundata
from darts_pl.study.cli import load_study, main
from darts_pl.study.report import TIMING
from darts_pl.study.runner import cell_spec, check_record
from darts_pl.study.spec import Axis, AxisValue, Method, Study

from .conftest import REPO

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
TINY_ARGS = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--trainer.deterministic", "true", "--model.init_args.space.init_args.channels", "4",
             "--model.init_args.space.init_args.num_cells", "3", "--data.init_args.batch_size", "16",
             "--trainer.callbacks", json.dumps([  # the quickstart's, without drawing
                 {"class_path": "darts_pl.callbacks.GenotypeCheckpoint", "init_args": {"diagrams": False}},
                 {"class_path": "darts_pl.callbacks.ArchitectureMonitor", "init_args": {"log_media": False}},
                 {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}])]
CELLS = ["darts/seed_0", "darts/seed_1", "gdas/seed_0", "gdas/seed_1"]


def tiny_study(path: Path, root: Path, **changes) -> Path:
    """A digits study of DARTS and GDAS × seeds 0, 1 (each cell 2 epochs of 2 batches on a 3-cell supernet)."""
    study = {"name": "tiny", "root": str(root), "base": [QUICKSTART], "args": TINY_ARGS,
             "methods": [{"name": "darts"},
                         {"name": "gdas", "overlays": [str(REPO / "configs" / "variants" / "gdas.yaml")],
                          "args": ["--model.init_args.space.init_args.relaxation.init_args.seed", "{seed}"]}],
             "seeds": [0, 1], **changes}
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def run_study(*args: str, harness: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(harness)] if harness else [sys.executable, "-m", "darts_pl.study"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def results_of(root: Path) -> tuple[str, list[dict], list[dict]]:
    """What must not depend on how the study ran: the Results section, and both CSVs without the machine's timings
    and the attempt counts."""
    text = (root / "report.md").read_text()
    section = text[text.index("## Results"):text.index("## Cost")]
    timing = tuple(f"{c}_{s}" for c in TIMING for s in ("mean", "std", "n")) + TIMING + ("attempts",)
    summary = [{k: v for k, v in row.items() if k not in timing} for row in read_csv(root / "report.csv")]
    per_cell = [{k: v for k, v in row.items() if k not in timing} for row in read_csv(root / "cells.csv")]
    return section, summary, per_cell


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("darts-pl-study: error: "), lines
    return lines[0]


# ----------------------------------------------------------------------------------------- the grid and the cells
def test_grid_order_directories_and_cell_arguments(tmp_path: Path) -> None:
    study = Study(root=str(tmp_path / "s"), base=[QUICKSTART], args=["--trainer.max_epochs", "3"],
                  methods=[Method("darts"), Method("gdas", ["configs/variants/gdas.yaml"],
                                                   ["--model.init_args.space.init_args.relaxation.init_args.seed",
                                                    "{seed}"])],
                  seeds=[3, 4], axes=[Axis("channels", [AxisValue("c4", args=["--x.channels", "4"]),
                                                         AxisValue("c8", args=["--x.channels", "8"])])])
    keys = list(study.cells())
    assert [k.label for k in keys] == [f"{m}/channels={c}/seed_{s}" for m in ("darts", "gdas") for c in ("c4", "c8")
                                       for s in (3, 4)]
    spec = cell_spec(study, keys[-1], tmp_path / "s")  # gdas, c8, seed 4
    assert spec.directory == str(tmp_path / "s" / "gdas" / "channels=c8" / "seed_4")
    assert spec.args == ["--config", QUICKSTART, "--trainer.max_epochs", "3",
                         "--config", str(Path("configs/variants/gdas.yaml").absolute()),
                         "--model.init_args.space.init_args.relaxation.init_args.seed", "4", "--x.channels", "8",
                         "--seed_everything", "4", "--trainer.default_root_dir", spec.directory]
    assert spec.cell == {"method": "gdas", "axes": {"channels": "c8"}, "seed": 4} and not spec.resume


@pytest.mark.parametrize("logger, expected", [
    (None, []),
    ("csv", ["--trainer.logger.init_args.save_dir", "{dir}"]),
    ("wandb", ["--trainer.logger.init_args.save_dir", "{dir}", "--trainer.logger.init_args.group", "tiny",
               "--trainer.logger.init_args.job_type", "darts", "--trainer.callbacks+=darts_pl.study.EpochScalars"]),
    ("false", ["--trainer.callbacks+=darts_pl.study.EpochScalars"]),
])
def test_logger_arguments(tmp_path: Path, logger: str | None, expected: list[str]) -> None:
    base = [QUICKSTART]
    args: list[str] = []
    if logger == "wandb":
        base.append(str(REPO / "configs" / "wandb.yaml"))
    elif logger == "csv":
        args = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger"]
    elif logger == "false":
        args = ["--trainer.logger", "false"]
    study = Study(root=str(tmp_path), base=base, args=args, methods=[Method("darts")], name="tiny")
    spec = cell_spec(study, next(study.cells()), tmp_path)
    added = spec.args[spec.args.index("--trainer.default_root_dir") + 2:]
    assert added == [a.replace("{dir}", spec.directory) for a in expected]


def test_wandb_group_and_job_type_reach_the_logger(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from darts_pl import cli

    study = Study(root=str(tmp_path), base=[QUICKSTART, str(REPO / "configs" / "wandb.yaml")],
                  methods=[Method("gdas")], name="tiny")
    spec = cell_spec(study, next(study.cells()), tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", *spec.args, "--print_config"])
    assert exit_info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    logger = config["trainer"]["logger"]["init_args"]
    assert (logger["group"], logger["job_type"], logger["save_dir"]) == ("tiny", "gdas", spec.directory)
    assert config["trainer"]["callbacks"][-1]["class_path"].endswith("EpochScalars")


def test_other_loggers_are_refused(tmp_path: Path) -> None:
    study = Study(root=str(tmp_path), base=[QUICKSTART], methods=[Method("darts")],
                  args=["--trainer.logger", "lightning.pytorch.loggers.MLFlowLogger"])
    with pytest.raises(ConfigurationError, match="needs a TensorBoard, CSV or W&B logger"):
        cell_spec(study, next(study.cells()), tmp_path)


def test_threads_per_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cellfiles, "cpu_count", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cellfiles.thread_env(1) == {"OMP_NUM_THREADS": "16"}
    assert cellfiles.thread_env(3) == {"OMP_NUM_THREADS": "5"}
    assert cellfiles.thread_env(32) == {"OMP_NUM_THREADS": "1"}
    ddp = cellfiles.peek_config(["--config", QUICKSTART, "--trainer.devices=2", "--trainer.strategy", "ddp"])
    assert cellfiles.processes_per_cell(ddp) == 2  # quickstart.yaml: accelerator cpu
    assert cellfiles.thread_env(2, cellfiles.processes_per_cell(ddp)) == {"OMP_NUM_THREADS": "4"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cellfiles.thread_env(2) == {}  # the user's setting is left alone


# ----------------------------------------------------------------------------------------- bad and changed studies
@pytest.mark.parametrize("change, words", [
    ({"metods": []}, ["'metods' is not accepted", "a study's keys"]),
    ({"methods": [{"name": "darts", "overlay": ["x.yaml"]}]}, ["'overlay' is not accepted"]),
    ({"methods": [{"name": "darts", "overlays": ["configs/variants/gdaz.yaml"]}]},
     ["methods[darts].overlays", "'configs/variants/gdaz.yaml' does not exist"]),
    ({"methods": [{"name": "darts", "args": ["--seed_everything", "3"]}]}, ["methods[darts].args", "seeds:"]),
    ({"methods": [{"name": "darts"}, {"name": "darts"}]}, ["methods: 'darts' is given twice"]),
    ({"methods": [{"name": "a/b"}]}, ["methods[].name='a/b'"]),
    ({"methods": []}, ["the study has no method"]),
    ({"seeds": ["x"]}, ["seeds", "Expected a <class 'int'>"]),
    ({"executor": "pbs"}, ["executor", "'local', 'submitit_local', 'slurm'"]),
    ({"parallel": 0}, ["parallel=0"]),
])
def test_bad_study_files_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, change: dict,
                                                 words: list[str]) -> None:
    path = tiny_study(tmp_path / "study.yaml", tmp_path / "root", **change)
    line = one_line_error(capsys, ["--config", str(path)])
    assert all(word in line for word in words), line
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").iterdir())


def test_a_changed_study_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "root"
    study, text = load_study(["--config", str(tiny_study(tmp_path / "study.yaml", root))])
    check_record(root, study, text)  # as the first run of the study leaves it
    assert (root / "study.yaml").read_text() == text and json.loads((root / "study.json").read_text())["hash"]
    line = one_line_error(capsys, ["--config", str(tiny_study(tmp_path / "more.yaml", root, seeds=[0, 1, 2]))])
    assert "seeds: [0, 1] -> [0, 1, 2]" in line and "new root" in line and str(root / "study.yaml") in line, line
    changed = tiny_study(tmp_path / "other.yaml", root, methods=[{"name": "darts"}, {"name": "gdas"}])
    line = one_line_error(capsys, ["--config", str(changed)])
    assert "methods.gdas.overlays:" in line and "methods.gdas.args:" in line, line
    # where and how cells run is not the grid: another executor or parallelism continues the same root
    same, text = load_study(["--config", str(tmp_path / "study.yaml"), "--parallel", "2"])
    assert check_record(root, same, text)["hash"] == json.loads((root / "study.json").read_text())["hash"]
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "something").write_text("")
    line = one_line_error(capsys, ["--config", str(tiny_study(tmp_path / "s.yaml", tmp_path / "used"))])
    assert "no study record" in line, line


# ----------------------------------------------------------------------------------------- readers
def test_tensorboard_reader_takes_the_resumed_values_and_times_within_one_process(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    def write(name: str, epochs: list[tuple[int, int, float, float]]) -> None:  # (epoch, step, wall, val/acc)
        writer = SummaryWriter(str(tmp_path), filename_suffix=name)
        for epoch, step, wall, acc in epochs:
            writer.add_scalar("val/acc", acc, step, walltime=wall)
            writer.add_scalar("epoch", epoch, step, walltime=wall)
            writer.add_scalar("train/loss", 1.0, step, walltime=wall + 1)
        writer.close()

    write("a", [(0, 9, 100.0, 0.1), (1, 19, 120.0, 0.2)])  # then killed
    write("b", [(1, 19, 500.0, 0.25), (2, 29, 530.0, 0.3)])  # resumed from epoch 0's checkpoint
    files = sorted(tmp_path.glob("events.out.tfevents.*"))
    assert len(files) == 2
    scalars, per_iteration, iterations = rundata.read_scalars(tmp_path)
    assert scalars["val/acc"] == pytest.approx({0: 0.1, 1: 0.25, 2: 0.3})
    assert per_iteration == pytest.approx(2.5)  # median of 20/10 and 30/10: never across the gap of the resume
    assert iterations == 30
    # The files' names do not order them (a process's writer counter is not zero-padded: "...9" sorts after
    # "...10"): the killed run's file named to sort last is still read first.
    first = next(f for f in files if f.name.endswith("a"))
    first.rename(tmp_path / "events.out.tfevents.9999999999.zz.a")
    assert rundata.read_scalars(tmp_path)[0]["val/acc"] == pytest.approx({0: 0.1, 1: 0.25, 2: 0.3})


def test_csv_and_epoch_scalars_readers(tmp_path: Path) -> None:
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,step,train/loss,val/acc,val/loss\n0,9,1.2,,\n0,9,,0.5,1.0\n"
                                                  "1,19,,0.75,0.8\n")
    scalars, per_iteration, _ = rundata.read_scalars(tmp_path / "csv")
    assert scalars == {"val/acc": {0: 0.5, 1: 0.75}, "val/loss": {0: 1.0, 1: 0.8}} and per_iteration is None
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "epoch_scalars.json").write_text(json.dumps({"epochs": [
        {"epoch": 0, "step": 9, "wall_time": 10.0, "metrics": {"val/acc": 0.5}},
        {"epoch": 1, "step": 19, "wall_time": 30.0, "metrics": {"val/acc": 0.6}}]}))
    scalars, per_iteration, iterations = rundata.read_scalars(tmp_path / "json")
    assert scalars == {"val/acc": {0: 0.5, 1: 0.6}} and per_iteration == 2.0 and iterations == 20


@pytest.mark.parametrize("content, curves, final", [
    ({"epochs": [{"epoch": 0, "arch": "|a|", "cifar10": {"test_acc": 50.0}, "cifar100": {"test_acc": 20.0}},
                 {"epoch": 1, "cifar10": {"test_acc": 60.0, "valid_acc": 1}}],
      "final": {"arch": "|b|", "cifar10": {"test_acc": 61.0}}},
     {"cifar10": {0: 50.0, 1: 60.0}, "cifar100": {0: 20.0}}, {"cifar10": 61.0}),
    ({"epochs": [{"ImageNet16-120": {"test_accuracy": 30.0}}, {"ImageNet16-120": {"test-accuracy": 31.0}}]},
     {"ImageNet16-120": {0: 30.0, 1: 31.0}}, {"ImageNet16-120": 31.0}),  # no epoch numbers, no final: the last
    ({"epochs": "not a list", "final": {"cifar10": {"test_acc": "x"}, "other": 3}}, {}, {}),
    ([1, 2], {}, {}),
])
def test_benchmark_reader_is_tolerant(tmp_path: Path, content: object, curves: dict, final: dict) -> None:
    (tmp_path / "benchmark.json").write_text(json.dumps(content))
    got_curves, got_final, _ = rundata.read_benchmark(tmp_path / "benchmark.json")
    assert (got_curves, got_final) == (curves, final)
    (tmp_path / "broken.json").write_text("{")
    assert rundata.read_benchmark(tmp_path / "broken.json") == ({}, {}, None)


# ----------------------------------------------------------------------------------------- running studies
@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The tiny study run once, one cell after another, uninterrupted: ``(study file, root, process)``."""
    base = tmp_path_factory.mktemp("study")
    study = tiny_study(base / "study.yaml", base / "reference")
    return study, base / "reference", run_study("--config", str(study))


@pytest.mark.slow
def test_sequential_study_runs_every_cell_once(reference) -> None:
    study, root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    for name in CELLS:
        cell = root / name
        record = json.loads((cell / "study_cell.json").read_text())
        assert record["status"] == "finished" and record["attempts"] == 1 and record["run_dir"], record
        assert record["peak_rss_mb"] > 100 and record["wall_s"] > 0 and record["cpu_s"] > 0
        run = cell / record["run_dir"]
        config = yaml.safe_load((run / "config.yaml").read_text())  # the run's own config, as darts-pl writes it
        assert config["seed_everything"] == int(name[-1])
        assert config["trainer"]["default_root_dir"] == str(cell)
        assert (run / "genotype.json").is_file() and (cell / "study_cell.log").is_file()
    assert [p.name for p in sorted((root / "report_files").glob("curve_*.png"))] == [
        "curve_alpha_entropy.png", "curve_skip_connect.png", "curve_val_acc.png"]
    assert len(list((root / "report_files" / "cells").glob("*.png"))) == 4
    assert "4 of 4 cells finished." in (root / "report.md").read_text()
    log = [json.loads(line) for line in (root / "study_log.jsonl").read_text().splitlines()]
    assert log[-1]["cells_run"] == 4 and log[-1]["runner_s"] >= log[-1]["children_s"] > 0
    # again: nothing runs, nothing is rewritten but the report
    stamps = {name: (root / name / "study_cell.json").stat().st_mtime_ns for name in CELLS}
    again = run_study("--config", str(study))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 finished, 0 to run" in again.stderr
    assert stamps == {name: (root / name / "study_cell.json").stat().st_mtime_ns for name in CELLS}


@pytest.mark.slow
def test_report_numbers_are_those_of_the_run_files(reference, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    _, root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    values: dict[str, dict[str, list[float]]] = {"darts": {}, "gdas": {}}
    for name in CELLS:
        cell = root / name
        record = json.loads((cell / "study_cell.json").read_text())
        run = cell / record["run_dir"]
        events = EventAccumulator(str(run), size_guidance={SCALARS: 0})
        events.Reload()
        acc = max(events.Scalars("val/acc"), key=lambda e: e.step).value
        normal = [op for op, _ in json.loads((run / "genotype.json").read_text())["normal"]]
        found = {"val_acc": acc, "num_skip_connect": normal.count("skip_connect"),
                 "num_parameter_free": sum(op in ("skip_connect", "max_pool_3x3", "avg_pool_3x3") for op in normal),
                 "peak_rss_mb": record["peak_rss_mb"], "wall_s": record["wall_s"]}
        for key, value in found.items():
            values[name.split("/")[0]].setdefault(key, []).append(value)
    rows = {row["method"]: row for row in read_csv(root / "report.csv")}
    for method, columns in values.items():
        assert rows[method]["seeds"] == "2"
        for key, seeds in columns.items():
            assert float(rows[method][f"{key}_mean"]) == pytest.approx(statistics.mean(seeds), rel=1e-5), key
            assert float(rows[method][f"{key}_std"]) == pytest.approx(statistics.stdev(seeds), rel=1e-5, abs=1e-9)
    text = (root / "report.md").read_text()
    acc = values["darts"]["val_acc"]
    assert f"| darts | 2/2 | {statistics.mean(acc):.4f} ± {statistics.stdev(acc):.4f} |" in text

    # benchmark.json in the runs (as BenchmarkLookup writes it): its columns and curves
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    expected: dict[str, list[float]] = {"darts": [], "gdas": []}
    for i, name in enumerate(CELLS):
        run = copy / name / json.loads((copy / name / "study_cell.json").read_text())["run_dir"]
        accs = [80.0 + i, 90.0 + 2 * i]
        content = {"epochs": [{"epoch": e, "arch": "|x|", "cifar10": {"test_acc": a}} for e, a in enumerate(accs)]}
        if i % 2:
            content["final"] = {"arch": "|x|", "cifar10": {"test_acc": 95.0 + i}}
        (run / "benchmark.json").write_text(json.dumps(content))
        expected[name.split("/")[0]].append(95.0 + i if i % 2 else accs[-1])
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(copy), "--no-wandb"])
    assert exit_info.value.code == 0
    rows = {row["method"]: row for row in read_csv(copy / "report.csv")}
    for method, accs in expected.items():
        assert float(rows[method]["cifar10_test_acc_mean"]) == pytest.approx(statistics.mean(accs), rel=1e-5)
        assert float(rows[method]["cifar10_test_acc_std"]) == pytest.approx(statistics.stdev(accs), rel=1e-5)
    assert (copy / "report_files" / "curve_cifar10_test_acc.png").is_file()
    assert "cifar10 test acc" in (copy / "report.md").read_text()


@pytest.mark.slow
def test_report_command_rebuilds_the_same_report(reference, tmp_path: Path) -> None:
    _, root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for name in ("report.md", "report.csv", "cells.csv"):
        (copy / name).unlink()
    shutil.rmtree(copy / "report_files")
    rebuilt = run_study("report", str(copy), "--no-wandb", timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    for name in ("report.md", "report.csv", "cells.csv"):
        assert (copy / name).read_text() == (root / name).read_text(), name
    assert sorted(p.name for p in (copy / "report_files").rglob("*.png")) == sorted(
        p.name for p in (root / "report_files").rglob("*.png"))


@pytest.mark.slow
def test_two_cells_at_once_give_the_same_results(reference, tmp_path: Path) -> None:
    _, root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    study = tiny_study(tmp_path / "study.yaml", tmp_path / "parallel")
    ran = run_study("--config", str(study), "--parallel", "2")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert results_of(tmp_path / "parallel") == results_of(root)
    first, second = (json.loads((tmp_path / "parallel" / n / "study_cell.json").read_text())["history"][0]
                     for n in CELLS[:2])
    assert second["started"] < first["ended"]  # they ran at the same time


@pytest.mark.slow
def test_submitit_local_executor_gives_the_same_results(reference, tmp_path: Path) -> None:
    _, root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    study = tiny_study(tmp_path / "study.yaml", tmp_path / "submitit", executor="submitit_local", parallel=2,
                       slurm={"timeout_min": 30, "slurm_partition": "ignored-by-the-local-executor"})
    ran = run_study("--config", str(study))
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert results_of(tmp_path / "submitit") == results_of(root)
    records = [json.loads((tmp_path / "submitit" / n / "study_cell.json").read_text()) for n in CELLS]
    assert {r["executor"] for r in records} == {"submitit_local"} and all(r["peak_rss_mb"] > 100 for r in records)
    assert len(list((tmp_path / "submitit" / ".submitit").glob("*/*_result.pkl"))) == 4  # submitit's own jobs


RUNNER_HARNESS = """
import sys
from pathlib import Path
from darts_pl.study import executors
job = Path(__file__).with_name("job_harness.py")
executors.job_command = lambda: [sys.executable, str(job), *sys.argv[1:4]]
from darts_pl.study.cli import main
main(sys.argv[4:])
"""
JOB_HARNESS = """
import sys
from pathlib import Path
from darts_pl.study import cells
target, epoch, batch = sys.argv[1:4]
child, real = Path(__file__).with_name("child_harness.py"), cells.child_command
def child_command(args):
    if args[args.index("--trainer.default_root_dir") + 1].endswith(target):
        return [sys.executable, str(child), epoch, batch, "fit", *args]
    return real(args)
cells.child_command = child_command
cells.main(["-"])
"""
CHILD_HARNESS = """
import os, signal, sys
epoch, batch = int(sys.argv[1]), int(sys.argv[2])
from darts_pl.modules import LitSearch
step = LitSearch.training_step
def training_step(self, b, i):
    if self.current_epoch == epoch and i == batch:  # kill the runner, the cell's job and this run at once
        job = os.getppid()
        runner = int(open(f"/proc/{job}/stat").read().rsplit(")", 1)[1].split()[1])
        for pid in (runner, job, os.getpid()):
            os.kill(pid, signal.SIGKILL)
    return step(self, b, i)
LitSearch.training_step = training_step
from darts_pl.cli import main
main(sys.argv[3:])
"""


@pytest.mark.slow
def test_killed_study_continues_without_redoing_finished_cells(reference, tmp_path: Path) -> None:
    _, reference_root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    for name, text in (("runner_harness.py", RUNNER_HARNESS), ("job_harness.py", JOB_HARNESS),
                       ("child_harness.py", CHILD_HARNESS)):
        (tmp_path / name).write_text(text)
    root = tmp_path / "killed"
    study = tiny_study(tmp_path / "study.yaml", root)
    killed = run_study("gdas/seed_0", "1", "1", "--config", str(study), harness=tmp_path / "runner_harness.py")
    assert killed.returncode == -9, killed.stderr[-3000:]  # in epoch 1 of the third cell
    assert [json.loads((root / n / "study_cell.json").read_text())["status"] for n in CELLS[:3]] == [
        "finished", "finished", "running"]
    assert not (root / CELLS[3]).exists()
    stamps = {n: (root / n / "study_cell.json").stat().st_mtime_ns for n in CELLS[:2]}

    again = run_study("--config", str(study))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 finished, 2 to run" in again.stderr and "gdas/seed_0: started (continuing its run)" in again.stderr
    assert stamps == {n: (root / n / "study_cell.json").stat().st_mtime_ns for n in CELLS[:2]}  # not run again
    records = {n: json.loads((root / n / "study_cell.json").read_text()) for n in CELLS}
    assert [records[n]["attempts"] for n in CELLS] == [1, 1, 2, 1]
    assert [h["resumed"] for h in records["gdas/seed_0"]["history"]] == [False, True]
    runs = cellfiles.run_directories(root / "gdas" / "seed_0")
    assert len(runs) == 1 and len(list((runs[0] / "checkpoints").glob("*.ckpt"))) >= 1  # resumed in its own run
    assert results_of(root) == results_of(reference_root)


@pytest.mark.slow
def test_report_reaches_wandb_offline(reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from darts_pl.study.report import build_report, log_to_wandb

    _, root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    monkeypatch.setenv("WANDB_MODE", "offline")
    log_to_wandb(copy, build_report(copy), {"project": "darts_pl", "group": "tiny", "id": "study-test"})
    runs = list((copy / "wandb").glob("offline-run-*-study-test"))
    assert len(runs) == 1
    tables = {p.name.split("_")[0] for p in runs[0].rglob("*.table.json")}
    assert tables == {"summary", "cells"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "cifar10_jpeg_small", "darts_space_methods", "nb201_methods"])
def test_shipped_studies_parse_for_every_method(name: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from darts_pl import cli
    from darts_pl.study.spec import validate

    monkeypatch.chdir(REPO)
    study, _ = load_study(["--config", f"configs/studies/{name}.yaml", "--root", str(tmp_path / "root")])
    missing = [p for p in study.base if not Path(p).is_file()]  # the benchmark overlay, where not yet merged
    study.base = [p for p in study.base if p not in missing]
    validate(study)
    methods = set()
    for key in study.cells():
        if key.method.name in methods:
            continue
        methods.add(key.method.name)
        spec = cell_spec(study, key, tmp_path / "root")
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["fit", *spec.args, "--print_config"])
        assert exit_info.value.code in (0, None), (key.label, capsys.readouterr().err[-2000:])
        config = yaml.safe_load(capsys.readouterr().out)
        assert config["seed_everything"] == key.seed
    assert methods == {m.name for m in study.methods}


@pytest.mark.slow
@pytest.mark.ddp
def test_a_cell_runs_ddp(tmp_path: Path) -> None:
    """A cell of two processes (DDP on the CPU, Lightning's own launcher): one run, one record, one result."""
    study = tiny_study(tmp_path / "study.yaml", tmp_path / "ddp", seeds=[0], methods=[
        {"name": "darts", "args": ["--trainer.strategy", "ddp", "--trainer.devices", "2"]}])
    ran = run_study("--config", str(study))
    assert ran.returncode == 0, ran.stderr[-3000:]
    record = json.loads((tmp_path / "ddp" / "darts" / "seed_0" / "study_cell.json").read_text())
    assert record["status"] == "finished" and record["peak_rss_mb"] > 100
    runs = cellfiles.run_directories(tmp_path / "ddp" / "darts" / "seed_0")
    assert len(runs) == 1
    config = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert (config["trainer"]["strategy"], str(config["trainer"]["devices"])) == ("ddp", "2")
    assert "1 of 1 cells finished." in (tmp_path / "ddp" / "report.md").read_text()


def test_epoch_scalars_write_each_validation_and_drop_repeated_epochs(tmp_path: Path) -> None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from darts_pl.data import DigitsDataModule
    from darts_pl.modules.search import LitSearch
    from darts_pl.search import CNNSearchSpace
    from darts_pl.study.epoch_scalars import FILENAME, EpochScalars

    def fit(epochs: int, ckpt_path: str | None = None) -> L.Trainer:
        torch.manual_seed(0)
        trainer = L.Trainer(max_epochs=epochs, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                            devices=1, logger=False, default_root_dir=str(tmp_path), enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[EpochScalars(dirpath=str(tmp_path)), ModelCheckpoint(
                                dirpath=str(tmp_path / "checkpoints"), save_last=True)])
        trainer.fit(LitSearch(CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)),
                    DigitsDataModule(batch_size=16), ckpt_path=ckpt_path)
        return trainer

    fit(1)
    first = json.loads((tmp_path / FILENAME).read_text())["epochs"]
    assert [(e["epoch"], e["step"]) for e in first] == [(0, 1)] and "val/acc" in first[0]["metrics"]
    stale = {"epoch": 1, "step": 3, "wall_time": 0.0, "metrics": {"val/acc": -1.0}}  # a killed attempt's epoch 1
    (tmp_path / FILENAME).write_text(json.dumps({"epochs": [*first, stale]}))
    trainer = fit(2, str(tmp_path / "checkpoints" / "last.ckpt"))
    epochs = json.loads((tmp_path / FILENAME).read_text())["epochs"]
    assert [(e["epoch"], e["step"]) for e in epochs] == [(0, 1), (1, 3)] and epochs[0] == first[0]
    assert epochs[1]["metrics"]["val/acc"] == pytest.approx(float(trainer.callback_metrics["val/acc"]))
    scalars, _, iterations = rundata.read_scalars(tmp_path)
    assert scalars["val/acc"] == pytest.approx({0: first[0]["metrics"]["val/acc"], 1: epochs[1]["metrics"]["val/acc"]})
    assert iterations == 4


@pytest.mark.slow
def test_report_of_a_study_with_an_axis(reference, tmp_path: Path) -> None:
    """Rows, curves and cell tables per axis value (the reference's runs laid out as a grid with an axis)."""
    from darts_pl.study.report import build_report

    _, root, done = reference
    assert done.returncode == 0, done.stderr[-3000:]
    grid = json.loads((root / "study.json").read_text())
    grid["grid"]["axes"] = [{"name": "space", "values": [{"name": "a"}, {"name": "b"}]}]
    grid["grid"]["seeds"] = [0]
    axis_root = tmp_path / "axis"
    axis_root.mkdir()
    (axis_root / "study.json").write_text(json.dumps(grid))
    for method in ("darts", "gdas"):  # seed 0's run as space=a, seed 1's as space=b
        for seed, value in ((0, "a"), (1, "b")):
            shutil.copytree(root / method / f"seed_{seed}", axis_root / method / f"space={value}" / "seed_0")
    report = build_report(axis_root)
    assert [(r["method"], r["space"], r["seeds"]) for r in report.summary] == [
        ("darts", "a", 1), ("darts", "b", 1), ("gdas", "a", 1), ("gdas", "b", 1)]
    reference_cells = {(row["method"], row["seed"]): row for row in read_csv(root / "cells.csv")}
    for row in read_csv(axis_root / "cells.csv"):
        original = reference_cells[(row["method"], "0" if row["space"] == "a" else "1")]
        assert (row["val_acc"], row["genotype"]) == (original["val_acc"], original["genotype"])
    assert set(report.pictures) == {"space=a", "space=b"}
    assert (axis_root / "report_files" / "curve_val_acc__space=b.png").is_file()
    text = (axis_root / "report.md").read_text()
    assert "| method | space | seeds |" in text and "### space=b" in text


@pytest.mark.slow
def test_sigterm_stops_the_cells_and_a_rerun_continues_them(tmp_path: Path) -> None:
    study = tiny_study(tmp_path / "study.yaml", tmp_path / "root", seeds=[0], methods=[{"name": "darts"}],
                       args=[*TINY_ARGS, "--trainer.max_epochs", "5"])
    cell = tmp_path / "root" / "darts" / "seed_0"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    runner = subprocess.Popen([sys.executable, "-m", "darts_pl.study", "--config", str(study)], cwd=REPO, env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(cell.rglob("*.ckpt")) and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        runner.send_signal(signal.SIGTERM)  # during epoch 1 (epoch 0's checkpoint is there)
        _, err = runner.communicate(timeout=300)
    finally:
        runner.kill()
    assert runner.returncode == 143, err[-3000:]
    assert "stopping on SIGTERM" in err
    record = json.loads((cell / "study_cell.json").read_text())
    assert record["status"] == "interrupted" and record["returncode"] == 143, record
    again = run_study("--config", str(study))
    assert again.returncode == 0, again.stderr[-3000:]
    record = json.loads((cell / "study_cell.json").read_text())
    assert record["status"] == "finished" and [h["resumed"] for h in record["history"]] == [False, True]
    assert len(cellfiles.run_directories(cell)) == 1


@pytest.mark.slow
def test_wandb_cells_get_group_job_type_scalars_and_the_report(tmp_path: Path) -> None:
    study = tiny_study(tmp_path / "study.yaml", tmp_path / "root", seeds=[0], methods=[{"name": "darts"}],
                       base=[QUICKSTART, str(REPO / "configs" / "wandb.yaml")])
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    ran = subprocess.run([sys.executable, "-m", "darts_pl.study", "--config", str(study)], cwd=REPO, timeout=600,
                         env={**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-3000:]
    root, cell = tmp_path / "root", tmp_path / "root" / "darts" / "seed_0"
    (run,) = cellfiles.run_directories(cell)
    assert run.parent == cell / "darts_pl"  # <save_dir>/<project>/<W&B run id>, in the cell
    logger = yaml.safe_load((run / "config.yaml").read_text())["trainer"]["logger"]["init_args"]
    assert (logger["group"], logger["job_type"]) == ("tiny", "darts")
    epochs = json.loads((run / "epoch_scalars.json").read_text())["epochs"]
    row = read_csv(root / "report.csv")[0]
    assert float(row["val_acc_mean"]) == pytest.approx(epochs[-1]["metrics"]["val/acc"], rel=1e-5)
    settings = json.loads((root / "study.json").read_text())["wandb"]
    assert settings["group"] == "tiny" and settings["project"] == "darts_pl"
    assert len(list((root / "wandb").glob(f"offline-run-*-{settings['id']}"))) == 1
