"""Moved to :mod:`darts_pl.parts.schedules`; this name keeps earlier imports, configs and checkpoints working
(``class_path: darts_pl.schedules.LinearSchedule``)."""
from darts_pl.parts.schedules import CosineSchedule, ExponentialSchedule, LinearSchedule, Schedule

__all__ = ["CosineSchedule", "ExponentialSchedule", "LinearSchedule", "Schedule"]
