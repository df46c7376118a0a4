"""The study runner: hands the unfinished cells of a grid to an executor, records the study in its root, and
refreshes the report as cells finish.

What it writes in the root: ``study.yaml`` (the effective study, runnable with ``--config``), ``study.json``
(``format``, ``hash``, the canonical grid, the config files' digests, W&B settings), ``study_log.jsonl`` (one line
per invocation: cells run, the runner's wall time, its children's, the report's), the cells' directories and the
report. A second runner on the same root is refused while the first holds ``.study.lock``.

Design: each cell is an ordinary ``darts-pl fit`` run; the runner adds ``--seed_everything``,
``--trainer.default_root_dir <cell>``, ``--ckpt_path last`` for a cell an earlier attempt started, a logger
``save_dir`` in the cell (W&B: also ``group`` = the study, ``job_type`` = the method) and, for loggers that leave no
scalars in the run directory (W&B, none), :class:`~darts_pl.study.EpochScalars`. Clusters are reached through
submitit, not through a scheduler of our own.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from darts_pl.atomic import atomic_write
from darts_pl.errors import ConfigurationError
from darts_pl.study import cells as cellfiles
from darts_pl.study.executors import CellExecutor, Handle, make_executor
from darts_pl.study.report import FILES, build_report, log_to_wandb
from darts_pl.study.spec import (
    FORMAT,
    RECORD,
    STUDY_COPY,
    CellKey,
    Study,
    config_files,
    differences,
    file_digest,
    study_hash,
    validate,
)

ROOT_LOCK = ".study.lock"
LOG = "study_log.jsonl"
RESERVED_NAMES = (FILES, "wandb", ".submitit")


def say(message: str) -> None:
    print(f"darts-pl-study: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- the root's record
@contextlib.contextmanager
def root_lock(root: Path) -> Iterator[IO[bytes]]:
    """Hold ``<root>/.study.lock`` for the runner's life; another runner there is refused in one line."""
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / ROOT_LOCK, "a+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(f"another darts-pl-study runs on {str(root)!r} ({cellfiles.holder_text(handle)}); "
                                     "wait for it to end, or give this study another root.") from None
        except OSError:
            pass
        handle.seek(0)
        handle.truncate()
        handle.write(cellfiles.owner_text().encode())
        handle.flush()
        yield handle
    finally:
        handle.close()


def wandb_settings(study: Study, digest: str) -> dict[str, Any] | None:
    """``project``, ``entity``, ``group`` and report run ``id`` when the cells log to W&B."""
    for key in study.cells():
        kind, init_args = cellfiles.logger_of(cellfiles.peek_config(key.fit_args(study)))
        if kind == "wandb":
            return {"project": init_args.get("project") or "lightning_logs", "entity": init_args.get("entity"),
                    "group": study.title, "id": f"study-{digest}"}
    return None


def check_record(root: Path, study: Study, text: str) -> dict[str, Any]:
    """Record the study in a new root, or check that ``root`` was started with this grid; the record."""
    grid, digest = study.grid(), study_hash(study.grid())
    path = root / RECORD
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except ValueError:
            raise ConfigurationError(f"{str(path)!r} is not valid JSON; restore it, or give the study a new root.") \
                from None
        if record.get("hash") != digest:
            changed = differences(record.get("grid", {}), grid)
            shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise ConfigurationError(
                f"the study differs from the one {str(root)!r} was started with ({str(root / STUDY_COPY)!r}): "
                f"{shown or 'its hash'}. Give the changed study a new root (root: in the file, or --root NEW), or "
                f"continue this one with --config {str(root / STUDY_COPY)!r}.")
        _warn_changed_files(record.get("files", {}))
        return record
    leftovers = [p.name for p in root.iterdir() if p.name != ROOT_LOCK] if root.is_dir() else []
    if leftovers:
        raise ConfigurationError(f"{str(root)!r} holds {leftovers[:3]} but no study record ({RECORD}); give the study "
                                 "a new or empty root.")
    record = {"format": FORMAT, "hash": digest, "grid": grid, "cwd": str(Path.cwd()),
              "files": {f: file_digest(f) for f in config_files(study)}, "wandb": wandb_settings(study, digest)}
    atomic_write(root / STUDY_COPY, text)
    atomic_write(path, json.dumps(record, indent=1) + "\n")
    return record


def _warn_changed_files(files: Mapping[str, str]) -> None:
    changed = [f for f, digest in files.items() if Path(f).is_file() and file_digest(f) != digest]
    if changed:
        say(f"warning: config files changed since the study started: {', '.join(changed)}; cells run from now on "
            "use the new contents (finished cells keep theirs).")


# ----------------------------------------------------------------------------------------- cells
def cell_spec(study: Study, key: CellKey, root: Path) -> cellfiles.CellSpec:
    """The spec of one cell: its arguments (the study's, then the runner's), threads and resume flag."""
    directory = root / key.relative_dir
    args = key.fit_args(study)
    config = cellfiles.peek_config(args)
    kind, _ = cellfiles.logger_of(config)
    if kind == "other":
        raise ConfigurationError(f"{key.label}: the cells' logger is {config['trainer']['logger']}; the study "
                                 "continues cells with --ckpt_path last, which needs a TensorBoard, CSV or W&B "
                                 "logger (or none).")
    args += ["--seed_everything", str(key.seed), "--trainer.default_root_dir", str(directory)]
    if kind in ("tensorboard", "csv", "wandb") and (config.get("trainer") or {}).get("logger") not in (None, True):
        args += ["--trainer.logger.init_args.save_dir", str(directory)]
    if kind == "wandb":
        args += ["--trainer.logger.init_args.group", study.title, "--trainer.logger.init_args.job_type",
                 key.method.name]
    if kind in ("wandb", "none"):
        args += [f"--trainer.callbacks+={cellfiles.EPOCH_SCALARS}"]
    parallel = study.parallel if study.executor != "slurm" else 1
    env = cellfiles.thread_env(parallel, cellfiles.processes_per_cell(config)) if study.executor != "slurm" else {}
    resume = bool(cellfiles.read_record(directory).get("history")) or bool(cellfiles.run_directories(directory))
    cell = {"method": key.method.name, "axes": key.axes, "seed": key.seed}
    return cellfiles.CellSpec(str(directory), args, cell, str(Path.cwd()), env, study.executor, resume)


class Runner:
    """Runs the unfinished cells of ``study`` and keeps the report current.

    Args:
        study: The validated study.
        text: The study as YAML, recorded as ``<root>/study.yaml``.
    """

    def __init__(self, study: Study, text: str) -> None:
        self.study = validate(study)
        for method in study.methods:
            if method.name in RESERVED_NAMES:
                raise ConfigurationError(f"methods[].name={method.name!r} is a name the study's root uses for itself "
                                         f"({', '.join(RESERVED_NAMES)}); rename the method.")
        self.text = text
        self.root = Path(study.root).absolute()
        self.cache: dict[Path, Any] = {}
        self.signal: int | None = None
        self.report_s = 0.0
        self.children_s = 0.0

    def run(self) -> int:
        """Run the study; the exit status (0: every cell finished, 1: some did not, 130/143: stopped)."""
        with root_lock(self.root):
            keys = list(self.study.cells())
            specs = {key.label: cell_spec(self.study, key, self.root) for key in keys}  # refuses before recording
            record = check_record(self.root, self.study, self.text)
            todo = [key for key in keys if not cellfiles.is_finished(self.root / key.relative_dir)]
            at_once = f", {self.study.parallel} at once" if self.study.parallel > 1 else ""
            say(f"{len(keys)} cells in {str(self.root)!r}: {len(keys) - len(todo)} finished, {len(todo)} to run "
                f"({self.study.executor}{at_once}).")
            start = time.perf_counter()
            self.refresh()
            outcomes = self._run_cells([specs[key.label] for key in todo]) if todo else {}
            report = self.refresh()
            wall = time.perf_counter() - start
            self._log(start, wall, len(todo))
            if record.get("wandb"):
                self._to_wandb(report, record["wandb"])
        return self._summary(outcomes, wall, len(todo))

    def _run_cells(self, specs: Sequence[cellfiles.CellSpec]) -> dict[str, str]:
        executor = make_executor(self.study.executor, self.root, self.study.parallel, self.study.slurm, len(specs))
        pending, running, outcomes = list(specs), {}, {}
        with self._signals(executor):
            try:
                while (pending and self.signal is None) or running:
                    free = executor.limit - len(running)
                    if pending and self.signal is None and free > 0:
                        batch, pending = pending[:free], pending[free:]
                        for spec in batch:
                            say(f"{spec.label}: started{' (continuing its run)' if spec.resume else ''}.")
                        running.update(zip(executor.submit(batch), batch))
                    for handle in executor.wait(list(running), timeout=1.0):
                        spec = running.pop(handle)
                        outcomes[spec.label] = self._collect(spec, handle)
                        self.refresh()
            finally:
                executor.shutdown()
        return outcomes

    def _collect(self, spec: cellfiles.CellSpec, handle: Handle) -> str:
        try:
            record = handle.result()
        except Exception as err:  # a job that died (submitit's FailedJobError, a cancelled job)
            say(f"{spec.label}: its job failed: {str(err).strip().splitlines()[-1] if str(err).strip() else err!r}")
            return "failed"
        status = record.get("status", "failed")
        attempt = (record.get("history") or [{}])[-1]
        log = Path(spec.directory) / cellfiles.CELL_LOG
        if record.get("already"):
            say(f"{spec.label}: finished already (by another job).")
            return status
        self.children_s += attempt.get("wall_s") or 0.0
        if status == "finished":
            say(f"{spec.label}: finished in {attempt['wall_s']:.1f} s, peak memory {attempt.get('peak_rss_mb')} MB.")
        elif status == "busy":
            say(f"{spec.label}: left alone: another process runs it ({record.get('holder')}); run the study again "
                "when it has ended.")
        else:
            say(f"{spec.label}: {status} (exit status {record.get('returncode')}): {record.get('error') or '-'} "
                f"(log: {log})")
        return status

    def refresh(self) -> Any:
        start = time.perf_counter()
        try:
            report = build_report(self.root, self.cache)
        except Exception as err:  # a report must not stop the cells
            say(f"warning: the report could not be built: {type(err).__name__}: {err}")
            report = None
        self.report_s += time.perf_counter() - start
        return report

    @contextlib.contextmanager
    def _signals(self, executor: CellExecutor) -> Iterator[None]:
        """SIGTERM/SIGINT: hand out no more cells; cells on this machine stop after their step (checkpoints
        intact); a cluster's jobs go on."""

        def handler(signum: int, frame: Any) -> None:
            if self.signal is None:
                stopped = executor.stop()
                say(f"stopping on {signal.Signals(signum).name}: {stopped} running cells asked to stop; run the "
                    "study again to continue the unfinished ones.")
            self.signal = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)

    def _log(self, start: float, wall: float, count: int) -> None:
        line = {"ended": time.time(), "executor": self.study.executor, "parallel": self.study.parallel,
                "cells_run": count, "runner_s": round(wall, 3), "children_s": round(self.children_s, 3),
                "report_s": round(self.report_s, 3)}
        with open(self.root / LOG, "a") as handle:
            handle.write(json.dumps(line) + "\n")

    def _to_wandb(self, report: Any, settings: Mapping[str, Any]) -> None:
        if report is None:
            return
        try:
            log_to_wandb(self.root, report, settings)
        except Exception as err:  # the report on disk is the result; W&B is a copy
            say(f"warning: the report's tables did not reach W&B: {type(err).__name__}: {err}")

    def _summary(self, outcomes: Mapping[str, str], wall: float, count: int) -> int:
        unfinished = {label: s for label, s in outcomes.items() if s != "finished"}
        if count and self.study.parallel == 1 and self.study.executor == "local":
            say(f"{count} cells in {wall:.1f} s: their runs {self.children_s:.1f} s, the runner's own "
                f"{(wall - self.children_s) / count:.2f} s per cell (report {self.report_s:.1f} s in all).")
        elif count:
            say(f"{count} cells in {wall:.1f} s (their runs {self.children_s:.1f} s in all).")
        say(f"report: {self.root / 'report.md'}")
        if self.signal is not None:
            return 128 + self.signal
        if unfinished:
            say(f"{len(unfinished)} cells did not finish: {', '.join(unfinished)}; run the study again to continue "
                "them.")
            return 1
        return 0
