"""Op wrappers: parts that act on the output of some candidate ops of every edge, given to the search space
(``CNNSearchSpace(op_wrappers=[...])``).

P-DARTS's dropout on skip connections (Chen et al., 2019, Sec. 3.3) is one: :class:`SkipDropout`. A wrapper says
which ops it applies to (:meth:`OpWrapper.applies`: the op's name and the edge's stride) and is one instance for
the whole space, so one schedule moves it (target ``space.op_wrappers.<i>.<attribute>``; a wrapper is also reachable
by its :attr:`~OpWrapper.name`, ``space.skip_dropout.p``). Whether it draws noise is its own declaration
(:attr:`~darts_pl.parts.base.Part.draws_noise`), which the space aggregates.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F

from darts_pl.parts.base import PROBABILITY, Part, Range


class OpWrapper(Part):
    """Base class: ``forward(y)`` acts on the output ``y`` of every op it :meth:`applies` to.

    Attributes:
        name: The attribute of the space it is also reachable by (unique among a space's wrappers).
    """

    name: ClassVar[str] = "op_wrapper"

    def applies(self, op: str, stride: int) -> bool:
        raise NotImplementedError

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SkipDropout(OpWrapper):
    """P-DARTS's dropout on skip connections: elementwise dropout with rate ``p`` on the output of every stride-1
    ``skip_connect`` in training, so the parameter-free path cannot win the search by being the easiest to train;
    the identity in evaluation or at ``p = 0``. As in the authors' code, stride-2 skip connections (factorized
    reduce) have none. A schedule moves ``p`` (target ``space.skip_dropout.p``); a scheduled or non-zero rate makes
    the space stochastic (the unrolled second-order step is then refused).

    Args:
        p: The dropout rate, in [0, 1).
    """

    name: ClassVar[str] = "skip_dropout"
    tunable: ClassVar[Mapping[str, Range]] = {"p": PROBABILITY}

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.check(p=p)
        self.p = float(p)

    @property
    def draws_noise(self) -> bool:
        return self.p > 0 or "p" in self.scheduled

    def applies(self, op: str, stride: int) -> bool:
        return op == "skip_connect" and stride == 1

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        # Dropout after the op weight: p · dropout(op(x)) = dropout(p · op(x)), the same mask and values.
        return F.dropout(y, self.p, training=True) if self.training and self.p > 0 else y
