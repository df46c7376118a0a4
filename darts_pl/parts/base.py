"""What every part of a search is: one base class, :class:`Part`, with its own state, its own valid ranges and one
way to print itself; and :class:`SeededNoise`, the generator any stochastic part draws from.

The loop of DARTS stays one; methods differ in the parts it is given (relaxation, edge, derivation, op wrappers, edge
normalisation of the search space; regularizers, perturbation and schedules of the loop). A part is an ``nn.Module``
(it may own buffers and submodules, and moves with the model), and everything about it that a resumed run needs
(a temperature a schedule moved, a generator's state) travels in the model's ``state_dict`` as the part's extra
state: :meth:`Part.part_state` / :meth:`Part.load_part_state`. A checkpoint therefore restores every part the same
way, and ``load_from_checkpoint`` restores them too. The attributes a :class:`~darts_pl.parts.schedules.Schedule`
may move are declared with their valid range (:attr:`Part.tunable`), so a schedule is checked before the fit
starts, and a value outside the range is refused in one line (``ConfigurationError``).
"""
from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError


@dataclass(frozen=True)
class Range:
    """The valid values of a number: ``low``/``high`` bounds (``None``: unbounded), each open or closed.

    Example::

        Range(0, math.inf, low_open=True)   # > 0
        Range(0, 1, high_open=True)          # in [0, 1)
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low == -math.inf:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Range(0.0, math.inf, low_open=True)
NON_NEGATIVE = Range(0.0, math.inf)
PROBABILITY = Range(0.0, 1.0, high_open=True)
UNIT_OPEN = Range(0.0, 1.0, low_open=True, high_open=True)


class Part(nn.Module):
    """Base class of every part of a search (relaxations, edges, derivations, op wrappers, edge normalisation,
    regularizers, perturbations, schedules).

    Subclasses call ``super().__init__()`` first and keep each constructor argument as an attribute of the same name
    (that is what ``repr`` prints). Class attributes:

    Attributes:
        tunable: The attributes a schedule may move, with their valid range; they are the part's state by default
            (a resumed run gets the values the interrupted one had) and are checked in :meth:`check`.
        stochastic: Whether the part's forward draws noise (refused with an unrolled second-order step, whose
            finite difference compares passes that would each draw another sample). :attr:`draws_noise` is what
            callers read; parts whose noise depends on a setting (a dropout rate) override it.
    """

    tunable: ClassVar[Mapping[str, Range]] = {}
    stochastic: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.scheduled: set[str] = set()

    # ------------------------------------------------------------------ values
    def check(self, **values: float) -> None:
        """Raise ``ConfigurationError`` naming the part, the setting and its range when a value is outside it."""
        for name, value in values.items():
            valid = self.tunable.get(name)
            if valid is not None and not valid.contains(value):
                raise ConfigurationError(f"{type(self).__name__}: {name}={value!r} is out of range; it must be "
                                         f"{valid}.")

    def set_tunable(self, name: str, value: float) -> None:
        """Check ``value`` and set it (what a schedule calls)."""
        self.check(**{name: value})
        setattr(self, name, value)

    def mark_scheduled(self, name: str) -> None:
        """A schedule moves ``name`` (a part whose noise depends on it then declares noise)."""
        self.scheduled.add(name)

    @property
    def draws_noise(self) -> bool:
        """Whether a forward of this part draws noise now or, moved by a schedule, may later."""
        return self.stochastic

    # ------------------------------------------------------------------ state
    def part_state(self) -> dict[str, Any]:
        """What a resumed run needs of this part beyond its tensors: its tunable values by default."""
        return {name: getattr(self, name) for name in self.tunable}

    def load_part_state(self, state: Mapping[str, Any]) -> None:
        for name, value in state.items():
            if name in self.tunable:
                setattr(self, name, value)

    def get_extra_state(self) -> dict[str, Any]:
        return self.part_state()

    def set_extra_state(self, state: Any) -> None:
        self.load_part_state(state or {})

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        shown = [(name, getattr(self, name)) for name in names if hasattr(self, name)]
        return ", ".join(f"{name}={value!r}" for name, value in shown
                         if not isinstance(value, nn.Module) and not inspect.ismethod(value))


class SeededNoise(nn.Module):
    """The noise generator of a stochastic part: seeded identically on every rank, saved with the model.

    Under DDP every rank draws the same sample at every forward (so ranks run the same ops and their averaged
    gradients belong to one sample), and the generator's state is in every checkpoint (the module's extra state),
    so a resumed run draws what the uninterrupted run would have drawn. Evaluation draws from a second generator,
    restarted each time the model goes into eval mode, so the search's sample stream does not depend on how many
    validation passes ran. Draw inside :meth:`drawing`, on the CPU (every device then gives the same numbers)::

        with self.noise.drawing():
            g = torch.empty(shape).exponential_()

    Args:
        seed: Seed of the generator (the same on every rank).
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.eval_generator = torch.Generator().manual_seed(seed)

    def train(self, mode: bool = True) -> SeededNoise:
        if self.training and not mode:
            self.eval_generator.manual_seed(self.seed)
        return super().train(mode)

    @contextlib.contextmanager
    def drawing(self) -> Iterator[None]:
        """Inside the block, the global CPU generator is this one (``torch.distributions`` samples from the
        global generator); outside, the global generator is as it was."""
        generator = self.generator if self.training else self.eval_generator
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(generator.get_state())
            yield
            generator.set_state(torch.get_rng_state())

    def get_extra_state(self) -> dict[str, Any]:
        return {"seed": self.seed, "generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.generator.set_state(state["generator"])

    def __getstate__(self) -> dict[str, Any]:
        # A torch.Generator does not survive torch.multiprocessing's shared-memory pickling (DDP spawn):
        # send its state as bytes.
        state = dict(self.__dict__)
        for name in ("generator", "eval_generator"):
            state[name] = bytes(state[name].get_state().numpy())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in ("generator", "eval_generator"):
            generator = torch.Generator()
            generator.set_state(torch.frombuffer(bytearray(state[name]), dtype=torch.uint8))
            state[name] = generator
        self.__dict__.update(state)

    def extra_repr(self) -> str:
        return f"seed={self.seed}"
