"""One cell of a study: its ``darts-pl fit`` command, its run, and its record ``study_cell.json``.

:func:`run_cell` is what every executor runs for a cell, in a small process of its own
(``python -m darts_pl.study.cells`` on this machine, or a submitit job here or on a SLURM node): it locks the cell
directory, skips a cell that is finished, starts ``python -m darts_pl.cli fit ...`` (with ``--ckpt_path last`` when
an earlier attempt left anything), waits for it with ``os.wait4`` (the child's peak resident memory and CPU time)
and records the attempt. ``ru_maxrss`` counts a child's parent before its ``exec`` too, hence the small process.

``<cell>/study_cell.json`` (written atomically; ``format: darts_pl.study_cell/1``)::

    {"cell": {"method", "axes", "seed"}, "status": "finished" | "failed" | "interrupted" | "running",
     "attempts": 2, "returncode": 0, "run_dir": "darts/version_0", "command": [...],
     "wall_s": 61.0, "cpu_s": 58.2, "peak_rss_mb": 812.0, "threads": 1,
     "history": [{"attempt", "started", "ended", "resumed", "returncode", "wall_s", "cpu_s", "peak_rss_mb",
                  "host", "pid"}, ...],
     "error": "last line of the child's stderr (failed attempts)"}

``wall_s`` and ``cpu_s`` add up the attempts; ``peak_rss_mb`` is their largest. The child's output goes to
``<cell>/study_cell.log``. A cell is finished when its record says ``finished`` and its run directory holds
``genotype.json``.

Locks: the cell directory's ``.study_cell.lock`` is held (``flock``) by the process that runs the cell and, through
an inherited descriptor, by the ``darts-pl fit`` child: a child that outlives a killed runner keeps its cell locked,
and a runner started meanwhile leaves that cell alone (status ``busy``) instead of running it twice.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from darts_pl.atomic import atomic_write

CELL_RECORD = "study_cell.json"
CELL_LOG = "study_cell.log"
CELL_LOCK = ".study_cell.lock"
CELL_FORMAT = "darts_pl.study_cell/1"
RUN_MARKERS = ("genotype.json", "alpha_history.npz", "checkpoints")
EPOCH_SCALARS = "darts_pl.study.EpochScalars"

@dataclass
class CellSpec:
    """Everything a process needs to run one cell (picklable: submitit sends it to its job).

    Args:
        directory: The cell's directory (absolute).
        args: ``darts-pl fit`` arguments (without ``fit``), the runner's own included.
        cell: ``{"method", "axes", "seed"}``.
        cwd: Directory the child runs in (relative paths of the configs' data directories are taken from it).
        env: Environment variables set for the child (``OMP_NUM_THREADS``).
        executor: Which executor ran it (recorded).
        resume: Continue the cell's run (``--ckpt_path last``): an earlier attempt left a run directory. Decided
            when the cell is handed out, so every task of a multi-task SLURM cell runs the same command.
    """

    directory: str
    args: list[str]
    cell: dict[str, Any]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    executor: str = "local"
    resume: bool = False

    @property
    def label(self) -> str:
        return str(Path(self.cell["method"], *[f"{k}={v}" for k, v in self.cell["axes"].items()],
                        f"seed_{self.cell['seed']}"))


# ----------------------------------------------------------------------------------------- the config, peeked
def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value


def _set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = config
    for name in parents:
        if isinstance(node.get(name), str):  # `--trainer.logger Class` then `--trainer.logger.init_args.x`
            node[name] = {"class_path": node[name]}
        node = node.setdefault(name, {}) if isinstance(node.get(name, {}), dict) else {}
    node[last] = value


def peek_config(args: Sequence[str]) -> dict[str, Any]:
    """The settings of ``--config`` files and ``--key value`` arguments, merged in order: a plain reading, enough to
    see the logger and the devices before the run (``darts-pl`` itself parses the real thing)."""
    config: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg, value = args[i], None
        if arg.startswith("--") and "=" in arg:
            arg, value = arg.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value, i = args[i + 1], i + 1
        i += 1
        if value is None or arg.endswith("+"):
            continue
        if arg == "--config":
            loaded = yaml.safe_load(Path(value).read_text()) if Path(value).is_file() else None
            _deep_merge(config, {k: v for k, v in (loaded or {}).items() if not k.endswith("+")})
        elif arg.startswith("--"):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                parsed = value
            _set_dotted(config, arg[2:], parsed)
    return config


def logger_of(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(kind, init_args)`` of the peeked config's logger: kind ``tensorboard`` (also the default), ``csv``,
    ``wandb``, ``none`` or ``other``."""
    logger = (config.get("trainer") or {}).get("logger")
    if logger is None or logger is True:
        return "tensorboard", {}
    if logger is False:
        return "none", {}
    class_path = logger if isinstance(logger, str) else str(logger.get("class_path", "")) if isinstance(
        logger, Mapping) else ""
    init_args = dict(logger.get("init_args") or {}) if isinstance(logger, Mapping) else {}
    for suffix, kind in (("TensorBoardLogger", "tensorboard"), ("CSVLogger", "csv"), ("WandbLogger", "wandb")):
        if class_path.endswith(suffix):
            return kind, init_args
    return "other", init_args


def processes_per_cell(config: Mapping[str, Any]) -> int:
    """Processes a cell runs on this machine's CPU: its ``trainer.devices`` under DDP on the CPU, else 1."""
    trainer = config.get("trainer") or {}
    devices = trainer.get("devices")
    on_cpu = str(trainer.get("accelerator", "auto")) == "cpu"
    return devices if on_cpu and isinstance(devices, int) and not isinstance(devices, bool) and devices > 1 else 1


def cpu_count() -> int:
    """Cores this process may run on."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_env(parallel: int, processes: int = 1) -> dict[str, str]:
    """``OMP_NUM_THREADS`` for a child: the cores shared by ``parallel`` cells of ``processes`` each, unless the
    user set it (then it is left as it is)."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, cpu_count() // (parallel * processes)))}


# ----------------------------------------------------------------------------------------- the run directory
def run_directories(cell_dir: Path) -> list[Path]:
    """The ``darts-pl`` runs below a cell directory (a ``config.yaml`` beside a checkpoint folder, an alpha
    history or a genotype), oldest first."""
    runs = []
    for config in cell_dir.rglob("config.yaml"):
        run = config.parent
        if run != cell_dir and any((run / marker).exists() for marker in RUN_MARKERS):
            runs.append(run)
    return sorted(runs, key=lambda run: (run / "config.yaml").stat().st_mtime)


def result_run(cell_dir: Path) -> Path | None:
    """The run that holds the cell's result: the newest one with ``genotype.json``, else the newest one."""
    runs = run_directories(cell_dir)
    finished = [run for run in runs if (run / "genotype.json").is_file()]
    return (finished or runs or [None])[-1]


def read_record(cell_dir: Path) -> dict[str, Any]:
    """The cell's ``study_cell.json`` (empty when there is none or it does not parse)."""
    path = cell_dir / CELL_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(cell_dir: Path, record: Mapping[str, Any]) -> None:
    atomic_write(cell_dir / CELL_RECORD, json.dumps(record, indent=1) + "\n")


def is_finished(cell_dir: Path) -> bool:
    """The runner recorded success and the run wrote its genotype."""
    if read_record(cell_dir).get("status") != "finished":
        return False
    run = result_run(cell_dir)
    return run is not None and (run / "genotype.json").is_file()


# ----------------------------------------------------------------------------------------- running a cell
def child_command(args: Sequence[str]) -> list[str]:
    """The process of a cell: ``python -m darts_pl.cli fit ARGS`` with this interpreter."""
    return [sys.executable, "-m", "darts_pl.cli", "fit", *args]


@contextlib.contextmanager
def cell_lock(cell_dir: Path) -> Iterator[IO[bytes] | None]:
    """Hold the cell's lock; yields its open file, or ``None`` when another process holds it."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    handle = open(cell_dir / CELL_LOCK, "a+b")  # closed below; the child inherits it
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        except OSError:  # a filesystem without flock: run unlocked
            pass
        handle.seek(0)
        handle.truncate()
        handle.write(owner_text().encode())
        handle.flush()
        yield handle
    finally:
        handle.close()


def owner_text() -> str:
    """What a lock file says about its holder: ``host <name> pid <pid>``."""
    return f"host {socket.gethostname()} pid {os.getpid()}\n"


def holder_text(handle: IO[bytes]) -> str:
    """The holder a lock file names (read through an open handle)."""
    handle.seek(0)
    return handle.read().decode(errors="replace").strip() or "holder unknown"


def holder(cell_dir: Path) -> str:
    """The holder of the cell's lock (``host <name> pid <pid>``)."""
    with contextlib.suppress(OSError):
        return (cell_dir / CELL_LOCK).read_text().strip()
    return "holder unknown"


def _is_rank_zero() -> bool:
    """In a submitit job of several tasks (a DDP cell under SLURM) every task runs :func:`run_cell`; only task 0
    locks and records."""
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return True
    import submitit

    return submitit.JobEnvironment().global_rank == 0


def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Run (or continue, or skip) one cell; returns its record (status ``busy`` when another process holds it).

    This is the function every executor runs, in the runner or in a submitit job.
    """
    cell_dir = Path(spec.directory)
    if not _is_rank_zero():  # another task of a multi-task SLURM cell: run the command, record nothing
        return _attempt(spec, cell_dir, None, {})
    with cell_lock(cell_dir) as lock:
        if lock is None:
            return {"cell": spec.cell, "status": "busy", "holder": holder(cell_dir)}
        record = read_record(cell_dir)
        if is_finished(cell_dir):  # e.g. a second job of a cell a study ran twice: nothing to do
            return {**record, "already": True}
        record = {"format": CELL_FORMAT, "cell": spec.cell, "history": [], **record}
        return _attempt(spec, cell_dir, lock, record)


def _attempt(spec: CellSpec, cell_dir: Path, lock: IO[bytes] | None, record: dict[str, Any]) -> dict[str, Any]:
    resumed = spec.resume
    args = [*spec.args, *(["--ckpt_path", "last"] if resumed else [])]
    command = child_command(args)
    attempt = {"attempt": len(record.get("history", [])) + 1, "started": time.time(), "resumed": resumed,
               "host": socket.gethostname()}
    if lock is not None:
        record.update(status="running", command=command, attempts=attempt["attempt"],
                      threads=spec.env.get("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS")),
                      executor=spec.executor)
        write_record(cell_dir, {**record, "history": [*record["history"], attempt]})
    returncode, usage, wall, error = _run_child(spec, cell_dir, command, lock)
    attempt.update(ended=time.time(), returncode=returncode, wall_s=round(wall, 3),
                   cpu_s=round(usage.ru_utime + usage.ru_stime, 3) if usage else None,
                   peak_rss_mb=round(usage.ru_maxrss / 1024, 1) if usage else None)
    if lock is None:
        return {"cell": spec.cell, "status": "task", "returncode": returncode}
    record["history"] = [*record["history"], attempt]
    run = result_run(cell_dir)
    status = "finished" if returncode == 0 and run is not None and (run / "genotype.json").is_file() else (
        "interrupted" if returncode in (130, 143, -signal.SIGTERM, -signal.SIGINT) else "failed")
    record.update(_totals(record["history"]), status=status, returncode=returncode,
                  run_dir=str(run.relative_to(cell_dir)) if run is not None else None)
    record.pop("error", None)
    if status != "finished":
        record["error"] = error or (f"exit status {returncode}, but no genotype.json was written (does the config "
                                    "list darts_pl.callbacks.GenotypeCheckpoint?)" if returncode == 0 else "")
    write_record(cell_dir, record)
    return record


def _totals(history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> float | None:
        values = [h[key] for h in history if h.get(key) is not None]
        return round(sum(values), 3) if values else None

    peaks = [h["peak_rss_mb"] for h in history if h.get("peak_rss_mb") is not None]
    return {"wall_s": total("wall_s"), "cpu_s": total("cpu_s"), "peak_rss_mb": max(peaks) if peaks else None}


def _run_child(spec: CellSpec, cell_dir: Path, command: list[str],
               lock: IO[bytes] | None) -> tuple[int, Any, float, str]:
    """Start the child, wait for it with ``os.wait4``; ``(returncode, rusage, wall seconds, last stderr line)``.

    ``ru_maxrss`` of a child counts its parent's peak before the ``exec`` too, so this must run in a small process
    (the cell's job, ``python -m darts_pl.study.cells``, or a submitit job), never in one that imported torch.
    """
    env = {**os.environ, **spec.env}
    log_path = cell_dir / CELL_LOG
    start = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(f"\n==> {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(command, cwd=spec.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, pass_fds=(lock.fileno(),) if lock else ())
        with _forward_signals(process):
            _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage, wall, _last_error(log_path) if process.returncode else ""


@contextlib.contextmanager
def _forward_signals(process: subprocess.Popen) -> Iterator[None]:
    """Pass SIGTERM/SIGINT on to the child as SIGTERM: it stops after its step, with intact checkpoints (in the
    main thread only, where handlers can be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _last_error(log_path: Path) -> str:
    """The last line of the child's output that says what went wrong (``darts-pl: error: ...``, the exception of
    a traceback), else its last line."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, log_path.stat().st_size - 20000))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith(("darts-pl: error:", "darts-pl: stopped")) or (
                ": " in line and line.split(":")[0].endswith(("Error", "Exception"))):
            return line[:400]
    return lines[-1][:400] if lines else ""


# ----------------------------------------------------------------------------------------- the cell's job process
def spec_to_json(spec: CellSpec) -> str:
    return json.dumps(dataclasses.asdict(spec))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m darts_pl.study.cells SPEC``: run one cell (SPEC: a :class:`CellSpec` as JSON, or ``-`` to read it
    from stdin) and print its record as JSON. The runner's local executor starts one such process per cell: a
    process of its own, small, so that ``os.wait4`` measures the ``darts-pl fit`` child alone."""
    argv = list(sys.argv[1:] if argv is None else argv)
    text = sys.stdin.read() if argv == ["-"] else Path(argv[0]).read_text()
    record = run_cell(CellSpec(**json.loads(text)))
    sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
