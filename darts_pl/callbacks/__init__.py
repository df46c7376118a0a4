"""Callbacks: watching and exporting the search."""
from darts_pl.callbacks.collapse import SkipConnectEarlyStop
from darts_pl.callbacks.drop_path import DropPathSchedule
from darts_pl.callbacks.genotype import GenotypeCheckpoint
from darts_pl.callbacks.monitor import ArchitectureMonitor

__all__ = ["GenotypeCheckpoint"]
__all__ += ["DropPathSchedule"]
__all__ += ["ArchitectureMonitor", "SkipConnectEarlyStop"]
from darts_pl.callbacks.benchmark import BenchmarkLookup  # noqa: E402

__all__ += ["BenchmarkLookup"]
from darts_pl.callbacks.curvature import CurvatureMonitor  # noqa: E402
from darts_pl.callbacks.darts_es import DartsAda, DartsEarlyStop  # noqa: E402

__all__ += ["CurvatureMonitor", "DartsAda", "DartsEarlyStop"]

from darts_pl.callbacks.warm_start import WarmStart  # noqa: E402

__all__ += ["WarmStart"]
