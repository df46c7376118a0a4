"""Progressive searches as declared lists of stages, run by ``darts-pl-progressive`` (:mod:`darts_pl.progressive`).

A method that searches in stages is a :class:`Recipe`: from its options it declares its :class:`Stage`\\ s, each one
``darts-pl fit`` run of its own with

* ``overrides``: the config keys the stage sets (the space's depth and width, its edge, the warm-up, schedules...);
* ``pruning``: how the op sets the next stage searches are read off this stage's result (a :class:`Pruning`), and
  how the next stage's space takes them;
* ``warm_start``: whether the stage starts from the previous stage's end (:class:`WarmStartFrom`: the previous
  run's last checkpoint, widened) or afresh (``None``).

Two recipes: :class:`PDARTS` (Chen et al., "Progressive Differentiable Architecture Search", ICCV 2019; the authors'
``train_search.py``, chenxin061/pdarts): 5 / 11 / 17 cells on 8 / 5 / 3 ops per edge, pruned by the final
probabilities, every stage afresh, skip-connection dropout, at most 2 skips in the final normal cell. :class:`DrNAS`
(Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021, Sec. 3.3; the authors'
``DARTS-space/train_search.py``, xiangning-chen/DrNAS): partial channels K = 6 then 4 on one 20-cell, 36-channel
supernet, 7 then 4 ops per edge pruned by the alphas, stage 2 widened from stage 1 with alphas, optimizers and
learning-rate schedule carried over.
"""
from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from darts_pl.checkpoints import newest_checkpoint
from darts_pl.errors import ConfigurationError

CELLS = ("normal", "reduce")


# ----------------------------------------------------------------------------------------------- pruning
def prune_edge_primitives(probs: Sequence[Sequence[float]], edge_primitives: Sequence[Sequence[str]],
                          primitives: Sequence[str], keep: int) -> list[list[str]]:
    """The ``keep`` ops of every edge with the highest probabilities, in their order on the edge.

    Ranks every op of the edge, ``none`` included, and drops the lowest first (ties: the earlier op on the edge
    goes first), as the authors' ``get_min_k`` does between stages.

    Args:
        probs: One cell type's final probabilities, ``(edges, len(primitives))`` (``space.edge_probs()``).
        edge_primitives: The ops each edge had in the stage, one row per edge.
        primitives: The column names of ``probs``.
        keep: How many ops each edge keeps.
    """
    if len(probs) != len(edge_primitives):
        raise ConfigurationError(f"prune_edge_primitives: {len(probs)} rows of probabilities for "
                                 f"{len(edge_primitives)} edges.")
    pruned = []
    for e, row in enumerate(edge_primitives):
        _check_keep(keep, e, row)
        values = [float(probs[e][list(primitives).index(op)]) for op in row]
        dropped = set(sorted(range(len(row)), key=lambda j: (values[j], j))[:len(row) - keep])
        pruned.append([op for j, op in enumerate(row) if j not in dropped])
    return pruned


def top_alphas(alphas: torch.Tensor, edge_primitives: Sequence[Sequence[str]], primitives: Sequence[str],
               keep: int) -> list[list[str]]:
    """The ``keep`` ops of every edge with the highest alphas, in the order of ``primitives`` (DrNAS's ``prune``).

    The authors rank the raw alphas of each edge with ``torch.topk`` (the ranking of the Dirichlet mean
    ``(elu(alpha) + 1) / sum``, and of the softmax: both grow with alpha, but in float32 they can tie where the alphas
    differ). An op the edge no longer has is lowered by 1e6 first, as their mask does, so it never comes back. Ties
    go as ``torch.topk`` on the CPU sends them (in float32, the alphas' own precision); the authors ranked on a GPU.

    Args:
        alphas: One cell type's alphas, ``(edges, len(primitives))`` or, with one column per op of each edge,
            ``(edges, len(edge_primitives[e]))``.
        edge_primitives: The ops each edge had in the stage.
        primitives: The space's op names.
        keep: How many ops each edge keeps.
    """
    alphas = alphas.detach().float().cpu()
    full = torch.zeros(len(edge_primitives), len(primitives))  # (edges, len(primitives))
    for e, row in enumerate(edge_primitives):
        _check_keep(keep, e, row)
        for j, name in enumerate(primitives):
            value = alphas[e, j] if alphas.shape[1] == len(primitives) else (
                alphas[e, list(row).index(name)] if name in row else torch.tensor(0.0))
            full[e, j] = value if name in row else value - 1e6
    kept = full.topk(keep, dim=-1).indices.tolist()  # (edges, keep)
    return [[name for j, name in enumerate(primitives) if j in set(row)] for row in kept]


def _check_keep(keep: int, e: int, row: Sequence[str]) -> None:
    if not 1 <= keep <= len(row):
        raise ConfigurationError(f"prune_edge_primitives: keep={keep} ops, but edge {e} has {len(row)} "
                                 f"({list(row)}); keep between 1 and {len(row)}.")


class Pruning(ABC):
    """How the next stage's op sets are read off a finished stage, and how the next stage's space takes them.

    Args:
        keep: Ops each edge keeps.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep

    @abstractmethod
    def prune(self, run: Path, probs: Mapping[str, list[list[float]]], searched: Mapping[str, list[list[str]]],
              primitives: Sequence[str]) -> dict[str, list[list[str]]]:
        """The op sets of every cell type's edges for the next stage.

        Args:
            run: The stage's run directory.
            probs: Its final probabilities per cell type, ``(edges, len(primitives))``.
            searched: The op sets it searched.
            primitives: The space's op names.
        """

    @abstractmethod
    def space(self, pruned: Mapping[str, list[list[str]]]) -> dict[str, Any]:
        """The next stage's space arguments that give it the op sets."""


class TopProbabilities(Pruning):
    """P-DARTS: the ops with the highest final probabilities (:func:`prune_edge_primitives`); the next stage's
    alphas have one column per op kept, started afresh."""

    def prune(self, run: Path, probs: Mapping[str, list[list[float]]], searched: Mapping[str, list[list[str]]],
              primitives: Sequence[str]) -> dict[str, list[list[str]]]:
        return {cell: prune_edge_primitives(probs[cell], searched[cell], primitives, self.keep) for cell in CELLS}

    def space(self, pruned: Mapping[str, list[list[str]]]) -> dict[str, Any]:
        return {"edge_primitives": {cell: [list(row) for row in rows] for cell, rows in pruned.items()}}


class TopAlphas(Pruning):
    """DrNAS: the ops with the highest alphas in the stage's last checkpoint (:func:`top_alphas`); the next stage
    keeps one alpha column per op of the space and masks the ops dropped (``alpha_columns: primitives``)."""

    def prune(self, run: Path, probs: Mapping[str, list[list[float]]], searched: Mapping[str, list[list[str]]],
              primitives: Sequence[str]) -> dict[str, list[list[str]]]:
        state = torch.load(last_checkpoint(run), map_location="cpu", weights_only=False, mmap=True)["state_dict"]
        return {cell: top_alphas(state[f"space.arch.{cell}"], searched[cell], primitives, self.keep) for cell in CELLS}

    def space(self, pruned: Mapping[str, list[list[str]]]) -> dict[str, Any]:
        return {"edge_primitives": {cell: [list(row) for row in rows] for cell, rows in pruned.items()},
                "alpha_columns": "primitives"}


def last_checkpoint(run: Path) -> Path:
    """The newest intact checkpoint of a finished stage's run (one line if there is none)."""
    ckpt, _ = newest_checkpoint(run / "checkpoints")
    if ckpt is None:
        raise ConfigurationError(f"{str(run)!r} holds no intact checkpoint; the next stage starts from it: keep a "
                                 "ModelCheckpoint with save_last in the stage configs, or remove the stage directory "
                                 "to run that stage again.")
    return ckpt


@dataclass(frozen=True)
class WarmStartFrom:
    """The stage starts where the previous one ended: ``darts_pl.callbacks.WarmStart`` on the previous stage's last
    checkpoint (weights widened with picks seeded ``seed``, alphas, optimizers and scheduler carried over)."""

    seed: int = 0

    def callback(self, checkpoint: str) -> dict[str, Any]:
        return {"class_path": "darts_pl.callbacks.WarmStart",
                "init_args": {"checkpoint": checkpoint, "seed": self.seed}}


@dataclass(frozen=True)
class Stage:
    """One stage of a progressive search: one ``darts-pl fit`` run.

    Args:
        overrides: The config keys the stage sets (over everything given on the command line).
        label: How the driver announces the stage.
        record: What ``stages.json`` records of the stage's settings.
        pruning: How the next stage's op sets are read off this one (``None``: the last stage).
        warm_start: Whether the stage starts from the previous one's end (``None``: afresh).
    """

    overrides: Mapping[str, Any]
    label: str
    record: Mapping[str, Any] = field(default_factory=dict)
    pruning: Pruning | None = None
    warm_start: WarmStartFrom | None = None


# ----------------------------------------------------------------------------------------------- recipes
class Recipe(ABC):
    """A method's stages, from the driver's options.

    Attributes:
        name: What ``--recipe`` (or the config's ``model.init_args.method``) names it.
        owned: ``darts-pl fit`` options the stages set, refused on the command line.
    """

    name: ClassVar[str]
    owned: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The recipe's own options (defaults: the authors' CIFAR-10 search)."""

    @abstractmethod
    def settings(self, options: argparse.Namespace) -> dict[str, Any]:
        """The checked options, as ``stages.json`` records them (a continued search must have the same)."""

    @abstractmethod
    def stages(self, settings: Mapping[str, Any]) -> list[Stage]:
        """The stages, in order."""

    def check(self, settings: Mapping[str, Any], config: Any) -> None:  # noqa: B027 (a hook: nothing by default)
        """Refuse, before any stage runs, a config the stages cannot run with (``config``: the resolved
        ``darts-pl fit`` config of the arguments given)."""

    @staticmethod
    def _model(overrides: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any]:
        return {"model": {"init_args": {**overrides, "space": {"init_args": dict(space)}}}}


class PDARTS(Recipe):
    """P-DARTS (module docstring): deeper supernets on fewer ops per edge, each stage afresh."""

    name = "pdarts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--num_cells", type=int, nargs="+", default=[5, 11, 17],
                            help="cells of each stage's supernet (default: %(default)s; authors: 5 + add_layers 0 6 "
                                 "12)")
        parser.add_argument("--keep_ops", type=int, nargs="*", default=[5, 3],
                            help="ops each edge keeps for stages 2, 3, ... (default: %(default)s: 8 -> 5 -> 3 ops)")
        parser.add_argument("--skip_dropout", type=float, nargs="+", default=[0.1, 0.4, 0.7],
                            help="skip-connection dropout rate of each stage (default: %(default)s, the authors' "
                                 "command; the paper says 0.0 0.4 0.7 on CIFAR-10)")
        parser.add_argument("--skip_dropout_decay", type=float, default=0.2,
                            help="exponential decay per epoch of the rate after the warm-up (default: %(default)s)")
        parser.add_argument("--warmup_epochs", type=int, default=10,
                            help="epochs of weight steps only at the start of each stage (default: %(default)s)")
        parser.add_argument("--max_skips", type=int, default=2,
                            help="most skip connections in the final normal cell, M; -1: no limit (default: "
                                 "%(default)s)")

    def settings(self, options: argparse.Namespace) -> dict[str, Any]:
        stages = len(options.num_cells)
        if len(options.skip_dropout) != stages or len(options.keep_ops) != stages - 1:
            raise ConfigurationError(
                f"--num_cells has {stages} stages: give --skip_dropout {stages} rates and --keep_ops {stages - 1} "
                f"counts (ops kept for stages 2..{stages}); got --skip_dropout {options.skip_dropout}, --keep_ops "
                f"{options.keep_ops}.")
        if any(n < 3 for n in options.num_cells):
            raise ConfigurationError(f"--num_cells {options.num_cells}: every stage needs >= 3 cells (two "
                                     "reductions).")
        _check_keep_ops(options.keep_ops)
        if any(not 0.0 <= p < 1.0 for p in options.skip_dropout):
            raise ConfigurationError(f"--skip_dropout {options.skip_dropout}: rates must be in [0, 1).")
        _check_warmup(options.warmup_epochs)
        return {"num_cells": list(options.num_cells), "keep_ops": list(options.keep_ops),
                "skip_dropout": list(options.skip_dropout), "skip_dropout_decay": options.skip_dropout_decay,
                "warmup_epochs": options.warmup_epochs, "max_skips": options.max_skips}

    def stages(self, settings: Mapping[str, Any]) -> list[Stage]:
        count = len(settings["num_cells"])
        return [Stage(self.overrides(settings, i), label=f"{settings['num_cells'][i]} cells, skip dropout "
                      f"{settings['skip_dropout'][i]}",
                      record={"num_cells": settings["num_cells"][i], "skip_dropout": settings["skip_dropout"][i]},
                      pruning=TopProbabilities(settings["keep_ops"][i]) if i < count - 1 else None)
                for i in range(count)]

    def overrides(self, settings: Mapping[str, Any], stage: int) -> dict[str, Any]:
        """The keys stage ``stage`` (0-based) sets: the space's depth and skip dropout (and, in the last stage, the
        derivation), the warm-up and the dropout's schedule."""
        rate = settings["skip_dropout"][stage]
        space: dict[str, Any] = {"num_cells": settings["num_cells"][stage], "skip_dropout": rate}
        if stage == len(settings["num_cells"]) - 1 and settings["max_skips"] >= 0:
            space["derivation"] = {"class_path": "darts_pl.search.MaxSkips",
                                   "init_args": {"max_skips": settings["max_skips"], "cells": ["normal"]}}
        schedule = {"class_path": "darts_pl.parts.ExponentialSchedule",
                    "init_args": {"target": "space.skip_dropout.p", "start": rate,
                                  "decay": settings["skip_dropout_decay"], "warmup_epochs": settings["warmup_epochs"]}}
        return self._model({"warmup_epochs": settings["warmup_epochs"], "schedules": [schedule]}, space)


class DrNAS(Recipe):
    """DrNAS's progressive learning (module docstring; the authors' defaults: ``ks = [6, 4]``, ``num_keeps = [7,
    4]``, ``train_epochs = [25, 25]``, ``--init_channels 36 --layers 20``, ``epoch >= 10`` before alpha steps in each
    stage, one ``CosineAnnealingLR`` over the 50 epochs).

    Every stage runs the config's DrNAS search (``configs/variants/drnas.yaml``: the Dirichlet relaxation, its KL
    term, the optimizers) with the stage's partial channels (``PartialChannel(k)``), on the recipe's supernet. After
    a stage, each edge keeps the ``keep_ops`` ops with the highest alphas (:class:`TopAlphas`), and the next stage
    starts from the previous one's last checkpoint, widened (:class:`WarmStartFrom`,
    ``darts_pl.callbacks.WarmStart``).
    """

    name = "drnas"
    owned = ("--trainer.max_epochs",)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--partial_channels", type=int, nargs="+", default=[6, 4],
                            help="partial-channel K of each stage (default: %(default)s; authors: ks)")
        parser.add_argument("--keep_ops", type=int, nargs="*", default=[4],
                            help="ops each edge keeps for stages 2, 3, ... (default: %(default)s: 7 -> 4 ops; authors: "
                                 "num_keeps 7 4)")
        parser.add_argument("--stage_epochs", type=int, nargs="+", default=[25, 25],
                            help="epochs of each stage; the weight learning rate follows one cosine over their sum "
                                 "(default: %(default)s; authors: train_epochs)")
        parser.add_argument("--warmup_epochs", type=int, default=10,
                            help="epochs of weight steps only at the start of each stage (default: %(default)s)")
        parser.add_argument("--channels", type=int, default=36,
                            help="initial channels of the supernet (default: %(default)s; authors: --init_channels)")
        parser.add_argument("--num_cells", type=int, default=20,
                            help="cells of the supernet (default: %(default)s; authors: --layers)")
        parser.add_argument("--widen_seed", type=int, default=0,
                            help="seed of the channel picks that widen the ops between stages (default: %(default)s)")

    def settings(self, options: argparse.Namespace) -> dict[str, Any]:
        stages = len(options.partial_channels)
        if len(options.stage_epochs) != stages or len(options.keep_ops) != stages - 1:
            raise ConfigurationError(
                f"--partial_channels has {stages} stages: give --stage_epochs {stages} counts and --keep_ops "
                f"{stages - 1} (ops kept for stages 2..{stages}); got --stage_epochs {options.stage_epochs}, "
                f"--keep_ops {options.keep_ops}.")
        ks = list(options.partial_channels)
        if any(k < 1 for k in ks) or ks != sorted(ks, reverse=True):
            raise ConfigurationError(f"--partial_channels {ks}: K must be >= 1 and must not grow (each stage widens "
                                     "the ops of the previous one; the authors use 6 4).")
        bad = [k for k in ks if options.channels % k]
        if bad:
            raise ConfigurationError(f"--channels {options.channels} is not a multiple of K={bad[0]} of "
                                     f"--partial_channels {ks}; use a multiple of every K (authors: 36 for 6 4; 12 on "
                                     "the digits).")
        if options.num_cells < 3:
            raise ConfigurationError(f"--num_cells {options.num_cells}: the supernet needs >= 3 cells (two "
                                     "reductions).")
        if any(e < 1 for e in options.stage_epochs):
            raise ConfigurationError(f"--stage_epochs {options.stage_epochs}: every stage needs >= 1 epoch.")
        _check_keep_ops(options.keep_ops)
        _check_warmup(options.warmup_epochs)
        return {"partial_channels": ks, "keep_ops": list(options.keep_ops), "stage_epochs": list(options.stage_epochs),
                "warmup_epochs": options.warmup_epochs, "channels": options.channels, "num_cells": options.num_cells,
                "widen_seed": options.widen_seed}

    def stages(self, settings: Mapping[str, Any]) -> list[Stage]:
        count = len(settings["partial_channels"])
        return [Stage(self.overrides(settings, i),
                      label=f"partial channels K={settings['partial_channels'][i]}, "
                            f"{settings['stage_epochs'][i]} epochs",
                      record={"partial_channels": settings["partial_channels"][i],
                              "epochs": settings["stage_epochs"][i]},
                      pruning=TopAlphas(settings["keep_ops"][i]) if i < count - 1 else None,
                      warm_start=WarmStartFrom(settings["widen_seed"]) if i > 0 else None)
                for i in range(count)]

    def overrides(self, settings: Mapping[str, Any], stage: int) -> dict[str, Any]:
        """The keys stage ``stage`` sets: its epochs, the cosine's length (every stage's epochs), the warm-up, the
        supernet and its partial-channel edge."""
        space = {"channels": settings["channels"], "num_cells": settings["num_cells"],
                 "edge": {"class_path": "darts_pl.search.PartialChannel",
                          "init_args": {"k": settings["partial_channels"][stage]}}}
        model = self._model({"warmup_epochs": settings["warmup_epochs"],
                             "weight_scheduler": {"init_args": {"T_max": sum(settings["stage_epochs"])}}}, space)
        return {"trainer": {"max_epochs": settings["stage_epochs"][stage]}, **model}

    def check(self, settings: Mapping[str, Any], config: Any) -> None:
        scheduler = config.model.init_args.get("weight_scheduler") if config.get("model") else None
        class_path = str(scheduler.get("class_path", "")) if scheduler is not None else ""
        if not class_path.endswith("CosineAnnealingLR"):
            raise ConfigurationError(
                f"darts-pl-progressive --recipe drnas: the weight scheduler is {class_path or 'none'}; DrNAS's stages "
                "share one CosineAnnealingLR over all their epochs: give configs/variants/drnas.yaml (or a "
                "torch.optim.lr_scheduler.CosineAnnealingLR weight_scheduler).")


def _check_keep_ops(keep_ops: Sequence[int]) -> None:
    if any(k < 2 for k in keep_ops) or list(keep_ops) != sorted(keep_ops, reverse=True):
        raise ConfigurationError(f"--keep_ops {list(keep_ops)}: counts must not grow and be >= 2 (a stage searches "
                                 "among at least two ops per edge; the last stage's derivation picks one).")


def _check_warmup(warmup_epochs: int) -> None:
    if warmup_epochs < 0:
        raise ConfigurationError(f"--warmup_epochs {warmup_epochs} must be >= 0.")


RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (PDARTS(), DrNAS())}
"""The recipes ``darts-pl-progressive --recipe`` knows, by name."""
