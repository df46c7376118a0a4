"""Search spaces: supernets that own their architecture tensors, and the parts a space is given
(relaxation, edge, derivation)."""
from darts_pl.search.base import LossOutput, SearchSpace
from darts_pl.search.cnn import CNNSearchSpace
from darts_pl.search.derivation import Derivation, JointTopK, Threshold, TopK
from darts_pl.search.edges import AuxiliarySkip, Edge, MixedOp, SampledOp, WeightedSum
from darts_pl.search.relaxation import Dirichlet, EdgeWeights, GumbelSoftmax, Relaxation, Sigmoid, Softmax
from darts_pl.search.rnn import RNNSearchSpace

__all__ = [
    "AuxiliarySkip", "CNNSearchSpace", "Derivation", "Dirichlet", "Edge", "EdgeWeights", "GumbelSoftmax",
    "JointTopK", "LossOutput", "MixedOp", "RNNSearchSpace", "Relaxation", "SampledOp", "SearchSpace", "Sigmoid",
    "Softmax", "Threshold", "TopK", "WeightedSum",
]
