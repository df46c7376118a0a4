"""Strategies: how the alpha gradient of one search step is computed; regularizers of the alpha loss; and
perturbations of the architecture for the weight step."""
from darts_pl.strategies.base import ArchStep, ArchStrategy
from darts_pl.strategies.first_order import FirstOrder
from darts_pl.strategies.perturbation import AdversarialPerturbation, ArchPerturbation, RandomPerturbation
from darts_pl.strategies.regularizers import ArchRegularizer, BetaDecay, DirichletKL, ZeroOneLoss
from darts_pl.strategies.second_order import SecondOrder

__all__ = [
    "AdversarialPerturbation", "ArchPerturbation", "ArchRegularizer", "ArchStep", "ArchStrategy", "BetaDecay",
    "DirichletKL", "FirstOrder", "RandomPerturbation", "SecondOrder", "ZeroOneLoss",
]
