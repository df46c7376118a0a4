"""``darts-pl-select``: selection by perturbation (DARTS-PT; Wang et al., "Rethinking Architecture Selection in
Differentiable NAS", ICLR 2021) on a finished search.

    darts-pl-select --ckpt_path RUN/checkpoints/last.ckpt
    darts-pl-select --ckpt_path RUN/checkpoints/last.ckpt --config select.yaml --tune_epochs 5 --criterion acc

DARTS reads the cell off the alphas; DARTS-PT asks the trained supernet instead. Edge by edge (in a random order),
it evaluates the supernet on the alpha-val data with each op of the edge removed in turn, and fixes the edge to the
op whose removal costs most (the lowest accuracy, or the highest loss); then, node by node, it removes the incoming
edges whose removal costs least until two remain (CNN cells; a NAS-Bench-201 cell keeps every edge). Between two
rounds of decisions the supernet, with the decided edges fixed, is fine-tuned (weights and alphas) for a few epochs.
This follows the authors' code (ruocwang/darts-pt: ``sota/cnn/projection.py`` ``pt_project``, ``project_op``,
``project_edge``; ``nasbench201/projection.py``): per round the normal cell's decision, then the reduction cell's;
op rounds for every edge, then topology rounds for every node with more than two inputs; ``tune_epochs`` epochs of
fine-tuning between rounds (their ``proj_intv``, 5 in their scripts) with a fresh weight optimizer at a tenth of the
search's learning rate, kept constant, and first-order alpha steps with the search's alpha optimizer and its state;
the evaluations run the supernet in training mode (batch statistics), without gradients.

The command loads the search's last checkpoint (``LitSearch.load_from_checkpoint``: the space, the optimizers' settings,
the regularizers and the weight-step perturbation as the run configured them) and its data module from the run's
``config.yaml`` (search mode), and writes into the run directory, beside the search's ``genotype.json``:

* ``genotype_pt.json``: the selected cell (train it with ``--model.genotype RUN/genotype_pt.json``);
* ``selection.json``: the settings, the alpha-derived genotype, and every decision: the edge (or node), every
  candidate's accuracy and loss with it removed, the choice;
* ``selection/state.pt``: everything needed to continue after a kill (decisions, projection, supernet, both
  optimizers, random generators), rewritten after every decision and every fine-tuning epoch. Running the same
  command again continues from it and ends as the uninterrupted run would.

Notes (deviations from the authors' code):
    * Candidates are evaluated on the alpha-val half without augmentation, in one fixed order, the same batches for
      every candidate (``num_batches`` limits them); the authors iterate their augmented, reshuffled validation
      loader anew for every candidate.
    * The batch-norm statistics that the evaluations update are put back after each one (training-mode
      evaluations do not read them; the authors leave them changed).
    * An edge fixed to ``none`` stays ``none`` in the genotype (the authors' ``genotype()`` then names another op).
    * The fine-tuning keeps what the search's alpha loss and weight step had: its regularizers (the authors' code
      has none), and SDARTS's perturbation at the value its schedule ended with (the authors' SDARTS fine-tuning
      uses the schedule's end value, 0.3).
    * No fine-tuning after the last decision (the authors tune one more epoch, which changes no decision); on
      NAS-Bench-201 every gap is ``tune_epochs`` long (their last one is one epoch shorter).
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import yaml
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

from darts_pl import genotypes
from darts_pl.atomic import atomic_open, atomic_write
from darts_pl.checkpoints import read_checkpoint_header
from darts_pl.errors import ConfigurationError, DataNotFoundError, NonFiniteError
from darts_pl.finite import FiniteChecks
from darts_pl.modules.resumable import collect_rng_states, set_rng_states
from darts_pl.parts.edges import PartialChannel
from darts_pl.search.base import SearchSpace
from darts_pl.search.cnn import CNNSearchSpace
from darts_pl.search.nb201 import NB201SearchSpace
from darts_pl.search.projection import EdgeProjection
from darts_pl.strategies.base import grads_or_zeros
from darts_pl.strategies.first_order import FirstOrder

FORMAT = "darts_pl.selection/1"
RECORD = "selection.json"
GENOTYPE = "genotype_pt.json"
STATE = Path("selection") / "state.pt"
Criterion = Literal["acc", "loss"]


class Evaluation(NamedTuple):
    """Accuracy (fraction) and mean loss of the supernet on the evaluation batches."""

    acc: float
    loss: float


class Step(NamedTuple):
    """One unit of the selection: a decision (``op`` on an edge, or ``edge``: a node's inputs) in a cell type, or one
    epoch of fine-tuning (``tune``, ``cell`` empty)."""

    kind: Literal["op", "edge", "tune"]
    cell: str = ""


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors in tuples, lists or dicts) on ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def evaluate(space: SearchSpace, batches: Iterable[Any], device: torch.device | None = None) -> Evaluation:
    """The supernet's accuracy and mean loss on ``batches`` in training mode (batch statistics, as the authors'
    ``infer(..., _eval=False)``), without gradients; the batch-norm statistics are left as they were."""
    buffers = [b.detach().clone() for b in space.buffers()]
    was_training = space.training
    space.train()
    correct, total, loss_sum = 0, 0, 0.0
    try:
        with torch.no_grad():
            for batch in batches:
                out = space(to_device(batch, device) if device is not None else batch, "val")
                n = int(out.target.shape[0])
                loss_sum += float(out.loss) * n  # the mean over examples, as the authors' AvgrageMeter
                correct += int((out.preds.argmax(-1) == out.target).sum())
                total += n
    finally:
        with torch.no_grad():
            for buffer, saved in zip(space.buffers(), buffers):
                buffer.copy_(saved)
        space.train(was_training)
    if total == 0:
        raise ConfigurationError("darts-pl-select: no evaluation batch (the alpha-val split is empty, or num_batches "
                                 "is 0); use num_batches >= 1.")
    return Evaluation(correct / total, loss_sum / total)


def edge_ops(space: SearchSpace, cell: str, edge: int) -> list[str]:
    """The candidate ops of ``edge`` in alpha column order."""
    per_edge = getattr(space, "edge_primitives", None)
    return list(per_edge[cell][edge]) if per_edge else list(space.primitives)


def prunable_nodes(space: SearchSpace) -> dict[int, list[int]]:
    """``{node: its incoming edges' rows}`` for the nodes with more than two inputs, which keep two (CNN cells: nodes
    1, 2, ...; the authors' ``nid2eids``, keyed by the node's index in the genotype); none for NAS-Bench-201 cells."""
    if not isinstance(space, CNNSearchSpace):
        return {}
    nodes, start = {}, 0
    for node in range(space.num_nodes):
        if node > 0:
            nodes[node] = list(range(start, start + 2 + node))
        start += 2 + node
    return nodes


def check_space(space: SearchSpace) -> None:
    """Refuse what selection by perturbation is not defined for, in one line."""
    if not isinstance(space, (CNNSearchSpace, NB201SearchSpace)):
        raise ConfigurationError(f"darts-pl-select: the search space is {type(space).__name__}; selection by "
                                 "perturbation decides CNN cells (CNNSearchSpace) and NAS-Bench-201 cells.")
    if space.relaxation.samples:
        raise ConfigurationError(f"darts-pl-select: the relaxation {type(space.relaxation).__name__} runs one sampled "
                                 "op per edge; selection by perturbation removes ops from a supernet that weights "
                                 "every op (Softmax, Sigmoid, Dirichlet relaxations).")
    if isinstance(getattr(space, "edge", None), PartialChannel):
        raise ConfigurationError("darts-pl-select: PartialChannel edges pass most channels by the ops, so removing "
                                 "an edge's ops does not remove the edge; select on a supernet with WeightedSum edges.")


class Selector:
    """The decisions of selection by perturbation on one supernet: which edge comes next, which op it keeps, which
    inputs a node keeps. Fine-tuning between decisions is the caller's.

    Args:
        space: The trained supernet.
        criterion: ``"acc"``: keep the op whose removal gives the lowest accuracy (ties: the first op), and remove
            the edge whose removal gives the highest (ties: the last edge); ``"loss"``: the same with the highest /
            lowest loss. As the authors' ``compare`` in ``project_op`` / ``project_edge``.
        edge_order: ``"random"``: the next edge (node) is drawn uniformly from the undecided ones by
            ``numpy.random.RandomState(seed).choice``, normal before reduce, as the authors' ``edge_decision random``
            after ``np.random.seed(seed)``; ``"fixed"``: in row order.
        seed: Seed of the edge order.
    """

    def __init__(self, space: SearchSpace, criterion: Criterion = "acc",
                 edge_order: Literal["random", "fixed"] = "random", seed: int = 0) -> None:
        if criterion not in ("acc", "loss"):
            raise ConfigurationError(f"darts-pl-select: criterion={criterion!r}; use 'acc' or 'loss'.")
        if edge_order not in ("random", "fixed"):
            raise ConfigurationError(f"darts-pl-select: edge_order={edge_order!r}; use 'random' or 'fixed'.")
        self.space = space
        self.criterion = criterion
        self.edge_order = edge_order
        self.rng = np.random.RandomState(seed)
        self.projection = EdgeProjection({cell: tuple(space.arch[cell].shape) for cell in space.cell_types})
        self.nodes = prunable_nodes(space)
        self.kept: dict[str, dict[int, list[int]]] = {cell: {} for cell in space.cell_types}

    def rounds(self) -> list[list[Step]]:
        """The decision rounds in order: one op decision per cell type for every edge, then one topology decision
        per cell type for every node with more than two inputs."""
        num_edges = max(self.space.arch[cell].shape[0] for cell in self.space.cell_types)
        ops = [[Step("op", cell) for cell in self.space.cell_types] for _ in range(num_edges)]
        return ops + [[Step("edge", cell) for cell in self.space.cell_types] for _ in self.nodes]

    def _next(self, remaining: list[int]) -> int:
        if self.edge_order == "random":
            return int(self.rng.choice(np.array(remaining), size=1)[0])
        return remaining[0]

    def _worse(self, a: Evaluation, b: Evaluation) -> bool:
        """Whether ``a`` is strictly worse than ``b`` (the authors' ``compare(a, b)``)."""
        return a.acc < b.acc if self.criterion == "acc" else a.loss > b.loss

    def decide(self, step: Step, batches: Callable[[], Iterable[Any]], device: torch.device | None = None) -> dict:
        """Take the decision ``step`` (``op`` or ``edge``) on the supernet as it is now; returns its record."""
        if step.kind == "op":
            return self._decide_op(step.cell, batches, device)
        return self._decide_edges(step.cell, batches, device)

    def _evaluate(self, projection: EdgeProjection, batches: Callable[[], Iterable[Any]],
                  device: torch.device | None) -> Evaluation:
        with self.space.projected(projection):
            return evaluate(self.space, batches(), device)

    def _decide_op(self, cell: str, batches: Callable[[], Iterable[Any]], device: torch.device | None) -> dict:
        remaining = [e for e in range(self.space.arch[cell].shape[0]) if not self.projection.decided(cell, e)]
        edge = self._next(remaining)
        ops = edge_ops(self.space, cell, edge)
        candidates, best, best_eval = [], 0, None
        for column, op in enumerate(ops):
            result = self._evaluate(self.projection.without_op(cell, edge, column), batches, device)
            candidates.append({"op": op, "acc": result.acc, "loss": result.loss})
            if best_eval is None or self._worse(result, best_eval):  # its removal costs most so far
                best, best_eval = column, result
        self.projection.fix_op(cell, edge, best)
        return {"kind": "op", "cell": cell, "edge": edge, "label": self.space.edge_labels()[edge],
                "candidates": candidates, "choice": ops[best]}

    def _decide_edges(self, cell: str, batches: Callable[[], Iterable[Any]], device: torch.device | None) -> dict:
        node = self._next([n for n in self.nodes if n not in self.kept[cell]])
        edges = list(self.nodes[node])
        first = edges[0]
        labels = self.space.edge_labels()
        rounds = []
        while len(edges) > 2:
            candidates, removed, removed_eval = [], None, None
            for edge in edges:  # the edges removed in earlier rounds of this node are still in (as the authors')
                result = self._evaluate(self.projection.without_edge(cell, edge), batches, device)
                candidates.append({"edge": edge, "input": edge - first, "label": labels[edge], "acc": result.acc,
                                   "loss": result.loss})
                if removed_eval is None or not self._worse(result, removed_eval):  # its removal costs least so far
                    removed, removed_eval = edge, result
            rounds.append({"candidates": candidates, "removed": removed})
            edges.remove(removed)
        for edge in self.nodes[node]:
            if edge not in edges:
                self.projection.remove_edge(cell, edge)
        self.kept[cell][node] = edges
        return {"kind": "edge", "cell": cell, "node": node, "edges": list(self.nodes[node]), "rounds": rounds,
                "kept": edges, "inputs": [e - first for e in edges]}

    def genotype(self) -> genotypes.AnyGenotype:
        """The selected cell (every decision taken)."""
        chosen = {cell: {e: edge_ops(self.space, cell, e)[int(self.projection.fixed[cell][e].argmax())]
                         for e in range(self.space.arch[cell].shape[0]) if self.projection.fixed[cell][e].any()}
                  for cell in self.space.cell_types}
        if isinstance(self.space, NB201SearchSpace):
            nodes, e = [], 0
            for i in range(1, self.space.num_nodes):
                nodes.append(tuple((chosen["cell"][e + j], j) for j in range(i)))
                e += i
            return genotypes.NB201Genotype(nodes)
        space = self.space
        assert isinstance(space, CNNSearchSpace)
        concat = list(range(2 + space.num_nodes - space.multiplier, space.num_nodes + 2))
        cells = {cell: _cnn_gene(chosen[cell], space.num_nodes) for cell in ("normal", "reduce")}
        return genotypes.Genotype(normal=cells["normal"], normal_concat=concat, reduce=cells["reduce"],
                                  reduce_concat=concat)

    def state_dict(self) -> dict[str, Any]:
        return {"projection": self.projection.state_dict(), "kept": self.kept, "rng": self.rng.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.projection.load_state_dict(state["projection"])
        self.kept = {cell: {int(n): list(e) for n, e in kept.items()} for cell, kept in state["kept"].items()}
        self.rng.set_state(state["rng"])


def _cnn_gene(chosen: Mapping[int, str], num_nodes: int) -> list[tuple[str, int]]:
    """``[(op, input), ...]``, two per node, from the ops of the edges that are left (inputs in increasing order)."""
    gene, start = [], 0
    for node in range(num_nodes):
        gene += [(chosen[e], e - start) for e in range(start, start + 2 + node) if e in chosen]
        start += 2 + node
    return gene


def plan(rounds: list[list[Step]], tune_epochs: int) -> list[Step]:
    """Every step in order: the rounds of decisions with ``tune_epochs`` fine-tuning epochs between two rounds."""
    steps: list[Step] = []
    for r, decisions in enumerate(rounds):
        if r:
            steps += [Step("tune")] * tune_epochs
        steps += decisions
    return steps


class PerturbationSelection:
    """The settings of a selection by perturbation and the run on a finished search (see the module docstring).

    Args:
        tune_epochs: Epochs of fine-tuning between two rounds of decisions (the authors' ``proj_intv``: 5 in their
            scripts; 0 decides on the supernet as the search left it).
        criterion: ``"acc"`` or ``"loss"`` on the evaluation batches (the authors' ``proj_crit``, ``acc`` by
            default); see :class:`Selector`.
        edge_order: ``"random"`` (the authors') or ``"fixed"`` (row order); see :class:`Selector`.
        seed: Seed of the edge order and of the fine-tuning's generators; none takes the run's ``seed_everything``
            (the authors use their search's ``--seed``).
        lr_factor: The fine-tuning's weight learning rate as a fraction of the search's initial one (0.1: the
            authors' ``learning_rate / 10``), kept constant.
        train_alphas: First-order alpha steps during fine-tuning, with the search's alpha optimizer (the authors'
            ``darts-proj``; false is their ``blank-proj``, fixed alphas).
        num_batches: Evaluation batches per candidate (the first ones of the alpha-val half); none: all of it.
        tune_batches: Training batches per fine-tuning epoch; none: the whole weight-train half.
    """

    def __init__(self, tune_epochs: int = 5, criterion: Criterion = "acc",
                 edge_order: Literal["random", "fixed"] = "random", seed: int | None = None, lr_factor: float = 0.1,
                 train_alphas: bool = True, num_batches: int | None = None, tune_batches: int | None = None) -> None:
        if tune_epochs < 0:
            raise ConfigurationError(f"darts-pl-select: tune_epochs={tune_epochs} must be >= 0 (5 in DARTS-PT's "
                                     "scripts; 0 decides on the supernet as the search left it).")
        for name, value in (("num_batches", num_batches), ("tune_batches", tune_batches)):
            if value is not None and value < 1:
                raise ConfigurationError(f"darts-pl-select: {name}={value} must be >= 1, or null for all batches.")
        if lr_factor <= 0:
            raise ConfigurationError(f"darts-pl-select: lr_factor={lr_factor} must be > 0 (0.1 in DARTS-PT).")
        if criterion not in ("acc", "loss"):
            raise ConfigurationError(f"darts-pl-select: criterion={criterion!r}; use 'acc' or 'loss'.")
        if edge_order not in ("random", "fixed"):
            raise ConfigurationError(f"darts-pl-select: edge_order={edge_order!r}; use 'random' or 'fixed'.")
        self.tune_epochs = tune_epochs
        self.criterion = criterion
        self.edge_order = edge_order
        self.seed = seed
        self.lr_factor = lr_factor
        self.train_alphas = train_alphas
        self.num_batches = num_batches
        self.tune_batches = tune_batches

    def settings(self, seed: int) -> dict[str, Any]:
        return {"tune_epochs": self.tune_epochs, "criterion": self.criterion, "edge_order": self.edge_order,
                "seed": seed, "lr_factor": self.lr_factor, "train_alphas": self.train_alphas,
                "num_batches": self.num_batches, "tune_batches": self.tune_batches}

    def run(self, ckpt_path: str | os.PathLike[str], run_dir: str | os.PathLike[str] | None = None,
            device: str = "auto", data: Mapping[str, Any] | None = None) -> genotypes.AnyGenotype:
        """Select on the search whose checkpoint is ``ckpt_path`` (continuing an interrupted selection); returns
        the selected genotype, also written to ``<run_dir>/genotype_pt.json``.

        Args:
            ckpt_path: The search's checkpoint (``RUN/checkpoints/last.ckpt``).
            run_dir: The search's run directory (its ``config.yaml``; the outputs go there); default: the folder
                above ``checkpoints/``.
            device: ``"auto"`` (a GPU if there is one), ``"cpu"`` or ``"cuda"``.
            data: Settings of the run's data module to override (``{"data_dir": ...}``).
        """
        return _Run(self, Path(ckpt_path), run_dir, device, data).run()


def _run_dir(ckpt_path: Path, run_dir: str | os.PathLike[str] | None) -> Path:
    if run_dir is not None:
        return Path(run_dir)
    return ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigurationError(f"darts-pl-select: no config.yaml in {str(run_dir)!r} (the search's run directory, "
                                 "where darts-pl writes it); pass --run_dir, the directory that holds it.")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config.get("data"), dict) or not config["data"].get("class_path"):
        raise ConfigurationError(f"darts-pl-select: {str(path)!r} names no data module (data.class_path).")
    return config


def build_datamodule(config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Any:
    """The run's data module from its ``config.yaml`` (``data.class_path``, ``data.init_args``), with ``overrides``
    of its settings; it must be in search mode."""
    from darts_pl.cli import _import

    data = config["data"]
    init_args = {**(data.get("init_args") or {}), **dict(overrides or {})}
    datamodule = _import(data["class_path"])(**init_args)
    if getattr(datamodule, "mode", "search") != "search":
        raise ConfigurationError(f"darts-pl-select: the data module is in mode={datamodule.mode!r}; the selection "
                                 "needs the search split (mode 'search').")
    return datamodule


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yield from loader


class _Run:
    """One selection run: loading, the steps with their fine-tuning, the state after every step, the files."""

    def __init__(self, selection: PerturbationSelection, ckpt_path: Path, run_dir: str | os.PathLike[str] | None,
                 device: str, data: Mapping[str, Any] | None) -> None:
        from darts_pl.modules.search import LitSearch

        read_checkpoint_header(ckpt_path)  # a damaged or missing file: one line
        self.ckpt_path = ckpt_path
        self.run_dir = _run_dir(ckpt_path, run_dir)
        config = _read_config(self.run_dir)
        seed = selection.seed if selection.seed is not None else config.get("seed_everything")
        self.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
        self.selection = selection
        self.settings = selection.settings(self.seed)
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        self.module = LitSearch.load_from_checkpoint(ckpt_path, map_location="cpu")
        self.strategy = FirstOrder()  # the authors' fine-tuning steps the alphas first order, whatever the search did
        self.space = self.module.space.to(self.device)
        check_space(self.space)
        self.datamodule = build_datamodule(config, data)
        self.datamodule.prepare_data()
        self.datamodule.setup("fit")
        self.val_loader = self.datamodule.val_dataloader()
        self._eval_cache: list[Any] | None = None
        self.alpha_genotype = genotypes.to_dict(self.space.genotype())
        self.selector = Selector(self.space, selection.criterion, selection.edge_order, self.seed)
        self.steps = plan(self.selector.rounds(), selection.tune_epochs)
        self.decisions: list[dict[str, Any]] = []
        self.steps_done = self.tuned_epochs = 0
        self._optimizers(torch.load(ckpt_path, map_location="cpu", weights_only=False).get("optimizer_states", []))

    def _optimizers(self, saved: list[dict[str, Any]]) -> None:
        """A fresh weight optimizer at ``lr_factor`` times the search's rate; the search's alpha optimizer, state
        included (the authors reset the first and keep the second)."""
        self.weight_opt = self.module.weight_optimizer(self.space.weight_parameters())
        for group in self.weight_opt.param_groups:
            group["lr"] = group["lr"] * self.selection.lr_factor
        self.arch_opt = self.module.arch_optimizer(self.space.arch_parameters())
        if len(saved) > 1:
            self.arch_opt.load_state_dict(saved[1])

    # ------------------------------------------------------------------ state
    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE

    def _restore(self) -> None:
        """Continue from ``selection/state.pt`` if an earlier run of the same selection left one."""
        if not self.state_path.is_file():
            from lightning.fabric.utilities.seed import seed_everything

            seed_everything(self.seed, verbose=False)
            return
        state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        if state.get("format") != FORMAT or state.get("settings") != self.settings \
                or state.get("ckpt_path") != str(self.ckpt_path.absolute()):
            raise ConfigurationError(
                f"darts-pl-select: {str(self.state_path)!r} holds a selection with other settings "
                f"({state.get('settings')}, {state.get('ckpt_path')}); run it with those to continue it, or remove "
                f"{str(self.state_path.parent)!r} to start over.")
        self.space.load_state_dict(state["space"])
        self.weight_opt.load_state_dict(state["weight_optimizer"])
        self.arch_opt.load_state_dict(state["arch_optimizer"])
        self.selector.load_state_dict(state["selector"])
        self.decisions = list(state["decisions"])
        self.steps_done, self.tuned_epochs = int(state["steps_done"]), int(state["tuned_epochs"])
        set_rng_states(state["rng"])
        print(f"darts-pl-select: continuing {str(self.state_path)!r} after step {self.steps_done} of "
              f"{len(self.steps)}.", file=sys.stderr)

    def _save(self) -> None:
        state = {"format": FORMAT, "settings": self.settings, "ckpt_path": str(self.ckpt_path.absolute()),
                 "steps_done": self.steps_done, "tuned_epochs": self.tuned_epochs, "decisions": self.decisions,
                 "selector": self.selector.state_dict(), "space": self.space.state_dict(),
                 "weight_optimizer": self.weight_opt.state_dict(), "arch_optimizer": self.arch_opt.state_dict(),
                 "rng": collect_rng_states()}
        with atomic_open(self.state_path, "wb") as handle:
            torch.save(state, handle)
        self._write_record()

    def _write_record(self, genotype: genotypes.AnyGenotype | None = None) -> None:
        record = {"format": FORMAT, "ckpt_path": str(self.ckpt_path.absolute()), "settings": self.settings,
                  "alpha_genotype": self.alpha_genotype, "steps": len(self.steps), "steps_done": self.steps_done,
                  "tuned_epochs": self.tuned_epochs, "decisions": self.decisions, "finished": genotype is not None}
        if genotype is not None:
            record["genotype"] = genotypes.to_dict(genotype)
        atomic_write(self.run_dir / RECORD, json.dumps(record, indent=1) + "\n")

    # ------------------------------------------------------------------ steps
    def run(self) -> genotypes.AnyGenotype:
        self._restore()
        for index in range(self.steps_done, len(self.steps)):
            step = self.steps[index]
            if step.kind == "tune":
                self._tune_epoch()
                self.tuned_epochs += 1
            else:
                record = self.selector.decide(step, self._eval_batches, self.device)
                self.decisions.append({"step": index, "tuned_epochs": self.tuned_epochs, **record})
                _report(self.decisions[-1])
            self.steps_done = index + 1
            self._save()
        genotype = self.selector.genotype()
        genotypes.save(genotype, self.run_dir / GENOTYPE)
        self._write_record(genotype)
        print(f"darts-pl-select: {GENOTYPE} written to {str(self.run_dir)!r}: {genotype}", file=sys.stderr)
        return genotype

    def _eval_batches(self) -> Iterable[Any]:
        """The evaluation batches: the first ``num_batches`` of the alpha-val half, read once and kept (the loader
        has no randomness), or the whole half, read anew for every candidate."""
        if self.selection.num_batches is None:
            return self.val_loader
        if self._eval_cache is None:
            self._eval_cache = list(itertools.islice(self.val_loader, self.selection.num_batches))
        return self._eval_cache

    def _tune_epoch(self) -> None:
        """One epoch of the bilevel loop on the projected supernet: an alpha step on a val batch (if
        ``train_alphas``; first order), then a weight step on a train batch, as the search's ``LitSearch`` does."""
        # New loaders every epoch: their shuffles and worker seeds come from the global generators, which a resumed
        # selection restores at the epoch's start (persistent workers would carry their state past a kill).
        loaders = self.datamodule.train_dataloader()
        pairs = zip(loaders["train"], _cycle(loaders["val"]))
        self.space.train()
        with self.space.projected(self.selector.projection):
            for batch, (train_batch, val_batch) in enumerate(itertools.islice(pairs, self.selection.tune_batches)):
                where = f"fine-tuning epoch {self.tuned_epochs}, batch {batch}"
                train_batch, val_batch = to_device(train_batch, self.device), to_device(val_batch, self.device)
                if self.selection.train_alphas:
                    self._alpha_step(train_batch, val_batch, where)
                self._weight_step(train_batch, where)

    def _alpha_step(self, train_batch: Any, val_batch: Any, where: str) -> None:
        module = self.module
        self.arch_opt.zero_grad(set_to_none=True)
        with FiniteChecks(f"alpha step ({where})") as checks:
            step = self.strategy.arch_gradients(self.space, train_batch, val_batch, self.weight_opt, module.grad_clip)
            grads = step.grads
            if module.regularizers:
                penalty = sum(regularizer(self.space) for regularizer in module.regularizers)
                extra = grads_or_zeros(penalty, self.space.arch_parameters())
                grads = [g + e.to(g.dtype) for g, e in zip(grads, extra)]
            checks.add(step.val.loss, "validation loss")
            checks.add_all(grads, "alpha gradient")
        for alpha, grad in zip(self.space.arch_parameters(), grads):
            alpha.grad = grad
        self.arch_opt.step()
        self.space.commit("val")

    def _weight_step(self, train_batch: Any, where: str) -> None:
        module = self.module
        weights = self.space.weight_parameters()
        self.weight_opt.zero_grad(set_to_none=True)
        with FiniteChecks(f"weight step ({where})") as checks:
            if module.perturbation is None:
                out = self.space(train_batch, "train", regularized=True)
            else:  # SDARTS: at the perturbed edge weights; the projection still applies on top
                with self.space.fixed_edge_weights(module.perturbation.perturb(self.space, train_batch)):
                    out = self.space(train_batch, "train", regularized=True)
            checks.add(out.loss, "training loss")
        out.loss.backward(inputs=weights)
        if module.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(weights, module.grad_clip)
        self.weight_opt.step()
        self.space.commit("train")


def _report(decision: Mapping[str, Any]) -> None:
    if decision["kind"] == "op":
        seen = ", ".join(f"{c['op']} {c['acc']:.4f}/{c['loss']:.4f}" for c in decision["candidates"])
        print(f"darts-pl-select: {decision['cell']} edge {decision['edge']} ({decision['label']}): keeps "
              f"{decision['choice']} (acc/loss without each op: {seen})", file=sys.stderr)
    else:
        print(f"darts-pl-select: {decision['cell']} node {decision['node']}: keeps inputs {decision['inputs']} "
              f"(edges {decision['kept']} of {decision['edges']})", file=sys.stderr)


SETTINGS = ("tune_epochs", "criterion", "edge_order", "seed", "lr_factor", "train_alphas", "num_batches",
            "tune_batches")


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="darts-pl-select", exit_on_error=False,
        description="Selection by perturbation (DARTS-PT) on a finished search: writes genotype_pt.json and "
                    "selection.json into the search's run directory; run it again to continue an interrupted one.")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with any of these options")
    parser.add_argument("--ckpt_path", type=str, required=True, help="the search's checkpoint, "
                        "RUN/checkpoints/last.ckpt")
    parser.add_argument("--run_dir", type=str | None, default=None,
                        help="the search's run directory (config.yaml; the outputs go there); default: the folder "
                             "above checkpoints/")
    parser.add_argument("--device", type=Literal["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--data", type=dict[str, Any] | None, default=None,
                        help="settings of the run's data module to override, e.g. '{data_dir: /elsewhere}'")
    parser.add_class_arguments(PerturbationSelection, as_group=False)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``darts-pl-select``: bad settings, checkpoints or data exit with status 2 and one line; a
    non-finite value during fine-tuning with status 1 (the state of the last finished step is kept)."""
    try:
        cfg = _parser().parse_args(argv)
        selection = PerturbationSelection(**{name: cfg[name] for name in SETTINGS})
        selection.run(cfg.ckpt_path, cfg.run_dir, cfg.device, cfg.data)
    except NonFiniteError as err:
        print(f"darts-pl-select: stopped: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ConfigurationError, DataNotFoundError, ArgumentError) as err:
        reason = " ".join(str(err).split())
        print(f"darts-pl-select: error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
