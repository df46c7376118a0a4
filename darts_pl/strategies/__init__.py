"""Strategies: how the alpha gradient of one search step is computed."""
from darts_pl.strategies.base import ArchStep, ArchStrategy
from darts_pl.strategies.first_order import FirstOrder
from darts_pl.strategies.second_order import SecondOrder

__all__ = ["ArchStep", "ArchStrategy", "FirstOrder", "SecondOrder"]
