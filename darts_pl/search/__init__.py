"""Search spaces: supernets that own their architecture tensors. The parts a space is given live in
:mod:`darts_pl.parts`; they are also importable from here (``darts_pl.search.GumbelSoftmax`` in configs)."""
from darts_pl.parts import (
    ArgmaxPerEdge,
    AuxiliarySkip,
    Concrete,
    Derivation,
    Dirichlet,
    Edge,
    EdgeNormalization,
    EdgeWeights,
    GumbelSoftmax,
    JointTopK,
    MaxSkips,
    OpWrapper,
    PartialChannel,
    ReinMax,
    Relaxation,
    SampledOp,
    SeededNoise,
    Sigmoid,
    SkipDropout,
    Softmax,
    Threshold,
    TopK,
    WeightedSum,
)
from darts_pl.search.base import LossOutput, SearchSpace, check_primitives
from darts_pl.search.cnn import CNNSearchSpace
from darts_pl.search.mixed_op import MixedOp
from darts_pl.search.nb201 import NB201SearchCell, NB201SearchSpace
from darts_pl.search.rnn import RNNSearchSpace

__all__ = [
    "ArgmaxPerEdge", "AuxiliarySkip", "CNNSearchSpace", "Concrete", "Derivation", "Dirichlet", "Edge",
    "EdgeNormalization", "EdgeWeights", "GumbelSoftmax", "JointTopK", "LossOutput", "MaxSkips", "MixedOp",
    "NB201SearchCell", "NB201SearchSpace", "OpWrapper", "PartialChannel", "RNNSearchSpace", "ReinMax", "Relaxation",
    "SampledOp", "SearchSpace", "SeededNoise", "Sigmoid", "SkipDropout", "Softmax", "Threshold", "TopK", "WeightedSum",
    "check_primitives",
]
