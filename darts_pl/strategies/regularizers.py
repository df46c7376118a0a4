"""Moved to :mod:`darts_pl.parts.regularizers`; this name keeps earlier imports and configs working."""
from darts_pl.parts.regularizers import ArchRegularizer, BetaDecay, DirichletKL, ZeroOneLoss

__all__ = ["ArchRegularizer", "BetaDecay", "DirichletKL", "ZeroOneLoss"]
