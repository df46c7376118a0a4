"""Where the cells of a study run: processes on this machine, or jobs of an existing engine (submitit: SLURM job
arrays, or its local executor). Every executor runs the same function for a cell,
:func:`darts_pl.study.cells.run_cell`, in a small process of the cell's own; the runner only hands out cells and
collects their records.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from darts_pl.errors import ConfigurationError
from darts_pl.study.cells import CellSpec, run_cell, spec_to_json

DEFAULT_TIMEOUT_MIN = 3 * 24 * 60
"""submitit's own defaults (2 minutes locally, 5 on SLURM) would stop every real search; set ``timeout_min``."""


class Handle(Protocol):
    def done(self) -> bool: ...

    def result(self) -> dict[str, Any]: ...


class CellExecutor(Protocol):
    """Runs cells; ``limit`` is how many it takes at once."""

    limit: int

    def submit(self, specs: Sequence[CellSpec]) -> list[Handle]: ...

    def wait(self, handles: Sequence[Handle], timeout: float) -> list[Handle]: ...

    def stop(self) -> int: ...

    def shutdown(self) -> None: ...


def job_command() -> list[str]:
    """The process that runs one cell on this machine: ``python -m darts_pl.study.cells -`` (its spec on stdin)."""
    return [sys.executable, "-m", "darts_pl.study.cells", "-"]


class ProcessExecutor:
    """Cells on this machine, ``parallel`` at once: each in a small job process of its own (:func:`job_command`),
    which runs :func:`~darts_pl.study.cells.run_cell` as a submitit job would; a thread of the runner waits for each.

    Args:
        parallel: Cells at once.
    """

    def __init__(self, parallel: int) -> None:
        self.limit = parallel
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="cell")
        self.live: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def submit(self, specs: Sequence[CellSpec]) -> list[Handle]:
        return [_FutureHandle(self.pool.submit(self._job, spec)) for spec in specs]

    def _job(self, spec: CellSpec) -> dict[str, Any]:
        process = subprocess.Popen(job_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=spec.cwd,
                                   start_new_session=True, text=True)  # the terminal's ^C goes to the runner alone
        with self.lock:
            self.live[process.pid] = process
        try:
            out, _ = process.communicate(spec_to_json(spec))
        finally:
            with self.lock:
                self.live.pop(process.pid, None)
        lines = out.strip().splitlines()
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"the cell's job process ended with status {process.returncode} (see its stderr above)")
        return json.loads(lines[-1])

    def wait(self, handles: Sequence[Handle], timeout: float) -> list[Handle]:
        futures = {h.future: h for h in handles if isinstance(h, _FutureHandle)}
        done, _ = concurrent.futures.wait(futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return [futures[f] for f in done]

    def stop(self) -> int:
        """Ask every running cell to stop (its job passes SIGTERM on to ``darts-pl fit``); how many."""
        with self.lock:
            live = list(self.live.values())
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        return len(live)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


class _FutureHandle:
    def __init__(self, future: concurrent.futures.Future) -> None:
        self.future = future

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> dict[str, Any]:
        return self.future.result()


class SubmititExecutor:
    """One submitit job per cell: ``cluster="slurm"`` submits the cells as one SLURM job array, ``cluster="local"``
    runs the same jobs as processes on this machine, at most ``limit`` at once.

    Args:
        folder: submitit's folder of job files and logs.
        cluster: ``"slurm"`` or ``"local"``.
        parameters: ``AutoExecutor.update_parameters`` keywords (the study's ``slurm:``); ``timeout_min`` defaults
            to three days.
        limit: Jobs at once (the local executor; SLURM's own limit is ``slurm_array_parallelism``).
    """

    def __init__(self, folder: Path, cluster: str, parameters: Mapping[str, Any], limit: int) -> None:
        import submitit

        self.limit = limit
        self.cluster = cluster
        self.executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
        try:
            self.executor.update_parameters(**{"timeout_min": DEFAULT_TIMEOUT_MIN, "name": "darts-pl-study",
                                               **parameters})
        except (ValueError, TypeError, NameError) as err:
            raise ConfigurationError(f"slurm: {dict(parameters)} is refused by submitit ({str(err).splitlines()[0]}); "
                                     "use AutoExecutor.update_parameters' names (timeout_min, gpus_per_node, "
                                     "tasks_per_node, cpus_per_task, mem_gb, slurm_partition, ...).") from None

    def submit(self, specs: Sequence[CellSpec]) -> list[Handle]:
        if len(specs) > 1 and self.cluster == "slurm":
            with self.executor.batch():  # one job array
                jobs = [self.executor.submit(run_cell, spec) for spec in specs]
            return list(jobs)
        return [self.executor.submit(run_cell, spec) for spec in specs]

    def wait(self, handles: Sequence[Handle], timeout: float) -> list[Handle]:
        deadline = time.monotonic() + timeout
        while True:
            done = [h for h in handles if h.done()]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(1.0 if self.cluster == "local" else 15.0, max(0.0, deadline - time.monotonic())))

    def stop(self) -> int:
        """Jobs are left running (a cluster's jobs outlive the runner); a later run of the study collects them."""
        return 0

    def shutdown(self) -> None:
        pass


def make_executor(kind: str, root: Path, parallel: int, slurm: Mapping[str, Any], total: int) -> CellExecutor:
    """The executor of ``kind`` (``local``, ``submitit_local`` or ``slurm``)."""
    if kind == "local":
        return ProcessExecutor(parallel)
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigurationError(f"executor={kind!r} runs the cells through submitit, which is not installed; "
                                 "pip install submitit (or use executor: local).") from None
    cluster = "slurm" if kind == "slurm" else "local"
    return SubmititExecutor(root / ".submitit", cluster, slurm, max(total, 1) if cluster == "slurm" else parallel)
