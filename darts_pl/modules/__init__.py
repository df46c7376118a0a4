"""LightningModules: the bilevel search loop and trainers of derived networks."""
from darts_pl.modules.search import LitSearch

__all__ = ["LitSearch"]
