"""Discrete networks built from a genotype, trained from scratch."""
from darts_pl.networks.cnn import (
    AuxiliaryHeadCIFAR,
    AuxiliaryHeadImageNet,
    Cell,
    NetworkCIFAR,
    NetworkImageNet,
    count_parameters,
)

__all__ = ["AuxiliaryHeadCIFAR", "AuxiliaryHeadImageNet", "Cell", "NetworkCIFAR", "NetworkImageNet", "count_parameters"]
from darts_pl.networks.rnn import DARTSCell, RNNModel

__all__ += ["DARTSCell", "RNNModel"]
from darts_pl.networks.nb201 import NB201Cell, NB201Network  # noqa: E402

__all__ += ["NB201Cell", "NB201Network"]
