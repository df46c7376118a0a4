"""Strategies: how the alpha gradient of one search step is computed. (The regularizers of the alpha loss and
the perturbations of the weight step are parts, :mod:`darts_pl.parts`; their names here keep configs working.)"""
from darts_pl.parts.perturbation import AdversarialPerturbation, ArchPerturbation, RandomPerturbation
from darts_pl.parts.regularizers import ArchRegularizer, BetaDecay, DirichletKL, ZeroOneLoss
from darts_pl.strategies.base import ArchStep, ArchStrategy
from darts_pl.strategies.first_order import FirstOrder
from darts_pl.strategies.second_order import SecondOrder

__all__ = [
    "AdversarialPerturbation", "ArchPerturbation", "ArchRegularizer", "ArchStep", "ArchStrategy", "BetaDecay",
    "DirichletKL", "FirstOrder", "RandomPerturbation", "SecondOrder", "ZeroOneLoss",
]
