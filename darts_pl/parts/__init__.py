"""The parts of a search: what the one bilevel loop is given, each a :class:`~darts_pl.parts.base.Part` with its own
state, valid ranges and printing.

Given to the search space: a ``Relaxation`` (architecture tensor → edge weights and probabilities), an ``Edge`` (how
an edge combines its ops), a ``Derivation`` (probabilities → genotype), ``OpWrapper``\\ s (acting on some ops'
outputs) and an ``EdgeNormalization``. Given to the loop (``LitSearch``): ``ArchRegularizer``\\ s (terms of the alpha
loss), an ``ArchPerturbation`` (the edge weights the weight step trains at), ``WeightStepTerm``\\ s (added to the weight
step's gradient) and ``Schedule``\\ s (values moved over the epochs). ``SeededNoise`` is the generator a stochastic
part draws from (the same draw on every rank, resumable).
"""
from darts_pl.parts.base import NON_NEGATIVE, POSITIVE, PROBABILITY, UNIT_OPEN, Part, Range, SeededNoise
from darts_pl.parts.cost import CostRegularizer
from darts_pl.parts.derivation import ArgmaxPerEdge, Derivation, JointTopK, MaxSkips, Threshold, TopK
from darts_pl.parts.edge_normalization import EdgeNormalization
from darts_pl.parts.edges import AuxiliarySkip, Edge, PartialChannel, SampledOp, WeightedSum, channel_shuffle
from darts_pl.parts.op_wrappers import OpWrapper, SkipDropout
from darts_pl.parts.perturbation import AdversarialPerturbation, ArchPerturbation, RandomPerturbation, clip_rows
from darts_pl.parts.regularizers import ArchRegularizer, BetaDecay, DirichletKL, ZeroOneLoss
from darts_pl.parts.relaxation import Dirichlet, EdgeWeights, GumbelSoftmax, Relaxation, Sigmoid, Softmax
from darts_pl.parts.resource import ResourceConstraint
from darts_pl.parts.samplers import Concrete, ReinMax
from darts_pl.parts.schedules import CosineSchedule, ExponentialSchedule, LinearSchedule, Schedule
from darts_pl.parts.weight_terms import CellGradientAlignment, WeightStepTerm

__all__ = [
    "NON_NEGATIVE", "POSITIVE", "PROBABILITY", "UNIT_OPEN", "AdversarialPerturbation", "ArchPerturbation",
    "ArchRegularizer", "ArgmaxPerEdge", "AuxiliarySkip", "BetaDecay", "CellGradientAlignment", "Concrete",
    "CosineSchedule", "CostRegularizer", "Derivation", "Dirichlet", "DirichletKL", "Edge", "EdgeNormalization",
    "EdgeWeights", "ExponentialSchedule", "GumbelSoftmax", "JointTopK", "LinearSchedule", "MaxSkips", "OpWrapper",
    "Part", "PartialChannel", "RandomPerturbation", "Range", "ReinMax", "Relaxation", "ResourceConstraint", "SampledOp",
    "Schedule", "SeededNoise", "Sigmoid", "SkipDropout", "Softmax", "Threshold", "TopK", "WeightStepTerm",
    "WeightedSum", "ZeroOneLoss", "channel_shuffle", "clip_rows",
]
