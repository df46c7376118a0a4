"""One check of darts_pl on a CUDA machine, in under 8 minutes, ending in one table.

    python -m benchmarks.device_check                      # on the GPU machine: every step, about 7 minutes
    python -m benchmarks.device_check --dry-run            # anywhere: plan every step and validate its command
    python -m benchmarks.device_check --device cpu         # every step for real at toy sizes, on the CPU
    python -m benchmarks.device_check --only bench-bf16 search-bf16-mixed --json check.json

Steps, each a subprocess with its own time budget (the budgets add up to 450 s), logs under ``--out``:

=======================  =================================================================================
step                     what it runs
=======================  =================================================================================
tests                    the device-independent tests (ops, search spaces, strategies, variants, networks)
                         with CUDA as torch's default device (``-p benchmarks.cuda_default``)
bench-fp32               ``bench_search`` at batch 64 on the paper's supernet: step times, peak memory
bench-bf16               the same under bf16 autocast
bench-compile            fp32 with ``torch.compile`` (reported; its failure does not fail the check)
search-bf16-mixed        a 2-epoch search, ``--trainer.precision bf16-mixed`` (first order)
search-fp32-2nd-order    a 2-epoch search, fp32, second order (``configs/second_order.yaml``)
ddp                      a 2-epoch search over every visible GPU (``configs/ddp.yaml``)
=======================  =================================================================================

The searches run the quickstart config (sklearn's digits ship with the package, so nothing is downloaded)
with the paper's supernet size (16 channels, 8 cells) and a CSV logger; their row gives the last
``train/loss`` and ``val/loss`` and whether ``genotype.json`` was written. The exit status is 1 when a
required step failed or ran out of time.

``--dry-run`` starts no work: it builds every step's command exactly as on the GPU, checks it (the
search commands are parsed by ``darts-pl``'s own config parser, the benchmark's by its argument parser,
the test files must exist) and prints the table with each command. ``--device cpu`` runs every step for
real at toy sizes, which exercises the runner and the result parsing without a GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TEST_FILES = ("tests/test_ops.py", "tests/test_search_cnn.py", "tests/test_search_rnn.py", "tests/test_strategies.py",
              "tests/test_variants.py", "tests/test_networks_cnn.py", "tests/test_genotypes.py")
"""Tests of the maths, not of files, data or processes: what CUDA as the default device exercises."""
TIME_LIMIT_S = 480


@dataclass(frozen=True)
class Sizes:
    """How big each step is: the real check on CUDA, toys for ``--device cpu``."""

    device: str
    test_files: tuple[str, ...]
    bench: tuple[str, ...]
    space: tuple[str, ...]
    search: tuple[str, ...] = ()
    ddp_devices: int = 1


def sizes(device: str, gpus: int) -> Sizes:
    if device == "cuda":
        return Sizes("cuda", TEST_FILES, ("--batch", "64", "--iters", "5", "--warmup", "1"),
                     ("--model.init_args.space.init_args.channels", "16",
                      "--model.init_args.space.init_args.num_cells", "8"), ddp_devices=max(gpus, 1))
    return Sizes("cpu", ("tests/test_genotypes.py",),
                 ("--batch", "2", "--channels", "4", "--cells", "3", "--image-size", "8", "--iters", "1",
                  "--warmup", "0", "--no-memory"),
                 ("--model.init_args.space.init_args.channels", "4",
                  "--model.init_args.space.init_args.num_cells", "3"),
                 ("--config", str(CONFIGS / "debug.yaml")), ddp_devices=2)


@dataclass
class Step:
    """One row of the table: a command, its budget, and how to read its result."""

    name: str
    budget_s: int
    command: list[str]
    summarize: Callable[[Path], str]
    validate: Callable[[], None]
    required: bool = True
    env: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- reading results
def summarize_tests(folder: Path) -> str:
    """``N passed, M failed, K skipped`` from pytest's JUnit XML, and the first failures."""
    suite = ET.parse(folder / "junit.xml").getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    total, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    names = [f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}" for case in suite.iter("testcase")
             if case.find("failure") is not None or case.find("error") is not None]
    text = f"{total - failed - skipped} passed, {failed} failed, {skipped} skipped"
    return text + (f"; first: {', '.join(names[:2])}" if names else "")


def summarize_bench(folder: Path) -> str:
    """Median seconds per case and, when measured, the peak memory (GB) of each."""
    rows = json.loads((folder / "bench.json").read_text())["rows"]
    parts = []
    for row in rows:
        peak = f", peak {row['peak_gb']:.2f} GB" if row.get("peak_gb") is not None else ""
        parts.append(f"{row['case']} {row['median_s'] * 1000:.1f} ms{peak}")
    return "; ".join(parts)


def _last(rows: list[dict[str, str]], key: str) -> str:
    values = [row[key] for row in rows if row.get(key)]
    return f"{float(values[-1]):.3f}" if values else "-"


def summarize_search(folder: Path) -> str:
    """The last train and validation losses, the iterations run, and whether the genotype was written."""
    metrics = sorted(folder.rglob("metrics.csv"))
    if not metrics:
        raise FileNotFoundError(f"no metrics.csv under {folder}")
    rows = list(csv.DictReader(metrics[-1].open()))
    iterations = max((int(row["step"]) for row in rows if row.get("step")), default=-1) + 1
    genotype = "written" if any(folder.rglob("genotype.json")) else "MISSING"
    return (f"train/loss {_last(rows, 'train/loss')}, val/loss {_last(rows, 'val/loss')} after {iterations} "
            f"iterations; genotype.json {genotype}")


# ----------------------------------------------------------------------------------------- the steps
def _validate_files(files: tuple[str, ...]) -> Callable[[], None]:
    def check() -> None:
        missing = [name for name in files if not (REPO / name).is_file()]
        if missing:
            raise FileNotFoundError(f"test files not found: {', '.join(missing)}")
    return check


def _validate_bench(args: list[str]) -> Callable[[], None]:
    def check() -> None:
        from benchmarks import bench_search

        bench_search.parse(args)
    return check


def _validate_cli(args: list[str]) -> Callable[[], None]:
    def check() -> None:
        from darts_pl.cli import main

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                main([*args, "--print_config"])
            except SystemExit as exit_:
                if exit_.code not in (0, None):
                    raise ValueError(err.getvalue().strip() or f"darts-pl exited with {exit_.code}") from None
    return check


def test_step(size: Sizes, folder: Path) -> Step:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "benchmarks.cuda_default", "-m", "not ddp and not slow",
               "--junitxml", str(folder / "junit.xml"), *size.test_files]
    return Step("tests", 150, command, summarize_tests, _validate_files(size.test_files))


def bench_step(size: Sizes, folder: Path, name: str, extra: tuple[str, ...], budget_s: int,
               required: bool = True) -> Step:
    args = ["--device", size.device, "--no-reference", *size.bench, *extra, "--json", str(folder / "bench.json")]
    return Step(name, budget_s, [sys.executable, "-m", "benchmarks.bench_search", *args], summarize_bench,
                _validate_bench(args), required)


def search_step(size: Sizes, folder: Path, name: str, extra: tuple[str, ...], budget_s: int,
                devices: int = 1) -> Step:
    args = ["fit", "--config", str(CONFIGS / "quickstart.yaml"), *extra, *size.search, *size.space,
            "--trainer.accelerator", size.device, "--trainer.devices", str(devices), "--trainer.max_epochs", "2",
            "--trainer.default_root_dir", str(folder), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.init_args.save_dir",
            str(folder)]
    return Step(name, budget_s, [sys.executable, "-m", "darts_pl.cli", *args], summarize_search,
                _validate_cli(args))


def plan(size: Sizes, out: Path) -> list[Step]:
    """Every step, in the order it runs; the budgets add up to less than the 8 minutes."""
    second = ("--config", str(CONFIGS / "second_order.yaml"))
    return [
        test_step(size, out / "tests"),
        bench_step(size, out / "bench-fp32", "bench-fp32", ("--precision", "fp32"), 45),
        bench_step(size, out / "bench-bf16", "bench-bf16", ("--precision", "bf16"), 45),
        bench_step(size, out / "bench-compile", "bench-compile", ("--precision", "fp32", "--compile"), 60,
                   required=False),
        search_step(size, out / "search-bf16-mixed", "search-bf16-mixed", ("--trainer.precision", "bf16-mixed"), 45),
        search_step(size, out / "search-fp32-2nd-order", "search-fp32-2nd-order", second, 50),
        search_step(size, out / "ddp", f"ddp x{size.ddp_devices}", ("--config", str(CONFIGS / "ddp.yaml")), 55,
                    devices=size.ddp_devices),
    ]


# ----------------------------------------------------------------------------------------- running
@dataclass
class Outcome:
    step: Step
    status: str
    seconds: float
    result: str


def run_step(step: Step, folder: Path, threads: int | None) -> Outcome:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **step.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                 os.environ.get("PYTHONPATH")]))}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    with (folder / "log.txt").open("w") as log:
        # A session of its own, so a step out of time is stopped with every process it started (DDP
        # workers, compile workers), and nothing else.
        process = subprocess.Popen(step.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            returncode = process.wait(timeout=step.budget_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return Outcome(step, "TIMEOUT", time.perf_counter() - start, f"over {step.budget_s} s; see {log.name}")
    seconds = time.perf_counter() - start
    try:
        result = step.summarize(folder)
    except (OSError, ValueError, KeyError, ET.ParseError) as err:
        result = f"no result ({err})"
    if returncode != 0:  # the error itself, usually the log's last line
        lines = [line.strip() for line in (folder / "log.txt").read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        return Outcome(step, f"FAILED ({returncode})", seconds,
                       f"{last[:200]}; see {folder / 'log.txt'}" + ("" if result.startswith("no result") else
                                                                   f"; {result}"))
    return Outcome(step, "FAILED (result)" if "MISSING" in result else "ok", seconds, result)


def dry_step(step: Step) -> Outcome:
    start = time.perf_counter()
    try:
        step.validate()
    except (Exception, SystemExit) as err:  # any failure of the check is this step's result
        return Outcome(step, "INVALID", time.perf_counter() - start, str(err).splitlines()[0] if str(err) else "")
    shown = ["python" if part == sys.executable else part.replace(str(REPO) + os.sep, "") for part in step.command]
    return Outcome(step, "ready", time.perf_counter() - start, shlex.join(shown))


def table(outcomes: list[Outcome], header: str) -> str:
    width = max(len(o.step.name) for o in outcomes)
    head = f"{'step':<{width}}  {'status':<12} {'seconds':>8} {'budget':>7}  result"
    lines = [header, head, "-" * len(head)]
    for o in outcomes:
        mark = "" if o.step.required else " (optional)"
        lines.append(f"{o.step.name:<{width}}  {o.status:<12} {o.seconds:>8.1f} {o.step.budget_s:>7}  {o.result}{mark}")
    total = sum(o.seconds for o in outcomes)
    lines.append(f"{'total':<{width}}  {'':<12} {total:>8.1f} {sum(o.step.budget_s for o in outcomes):>7}")
    return "\n".join(lines)


def machine(device: str) -> tuple[str, int]:
    """A line naming the machine, and the number of visible GPUs."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = sorted({torch.cuda.get_device_name(i) for i in range(gpus)})
    where = f"{gpus} x {', '.join(names)}" if gpus else "no CUDA device"
    return f"darts_pl device check: {device}; {where}; torch {torch.__version__}", gpus


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="plan and validate every step; run nothing")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: the real check; cpu: every step at toy sizes")
    p.add_argument("--only", nargs="+", default=None, metavar="STEP",
                   help="run these steps only (names as in the table)")
    p.add_argument("--out", default=None, help="where logs and results go (default: runs/device_check/<time>)")
    p.add_argument("--json", default=None, help="also write the table's rows here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    header, gpus = machine(args.device)
    if args.device == "cuda" and not gpus and not args.dry_run:
        print(f"{header}\ndevice_check: no CUDA device here; use --dry-run, or --device cpu for toy sizes.",
              file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else REPO / "runs" / "device_check" / time.strftime("%Y%m%d-%H%M%S")
    steps = plan(sizes(args.device, gpus), out.resolve())
    known = [step.name.split(" ")[0] for step in steps]
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        print(f"device_check: --only {' '.join(unknown)}: unknown step; known: {', '.join(known)}", file=sys.stderr)
        return 2
    steps = [step for step, name in zip(steps, known) if args.only is None or name in args.only]
    threads = 1 if args.device == "cpu" else None  # two busy processes on few cores: one thread each
    outcomes = []
    for step in steps:
        outcome = dry_step(step) if args.dry_run else run_step(step, out / step.name.split(" ")[0], threads)
        print(f"{outcome.step.name}: {outcome.status} ({outcome.seconds:.1f} s)", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    mode = "dry run, nothing executed" if args.dry_run else f"logs in {out}"
    print(table(outcomes, f"{header}; {mode}"))
    if args.json:
        rows = [{"step": o.step.name, "status": o.status, "seconds": o.seconds, "budget_s": o.step.budget_s,
                 "required": o.step.required, "result": o.result} for o in outcomes]
        Path(args.json).write_text(json.dumps({"machine": header, "rows": rows}, indent=2))
    bad = [o for o in outcomes if o.step.required and o.status not in ("ok", "ready")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
