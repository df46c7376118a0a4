"""Search spaces: supernets that own their architecture parameters."""
from darts_pl.search.base import LossOutput, SearchSpace
from darts_pl.search.cnn import CNNSearchSpace

__all__ = ["CNNSearchSpace", "LossOutput", "SearchSpace"]
from darts_pl.search.rnn import RNNSearchSpace

__all__ += ["RNNSearchSpace"]
