"""Studies: search methods compared over seeds (and any further axes), each cell an ordinary ``darts-pl fit`` run,
with a report rebuilt from the run directories (``darts-pl-study``; :mod:`darts_pl.study.cli`)."""
from __future__ import annotations

from typing import Any

__all__ = ["Axis", "AxisValue", "EpochScalars", "Method", "Study", "build_report", "run_cell"]


def __getattr__(name: str) -> Any:
    # Lazy: the runner imports no training code; a cell's `--trainer.callbacks+=darts_pl.study.EpochScalars` does.
    if name == "EpochScalars":
        from darts_pl.study.epoch_scalars import EpochScalars

        return EpochScalars
    if name in ("Axis", "AxisValue", "Method", "Study"):
        from darts_pl.study import spec

        return getattr(spec, name)
    if name == "build_report":
        from darts_pl.study.report import build_report

        return build_report
    if name == "run_cell":
        from darts_pl.study.cells import run_cell

        return run_cell
    raise AttributeError(f"module 'darts_pl.study' has no attribute {name!r}")
