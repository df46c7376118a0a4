"""Moved to :mod:`darts_pl.parts.perturbation`; this name keeps earlier imports and configs working."""
from darts_pl.parts.perturbation import AdversarialPerturbation, ArchPerturbation, RandomPerturbation, clip_rows

__all__ = ["AdversarialPerturbation", "ArchPerturbation", "RandomPerturbation", "clip_rows"]
