"""LightningModules: the bilevel search loop and trainers of derived networks."""
from darts_pl.modules.search import LitSearch
from darts_pl.modules.train import LitClassifier

__all__ = ["LitSearch"]
__all__ += ["LitClassifier"]
from darts_pl.modules.language_model import LitLanguageModel  # noqa: E402

__all__ += ["LitLanguageModel"]
