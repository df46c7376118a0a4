"""Search spaces: supernets that own their architecture tensors, and the parts a space is given
(relaxation, edge, derivation)."""
from darts_pl.search.base import LossOutput, SearchSpace
from darts_pl.search.cnn import CNNSearchSpace
from darts_pl.search.derivation import Derivation, JointTopK, MaxSkips, Threshold, TopK
from darts_pl.search.edges import AuxiliarySkip, Edge, MixedOp, PartialChannel, SampledOp, SkipDropout, WeightedSum
from darts_pl.search.nb201 import ArgmaxPerEdge, NB201SearchCell, NB201SearchSpace
from darts_pl.search.relaxation import Dirichlet, EdgeWeights, GumbelSoftmax, Relaxation, Sigmoid, Softmax
from darts_pl.search.rnn import RNNSearchSpace

__all__ = [
    "AuxiliarySkip", "CNNSearchSpace", "Derivation", "Dirichlet", "Edge", "EdgeWeights", "GumbelSoftmax", "JointTopK",
    "LossOutput", "MaxSkips", "MixedOp", "PartialChannel", "RNNSearchSpace", "Relaxation", "SampledOp", "SearchSpace",
    "Sigmoid", "SkipDropout", "Softmax", "Threshold", "TopK", "WeightedSum",
]
__all__ += ["ArgmaxPerEdge", "NB201SearchCell", "NB201SearchSpace"]
