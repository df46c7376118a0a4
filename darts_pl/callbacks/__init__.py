"""Callbacks: watching and exporting the search."""
from darts_pl.callbacks.genotype import GenotypeCheckpoint

__all__ = ["GenotypeCheckpoint"]
