"""The kill/fault matrix: a tiny quickstart search is killed, signalled, starved of disk and started twice at
once; after each fault ``--ckpt_path last`` finishes it with the alphas of the uninterrupted run, and every
file the run left is valid.

Each fault is injected from outside the package: the search runs under a small harness (``HARNESS``) that
wraps ``os.replace`` (the rename that publishes every file) or the training step, then calls ``main``.
Runs go two at a time (one per core), each with one thread.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from darts_pl.callbacks.monitor import AlphaHistory
from darts_pl.checkpoints import newest_checkpoint
from darts_pl.genotypes import load

from .conftest import REPO

ARGS = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--trainer.max_epochs", "2",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar",
        "false", "--trainer.enable_model_summary", "false", "--trainer.deterministic", "true",
        "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
        "--data.init_args.batch_size", "16", "--trainer.callbacks", json.dumps([  # the quickstart's, without drawing
            {"class_path": "darts_pl.callbacks.GenotypeCheckpoint", "init_args": {"diagrams": False}},
            {"class_path": "darts_pl.callbacks.ArchitectureMonitor", "init_args": {"log_media": False}},
            {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}])]

HARNESS = r"""
import os, signal, sys
fault, target, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = [0]
if fault in ("SIGKILL", "ENOSPC"):  # at the nth rename onto a file named `target`: the file is written, not published
    real = os.replace
    def replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == target:
            seen[0] += 1
            if seen[0] == nth and fault == "SIGKILL":
                os.kill(os.getpid(), signal.SIGKILL)
            if seen[0] >= nth:
                raise OSError(28, "No space left on device", os.fspath(dst))
        return real(src, dst, *args, **kwargs)
    os.replace = replace
elif fault in ("SIGTERM", "SIGINT"):  # during batch `nth` of epoch `target`
    from darts_pl.modules import LitSearch
    step = LitSearch.training_step
    def training_step(self, batch, batch_idx):
        if self.current_epoch == int(target) and batch_idx == nth:
            os.kill(os.getpid(), getattr(signal, fault))
        return step(self, batch, batch_idx)
    LitSearch.training_step = training_step
elif fault == "REMOUNT_RO":  # at batch `nth` of epoch 1: the filesystem mounted at `target` turns read-only
    import subprocess
    from darts_pl.modules import LitSearch
    step = LitSearch.training_step
    def training_step(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == nth:
            subprocess.run(["mount", "-o", "remount,ro", target], check=True)
        return step(self, batch, batch_idx)
    LitSearch.training_step = training_step
elif fault == "PAUSE":  # at batch `nth` of epoch `target`: say so in ./paused, go on once ./go exists
    import time
    from darts_pl.modules import LitSearch
    step = LitSearch.training_step
    def training_step(self, batch, batch_idx):
        if self.current_epoch == int(target) and batch_idx == nth:
            open("paused", "w").close()
            while not os.path.exists("go"):
                time.sleep(0.05)
        return step(self, batch, batch_idx)
    LitSearch.training_step = training_step
from darts_pl.cli import main
main(sys.argv[4:])
"""


def harness(root: Path, *extra: str, fault: tuple[str, str, int] = ("none", "", 0)) -> list[str]:
    return [sys.executable, "-c", HARNESS, *map(str, fault), *ARGS, "--trainer.default_root_dir", str(root), *extra]


def run(root: Path, *extra: str, fault: tuple[str, str, int] = ("none", "", 0)) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(harness(root, *extra, fault=fault), env=env, capture_output=True, text=True, timeout=300,
                          cwd=root.parent)


def in_parallel(*calls) -> list:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda call: call(), calls))


def runs_in(root: Path) -> list[Path]:
    """The run directories below a job's root: ``<root>/<method or logger name>/version_N``."""
    return sorted(root.glob("*/version_*"))


def the_run(root: Path) -> Path:
    runs = runs_in(root)
    assert len(runs) == 1, runs
    return runs[0]


def final_alphas(run_dir: Path) -> dict[str, torch.Tensor]:
    """The alphas of the run's newest checkpoint (by content: resuming from the last epoch's checkpoint
    trains nothing more, so that one may be newer than last.ckpt)."""
    newest, damaged = newest_checkpoint(run_dir / "checkpoints")
    assert newest is not None and not damaged, damaged
    state = torch.load(newest, weights_only=True)
    assert state["epoch"] == 1
    return {k: v for k, v in state["state_dict"].items() if k.startswith("space.arch.")}


def assert_valid_files(run_dir: Path) -> None:
    """Every checkpoint loads, the history's two files agree, every JSON parses, no temporary file is left."""
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        torch.load(path, weights_only=True)
    history = AlphaHistory.load(run_dir)
    assert json.loads((run_dir / "alpha_history.json").read_text())["epochs"] == history.epochs == [0, 1]
    for path in run_dir.rglob("*.json"):
        json.loads(path.read_text())
    assert not list(run_dir.rglob("*.tmp"))


FAULTS = {  # name: (fault, expected exit status)
    "kill-in-checkpoint-write": (("SIGKILL", "last.ckpt", 2), -signal.SIGKILL),  # epoch 1's, before its rename
    "kill-in-history-write": (("SIGKILL", "alpha_history.json", 2), -signal.SIGKILL),  # between the two files
    "sigterm": (("SIGTERM", "1", 1), 143),  # epoch 1, batch 1; then last.ckpt is torn before the resume
    "sigint": (("SIGINT", "1", 0), 130),
}


@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    """Every run of the matrix, two at a time: the faulted runs first, then their resumptions."""
    base = tmp_path_factory.mktemp("faults")
    roots = {name: base / name for name in ["reference", *FAULTS]}
    first = in_parallel(lambda: run(roots["reference"]),
                        *(lambda n=name: run(roots[n], fault=FAULTS[n][0]) for name in FAULTS))
    last = the_run(roots["sigterm"]) / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a torn write, as a copy across filesystems left
    second = in_parallel(*(lambda n=name: run(roots[n], "--ckpt_path", "last") for name in FAULTS))
    return {"reference": (roots["reference"], [first[0]])} | {
        name: (roots[name], [first[i + 1], second[i]]) for i, name in enumerate(FAULTS)}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_then_resume_ends_with_the_uninterrupted_alphas(matrix, name: str) -> None:
    (reference_root, (done,)), (root, (faulted, resumed)) = matrix["reference"], matrix[name]
    assert done.returncode == 0, done.stderr[-3000:]
    status = FAULTS[name][1]
    assert faulted.returncode == status, faulted.stderr[-3000:]
    if status in (143, 130):
        assert faulted.stderr.strip().splitlines()[-1].startswith(f"darts-pl: stopped by {FAULTS[name][0][0]}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if name == "sigterm":
        assert "passing over a damaged" in resumed.stderr and "last.ckpt" in resumed.stderr, resumed.stderr[-3000:]
        moved = the_run(root) / "checkpoints" / "damaged" / "last.ckpt"
        assert f"moved it to {str(moved)!r}" in resumed.stderr and moved.is_file(), resumed.stderr[-3000:]
    reference, run_dir = the_run(reference_root), the_run(root)
    a, b = final_alphas(reference), final_alphas(run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load(run_dir / "genotype.json") == load(reference / "genotype.json")
    assert not [p.name for p in (run_dir / "checkpoints").iterdir() if "-v" in p.name]  # no last-v1.ckpt
    assert_valid_files(run_dir)


def test_full_disk_exits_2_in_one_line_and_leaves_no_invalid_file(tmp_path: Path) -> None:
    # A real size-limited filesystem where the platform allows it (root and tmpfs), else ENOSPC injected at
    # the rename of the first checkpoint.
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True).returncode == 0
    try:
        root = mount / "run"
        done = run(root) if mounted else run(root, fault=("ENOSPC", "last.ckpt", 1))
        assert done.returncode == 2, done.stderr[-3000:]
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("darts-pl: error: ") and "No space left on device" in lines[-1], lines[-1]
        assert "Traceback" not in done.stderr
        for path in root.rglob("*.ckpt"):
            torch.load(path, weights_only=True)
        assert not list(root.rglob("*.tmp"))
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def small_filesystem(tmp_path: Path):
    """A 20 MB tmpfs of our own, which a test may turn read-only (root only)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("needs to mount a tmpfs (root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_filesystem_turning_read_only_mid_run_is_one_line(small_filesystem: Path) -> None:
    """The TensorBoard writer's thread meets the read-only filesystem too: its traceback must not be printed
    beside the one line (the same error reaches the run, which reports it). After a remount, the run
    continues."""
    root = small_filesystem / "run"
    done = run(root, fault=("REMOUNT_RO", str(small_filesystem), 0))
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("darts-pl: error: cannot write '/") and "Read-only file system" in lines[-1], lines[-1]
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr, done.stderr[-3000:]
    subprocess.run(["mount", "-o", "remount,rw", str(small_filesystem)], check=True)
    resumed = run(root, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_valid_files(the_run(root))


def test_write_errors_of_background_threads_are_collected_not_printed(monkeypatch) -> None:
    import errno
    import threading

    from darts_pl.cli import _quiet_thread_write_errors

    printed = []
    monkeypatch.setattr(threading, "excepthook", lambda args: printed.append(args.exc_value))

    def fail(err: Exception) -> None:
        raise err

    with _quiet_thread_write_errors() as collected:
        for err in (OSError(errno.EROFS, "Read-only file system", "events"), ValueError("a bug")):
            thread = threading.Thread(target=fail, args=(err,))
            thread.start()
            thread.join()
    assert [e.errno for e in collected] == [errno.EROFS]
    assert [str(e) for e in printed] == ["a bug"]  # any other error still goes to the hook that prints it


def test_runs_started_at_once_get_their_own_directories(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    results = in_parallel(lambda: run(root, "--trainer.max_epochs", "1", "--seed_everything", "1"),
                          lambda: run(root, "--trainer.max_epochs", "1", "--seed_everything", "2"))
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    runs = runs_in(root)
    assert [p.name for p in runs] == ["version_0", "version_1"]
    seeds = sorted(line for p in runs for line in (p / "config.yaml").read_text().splitlines()
                   if line.startswith("seed_everything:"))
    assert seeds == ["seed_everything: 1", "seed_everything: 2"]  # each run its own config
    for run_dir in runs:
        assert (run_dir / "genotype.json").is_file() and len(AlphaHistory.load(run_dir)) == 1
    histories = [np.load(p / "alpha_history.npz")["normal"] for p in runs]
    assert not np.array_equal(*histories)  # each run kept its own result


def test_a_resume_while_the_run_runs_is_refused_and_harms_nothing(tmp_path: Path) -> None:
    """``--ckpt_path last`` while the run it would continue is still running: refused in one line naming the
    process (exit 2), before it touches the run (the running one's temporary files stay); the running one
    finishes normally. Once it has exited, the resume goes ahead and removes the temporary files a kill left."""
    import time

    root = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    running = subprocess.Popen(harness(root, fault=("PAUSE", "1", 0)), env=env, cwd=tmp_path, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while not (tmp_path / "paused").exists() and running.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "paused").exists(), running.stderr.read()[-3000:] if running.poll() is not None else ""
        run_dir = the_run(root)
        pending = run_dir / "checkpoints" / ".last.ckpt.pending.tmp"  # an atomic write the running one is making
        pending.write_bytes(b"being written")
        second = run(root, "--ckpt_path", "last")
        assert second.returncode == 2, second.stderr[-3000:]
        line = second.stderr.strip().splitlines()[-1]
        assert line == (f"darts-pl: error: run directory {str(run_dir)!r} is in use by process {running.pid}; wait "
                        "for it or start a new run without --ckpt_path."), line
        assert "Traceback" not in second.stderr and pending.exists()
    finally:
        (tmp_path / "go").touch()
        _, err = running.communicate(timeout=300)
    assert running.returncode == 0, err[-3000:]
    assert runs_in(root) == [run_dir]
    after = run(root, "--ckpt_path", "last")
    assert after.returncode == 0, after.stderr[-3000:]
    assert not pending.exists()  # a leftover once its writer is gone
    assert_valid_files(run_dir)


def test_damaged_checkpoints_passed_over_are_moved_aside(tmp_path: Path) -> None:
    """A resume passes over a torn checkpoint, says where it moved it (``checkpoints/damaged/``), and the next
    resume finds nothing damaged to pass over."""
    root = tmp_path / "run"
    assert run(root, "--trainer.max_epochs", "1").returncode == 0
    checkpoints = the_run(root) / "checkpoints"
    torn = checkpoints / "last.ckpt"
    torn.write_bytes(torn.read_bytes()[:1000])
    resumed = run(root, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    moved = checkpoints / "damaged" / "last.ckpt"
    line = next(line for line in resumed.stderr.splitlines() if "passing over a damaged file" in line)
    assert str(torn) in line and line.endswith(f"; moved it to {str(moved)!r}."), line
    assert moved.stat().st_size == 1000
    again = run(root, "--ckpt_path", "last")
    assert again.returncode == 0 and "passing over" not in again.stderr, again.stderr[-3000:]
    assert_valid_files(the_run(root))


def _two_checkpoints(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True)
    older, newer = directory / "epoch=0.ckpt", directory / "last.ckpt"
    for path, step in ((older, 2), (newer, 4)):
        torch.save({"state_dict": {}, "epoch": step // 2 - 1, "global_step": step}, path)
    return older, newer


@pytest.mark.parametrize("when", ["before its header is read", "after its header is read"])
def test_a_checkpoint_that_vanishes_during_the_scan_is_passed_over(tmp_path: Path, monkeypatch, when: str) -> None:
    """A running ``ModelCheckpoint`` removes its older checkpoints: one that goes between the listing and its
    reading is neither an error nor reported as damaged."""
    import darts_pl.checkpoints as checkpoints

    older, newer = _two_checkpoints(tmp_path / "checkpoints")
    real = checkpoints.read_checkpoint_header

    def vanishing(path):
        if Path(path) == newer and when.startswith("before"):
            newer.unlink()
        header = real(path)
        if Path(path) == newer:
            newer.unlink(missing_ok=True)
        return header

    monkeypatch.setattr(checkpoints, "read_checkpoint_header", vanishing)
    assert newest_checkpoint(tmp_path / "checkpoints") == (older, {})


def test_a_run_whose_checkpoints_vanish_during_the_scan_is_passed_over(tmp_path: Path, monkeypatch) -> None:
    from darts_pl.callbacks import rundir

    _two_checkpoints(tmp_path / "version_0" / "checkpoints")
    gone = _two_checkpoints(tmp_path / "version_1" / "checkpoints")
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if self in gone:
            self.unlink(missing_ok=True)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert rundir.newest_run(tmp_path) == tmp_path / "version_0"


# ------------------------------------------------------------------ multi-process runs of the command itself
DDP_ARGS = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--trainer.devices", "2",
            "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--model.init_args.space.init_args.channels", "4",
            "--model.init_args.space.init_args.num_cells", "3", "--data.init_args.batch_size", "16"]


def run_bounded(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """``command`` in its own process group, killed with all its workers when it outlives ``timeout``: a hang
    fails the test instead of blocking the suite."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the command did not exit within {timeout} s; its output ends with:\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "overlay", "resume"), [("ddp_spawn", None, True), ("ddp_spawn", "gdas", False),
                                                             ("ddp", None, True)])
def test_the_command_under_ddp_exits_and_resumes(tmp_path: Path, strategy: str, overlay: str | None,
                                                 resume: bool) -> None:
    """The quickstart's own callbacks (the alpha monitor logs one scalar per op and edge: about 70 KB of
    callback metrics, more than a pipe holds) under both DDP launchers: the command exits after the final
    genotype, and ``--ckpt_path last`` continues the run in its own directory."""
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "darts_pl.cli", *DDP_ARGS, "--trainer.strategy", strategy,
               "--trainer.default_root_dir", str(root)]
    if overlay:
        command += ["--config", str(REPO / "configs" / "variants" / f"{overlay}.yaml")]
    done = run_bounded(command, tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (done.stdout + done.stderr).count("Final genotype written") == 1
    if resume:
        done = run_bounded([*command, "--trainer.max_epochs", "2", "--ckpt_path", "last"], tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    run_dir = the_run(root)
    epochs = ["epoch_000.json", "epoch_001.json"] if resume else ["epoch_000.json"]
    assert sorted(p.name for p in (run_dir / "genotypes").glob("*.json")) == epochs
    assert load(run_dir / "genotype.json") and len(AlphaHistory.load(run_dir)) == len(epochs)
    assert not list(run_dir.rglob("*.tmp"))


def test_a_spawned_rank_zero_result_travels_through_a_file() -> None:
    """What rank 0 puts into the return queue is a token of a few bytes, whatever the result's size; the main
    process unpickles it into the result itself, and the file is gone afterwards."""
    import pickle
    import queue

    from darts_pl.spawn import _ThroughFile

    sent: queue.Queue = queue.Queue()
    result = {"callback_metrics_bytes": os.urandom(1 << 20)}
    _ThroughFile(sent).put(result)
    item = sent.get()
    token = pickle.dumps(item)
    assert len(token) < 1024  # a pipe holds 64 KiB
    assert Path(item.path).is_file()
    assert pickle.loads(token) == result
    assert not Path(item.path).exists() and not Path(item.path).parent.exists()


# ------------------------------------------------------------------ the stage driver (darts-pl-progressive)
STAGES = ["--config", str(REPO / "configs" / "quickstart.yaml"), "--config",
          str(REPO / "configs" / "variants" / "pdarts.yaml"), "--num_cells", "3", "4", "5", "--warmup_epochs", "1"]

SIGINT_BETWEEN_STAGES = r"""
import os, signal, sys, time
from darts_pl import progressive
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job starts with it ignored)
progressive.run_fit = lambda args: None  # the stage's run (tested elsewhere)
def finish(*args, **kwargs):  # the driver's own work after a stage: SIGINT arrives now
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
progressive._finish_stage = finish
progressive.main(sys.argv[1:])
"""


def test_sigint_between_stages_is_one_line_and_status_130(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", SIGINT_BETWEEN_STAGES, "--root", str(tmp_path / "pd"), *STAGES],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 130, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("darts-pl-progressive: stopped by SIGINT") and "--ckpt_path last" in line, line


def drive(tmp_path: Path, monkeypatch, *extra: str) -> tuple[int, list[list[str]]]:
    """The driver with ``--ckpt_path last`` and stage runs that do nothing; its exit status and the stages run."""
    from darts_pl import progressive

    calls: list[list[str]] = []
    monkeypatch.setattr(progressive, "run_fit", calls.append)
    try:
        progressive.main(["--root", str(tmp_path / "pd"), *STAGES, *extra])
    except SystemExit as stopped:
        return int(stopped.code or 0), calls
    return 0, calls


def a_record(tmp_path: Path) -> dict:
    from darts_pl import progressive

    recipe = progressive.RECIPES["pdarts"]
    settings = recipe.settings(progressive._parser(recipe).parse_known_args(STAGES)[0])
    ops = [["none", "max_pool_3x3", "skip_connect"]] * 14
    stage = {"stage": 1, "num_cells": 3, "skip_dropout": 0.1, "run_dir": str(tmp_path), "primitives": ops[0],
             "edge_primitives": {"normal": ops, "reduce": ops}, "probs": {"normal": [], "reduce": []},
             "genotype": {"normal": [["skip_connect", 0]] * 8, "normal_concat": [2, 3, 4, 5],
                          "reduce": [["max_pool_3x3", 0]] * 8, "reduce_concat": [2, 3, 4, 5]},
             "pruned": {"normal": ops, "reduce": ops}}
    return {"format": progressive.FORMAT, "recipe": "pdarts", "settings": settings, "stages": [stage]}


RECORDS = {
    "truncated": lambda record: json.dumps(record)[:100],
    "empty": lambda record: "",
    "a list": lambda record: "[]",
    "no stages": lambda record: json.dumps({k: v for k, v in record.items() if k != "stages"}),
    "a stage without its pruned op sets": lambda record: json.dumps(
        record | {"stages": [{k: v for k, v in record["stages"][0].items() if k != "pruned"}]}),
}


@pytest.mark.parametrize("damage", list(RECORDS))
def test_a_damaged_stage_record_is_one_line(tmp_path: Path, monkeypatch, capsys, damage: str) -> None:
    path = tmp_path / "pd" / "stages.json"
    path.parent.mkdir()
    path.write_text(RECORDS[damage](a_record(tmp_path)))
    status, calls = drive(tmp_path, monkeypatch, "--ckpt_path", "last")
    err = capsys.readouterr().err
    assert status == 2 and not calls, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("darts-pl-progressive: error: ") and str(path) in line and "remove it" in line, line
    if damage.endswith("op sets"):
        assert "'pruned'" in line, line


def test_a_damaged_history_of_an_unrecorded_stage_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    """Stage 1 ran, the driver was stopped before recording it, and its alpha history is torn."""
    run_dir = tmp_path / "pd" / "stage_1" / "darts" / "version_0"
    run_dir.mkdir(parents=True)
    (run_dir / "genotype.json").write_text(json.dumps({
        "normal": [["skip_connect", 0]] * 8, "normal_concat": [2, 3, 4, 5],
        "reduce": [["max_pool_3x3", 0]] * 8, "reduce_concat": [2, 3, 4, 5]}))
    (run_dir / "alpha_history.npz").write_bytes(b"PK\x03\x04 torn")
    status, calls = drive(tmp_path, monkeypatch, "--ckpt_path", "last")
    err = capsys.readouterr().err
    assert status == 2 and len(calls) == 1, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("darts-pl-progressive: error: ") and str(run_dir / "alpha_history.npz") in line, line
    assert f"remove the stage directory {str(tmp_path / 'pd' / 'stage_1')!r}" in line, line


def test_more_ops_kept_than_a_stage_searches_is_refused_before_any_stage(tmp_path: Path, monkeypatch,
                                                                         capsys) -> None:
    status, calls = drive(tmp_path, monkeypatch, "--keep_ops", "10", "3")
    err = capsys.readouterr().err
    assert status == 2 and not calls, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("darts-pl-progressive: error: --keep_ops 10 3") and "8 ops" in line, line
