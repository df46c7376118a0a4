r"""The interface every search space (supernet) implements, so one bilevel loop and one set of
strategies serve convolutional and recurrent cells alike.

A search space is an ``nn.Module`` that owns its architecture tensors explicitly, in one container,
``space.arch`` (an ``nn.ParameterDict``: one ``(edges, ops)`` tensor per cell type, plus any further tensor a
part needs); every other parameter is a weight. Nothing is found by name: the arch optimizer, DDP, checkpoints
and monitors all read ``space.arch``.

A space declares, and callers read: its cell types (:attr:`cell_names`, the keys of its op tensors), its edges'
names and its candidate ops, the metrics of its task (:meth:`epoch_metrics`), whether a forward draws noise
(:attr:`stochastic`, aggregated from its parts), whether some weights go without a gradient in a step
(:attr:`unused_parameters`), and its genotype (any registered :class:`~darts_pl.genotypes.CellGenotype` kind).

The space is given its parts (:mod:`darts_pl.parts`): a ``Relaxation`` (architecture tensor → edge weights of one
forward, and the probabilities monitors read), a ``Derivation`` (probabilities → genotype), and where its cells
have edges of candidate ops an ``Edge`` (how an edge combines them), ``OpWrapper``\ s and an ``EdgeNormalization``.
Its ``forward`` is its training objective: ``space(batch, stream)`` returns a :class:`LossOutput`. Strategies
evaluate it with replaced weights through ``torch.func.functional_call(space, {name: tensor}, (batch, stream))``.

Streams: ``"train"`` batches drive weight steps, ``"val"`` batches drive alpha steps. A space with
state carried across batches (the RNN's hidden state) keeps it per stream: each forward on a stream
reads the committed state and leaves its successor pending; the loop calls :meth:`commit` at the end
of the phase that owns the stream, so the last evaluation of the phase is the one carried forward.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn as nn

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import CellGenotype
from darts_pl.parts.base import Part
from darts_pl.parts.derivation import Derivation, TopK
from darts_pl.parts.edge_normalization import EdgeNormalization
from darts_pl.parts.edges import Edge, WeightedSum
from darts_pl.parts.op_wrappers import OpWrapper
from darts_pl.parts.relaxation import EdgeWeights, Relaxation, Softmax
from darts_pl.search.projection import EdgeProjection

Stream = Literal["train", "val"]
CellHook = Callable[[str, int, torch.Tensor], torch.Tensor]
"""``hook(cell type, position among the cells of that type, op weights (edges, ops)) -> op weights`` (see
:meth:`SearchSpace.per_cell`)."""


class LossOutput(NamedTuple):
    """What a space's forward returns: the scalar loss, and predictions/targets for metrics."""

    loss: torch.Tensor
    preds: torch.Tensor | None = None
    target: torch.Tensor | None = None


class SearchSpace(nn.Module, ABC):
    """Base class of supernets with architecture tensors.

    Subclasses call ``super().__init__(relaxation, derivation, ...)``, register one ``(edges, ops)`` tensor per cell
    type with :meth:`add_cells`, and implement :meth:`forward` (reading :meth:`edge_weights`), :meth:`genotype`,
    :meth:`edge_labels` and :attr:`primitives`.

    Args:
        relaxation: Architecture tensor → edge weights and probabilities (``Softmax``, DARTS, when omitted).
        derivation: Probabilities → genotype (``TopK``, DARTS, when omitted).
        edge: How an edge combines its ops (``WeightedSum``, DARTS, when omitted), for spaces whose cells have edges
            of candidate-op modules (:attr:`has_edges`).
        op_wrappers: Parts applied to the outputs of some ops (P-DARTS's skip dropout), for spaces with edges.
        edge_normalization: PC-DARTS's edge normalisation, for spaces with edges.

    Raises:
        ConfigurationError: A part the space cannot run: an edge, wrapper or edge normalisation given to a space
            without edges, a sampling edge with a relaxation that samples none, a sampling relaxation in a space
            that runs all ops at once.
    """

    #: The RNN recipe clips the training gradient before the unrolled (virtual) step; the CNN one does not.
    clips_virtual_step: ClassVar[bool] = False
    #: The cells are made of edges of candidate-op modules that an ``Edge`` part combines.
    has_edges: ClassVar[bool] = True
    #: A relaxation that samples one op per edge (GDAS) can run here.
    accepts_sampling: ClassVar[bool] = True
    #: Its forward runs every cell's edge weights through :meth:`cell_edge_weights`, so parts can act on each cell
    #: alone (:meth:`per_cell`: Λ-DARTS's per-cell gradients, the cost table of SNAS's resource constraint).
    per_cell_weights: ClassVar[bool] = False

    def __init__(self, relaxation: Relaxation | None = None, derivation: Derivation | None = None,
                 edge: Edge | None = None, op_wrappers: Sequence[OpWrapper] | None = None,
                 edge_normalization: EdgeNormalization | None = None) -> None:
        super().__init__()
        owner = type(self).__name__
        self.relaxation = relaxation if relaxation is not None else Softmax()
        self.derivation = derivation if derivation is not None else TopK()
        if not self.has_edges and (edge is not None or op_wrappers or edge_normalization is not None):
            raise ConfigurationError(f"{owner}: its cells have no edges of candidate-op modules, so it takes no edge, "
                                     "op_wrappers or edge_normalization; remove them from the config.")
        self.edge = (edge if edge is not None else WeightedSum()) if self.has_edges else None
        self._wrapper_names: list[str] = []
        for wrapper in op_wrappers or []:
            if wrapper.name in self._wrapper_names or hasattr(self, wrapper.name):
                raise ConfigurationError(f"{owner}: two op wrappers named {wrapper.name!r} (or a name the space "
                                         "already uses); give each wrapper once.")
            self.add_module(wrapper.name, wrapper)  # reachable as space.<name>, e.g. space.skip_dropout.p
            self._wrapper_names.append(wrapper.name)
        self.edge_normalization = edge_normalization
        if self.edge is not None and self.edge.needs_index and not self.relaxation.samples:
            raise ConfigurationError(
                f"{owner}: edge={type(self.edge).__name__} runs the sampled op of each edge, but the relaxation "
                f"{type(self.relaxation).__name__} samples none; use a sampling relaxation (GumbelSoftmax) or "
                "edge=WeightedSum.")
        if self.relaxation.samples and not self.accepts_sampling:
            raise ConfigurationError(
                f"{owner}: relaxation={type(self.relaxation).__name__} samples one op per edge, which this supernet "
                "does not support (it evaluates all ops of a node at once); use Softmax, Sigmoid or Dirichlet.")
        self.arch = nn.ParameterDict()
        self.cell_names: tuple[str, ...] = ()
        self._in_degrees: list[int] = []
        self._fixed_edge_weights: Mapping[str, EdgeWeights] | None = None
        self._projection: EdgeProjection | None = None
        self._cell_hook: CellHook | None = None
        self._cells_run: dict[str, int] = {}
        self.input_shape: tuple[int, ...] | None = None  # one example's shape, from the last image batch seen
        self.register_forward_pre_hook(_remember_input_shape)

    def add_cells(self, cells: Mapping[str, nn.Parameter], in_degrees: Sequence[int] = (),
                  init: Literal["randn", "zeros"] = "randn", init_scale: float = 1e-3) -> None:
        """Register the op tensors of the cell types, ``{name: (edges, ops)}`` (their keys become
        :attr:`cell_names`), and, with edge normalisation, its tensors after them.

        Args:
            cells: The op tensors by cell type.
            in_degrees: The incoming edges of each node, in edge-row order (edge normalisation's groups; a space that
                takes edge normalisation must give them).
            init: How edge normalisation initialises its tensors unless it says otherwise.
            init_scale: Its random initialisation's scale, likewise.
        """
        for name, tensor in cells.items():
            self.arch[name] = tensor
        self.cell_names = tuple(cells)
        self._in_degrees = list(in_degrees)
        if self.edge_normalization is not None:
            num_edges = sum(self._in_degrees)
            if not num_edges:
                raise ConfigurationError(f"{type(self).__name__} does not say how its edges meet at nodes "
                                         "(add_cells(in_degrees=...)), which edge normalisation needs.")
            for name, tensor in self.edge_normalization.build(self.cell_names, num_edges, init, init_scale).items():
                self.arch[name] = tensor

    # ------------------------------------------------------------------ declarations
    @property
    def cell_types(self) -> list[str]:
        """Keys of ``self.arch`` that hold the op tensors of a cell type (the others belong to a part)."""
        return list(self.cell_names)

    @property
    def op_wrappers(self) -> list[OpWrapper]:
        return [getattr(self, name) for name in self._wrapper_names]

    def parts(self) -> dict[str, Part]:
        """The space's parts by role (``relaxation``, ``edge``, ``derivation``, ``edge_normalization``, wrappers)."""
        found: dict[str, Part | None] = {"relaxation": self.relaxation, "edge": self.edge,
                                         "derivation": self.derivation, "edge_normalization": self.edge_normalization}
        found.update({name: getattr(self, name) for name in self._wrapper_names})
        return {role: part for role, part in found.items() if part is not None}

    @property
    def op_masks(self) -> dict[str, torch.Tensor]:
        """The ops every edge has where some edge of a cell type lacks one, ``{cell: (edges, ops) bool}``; ``{}`` in a
        space whose edges all have every op (spaces with per-edge op sets override it)."""
        return {}

    @property
    def stochastic(self) -> bool:
        """Whether a forward draws noise (a sampled relaxation, a dropout, a ``noise`` op...)."""
        return bool(self.noise_sources())

    def noise_sources(self) -> list[str]:
        """What draws noise in a forward: the parts that declare it (``"relaxation GumbelSoftmax"``), and the
        candidate ops that do (a module with ``draws_noise = True``: ``"op NoiseOp"``, RobustDARTS's S4)."""
        parts = self.parts()
        found = [f"{role} {type(part).__name__}" for role, part in parts.items() if part.draws_noise]
        ops = {type(m).__name__ for m in self.modules() if not isinstance(m, Part) and getattr(m, "draws_noise", False)}
        return found + [f"op {name}" for name in sorted(ops)]

    @property
    def unused_parameters(self) -> bool:
        """Whether a step leaves some weights without a gradient (ops not sampled): DDP must be told."""
        return self.edge is not None and self.edge.unused_parameters

    def epoch_metrics(self, split: str, mean_loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Metrics of the task beside ``<split>/loss`` and ``<split>/acc`` (a language model's perplexity)."""
        return {}

    # ------------------------------------------------------------------ parameters
    def named_arch_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return self.arch.named_parameters(prefix="arch")

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch.parameters()}
        return ((n, p) for n, p in self.named_parameters() if id(p) not in arch)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_arch_parameters()]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weight_parameters()]

    # ------------------------------------------------------------------ objective
    @abstractmethod
    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        """The loss on ``batch``. ``regularized`` adds training-only penalties (the RNN's TAR)."""

    def commit(self, stream: Stream) -> None:
        """Carry the pending state of ``stream`` into the next batch (no-op for stateless spaces)."""

    def reset_state(self) -> None:
        """Forget carried state, e.g. at the start of an epoch (no-op for stateless spaces)."""

    def lr_scale(self, batch: Any) -> float:
        """Factor on the weight learning rate for this batch (the RNN's variable sequence length)."""
        return 1.0

    # ------------------------------------------------------------------ architecture
    def edge_weights(self) -> Mapping[str, EdgeWeights]:
        """The edge weights of one forward pass per cell type (a new sample for stochastic relaxations), or those a
        weight-step hook fixed (:meth:`fixed_edge_weights`); with edge normalisation, each edge's ``scale`` too;
        inside :meth:`projected`, with the projection's decided edges and masked ops applied on top."""
        self._cells_run = {}  # a new forward: cells count from 0 in cell_edge_weights
        if self._fixed_edge_weights is not None:
            weights = dict(self._fixed_edge_weights)
        else:
            weights = {cell: self.restrict_weights(cell, self.relaxation(self.arch[cell])) for cell in self.cell_names}
        for cell, scale in self.edge_scales().items():
            if weights[cell].scale is None:
                weights[cell] = weights[cell]._replace(scale=scale)
        return weights if self._projection is None else self._projection.apply(weights)

    def restrict_weights(self, cell: str, weights: EdgeWeights) -> EdgeWeights:
        """The relaxation's edge weights of cell type ``cell`` restricted to the ops each edge has: as given, unless a
        space keeps alphas for ops some edges lack (``CNNSearchSpace(alpha_columns="primitives")``, DrNAS's pruning
        masks)."""
        return weights

    def op_probs(self) -> dict[str, torch.Tensor]:
        """The relaxation's probabilities per cell type, ``{cell: (edges, len(primitives))}``, differentiable in the
        architecture tensors (what :meth:`edge_probs` detaches; a cost regularizer weighs op costs with them)."""
        return {cell: self.relaxation.probs(self.arch[cell]) for cell in self.cell_names}

    def edge_modules(self) -> list[tuple[str, int, nn.Module]]:
        """Every edge of the supernet as ``(cell type, alpha row, its MixedOp)``, cells in order (what
        :meth:`op_costs` counts); a space whose cells have edges of candidate-op modules lists them."""
        raise ConfigurationError(f"{type(self).__name__} does not list its edges (edge_modules()), which counting the "
                                 "costs of its ops needs; implement edge_modules() -> [(cell type, alpha row, "
                                 "MixedOp)].")

    def op_costs(self, kind: str, input_shape: Sequence[int] | None = None,
                 latency_table: Any = None) -> dict[str, torch.Tensor]:
        """The cost of every candidate op on every edge, summed over the cells of each cell type: ``{cell: (edges,
        len(primitives))}`` (``darts_pl.costs.op_costs``: FLOPs as multiply-adds or parameters in millions, or
        latencies from a table), of the op as a derived network builds it, at the edge's input shape.

        Args:
            kind: ``"flops"``, ``"params"`` or ``"latency"``.
            input_shape: One example's shape, ``(channels, height, width)``; the last batch's when omitted.
            latency_table: The :class:`~darts_pl.costs.LatencyTable` for ``kind="latency"``.
        """
        from darts_pl.costs import op_costs

        return op_costs(self, kind, input_shape, latency_table)

    @contextlib.contextmanager
    def fixed_edge_weights(self, weights: Mapping[str, EdgeWeights]) -> Iterator[None]:
        """Run every forward inside the block with ``weights`` instead of the relaxation's."""
        if set(weights) != set(self.cell_names):
            raise ConfigurationError(f"fixed_edge_weights: got cell types {sorted(weights)}, the space has "
                                     f"{sorted(self.cell_names)}.")
        self._fixed_edge_weights = weights
        try:
            yield
        finally:
            self._fixed_edge_weights = None

    def cell_edge_weights(self, cell: str, weights: EdgeWeights) -> EdgeWeights:
        """The edge weights that one cell of type ``cell`` runs with, ``weights`` (its type's :meth:`edge_weights`)
        unless a hook of :meth:`per_cell` changes them. Spaces that declare :attr:`per_cell_weights` call it for each
        cell, in the order the cells run; cells of a type count from 0 at each :meth:`edge_weights` call."""
        if self._cell_hook is None:
            return weights
        position = self._cells_run.get(cell, 0)
        self._cells_run[cell] = position + 1
        return weights._replace(weights=self._cell_hook(cell, position, weights.weights))

    @contextlib.contextmanager
    def per_cell(self, hook: CellHook) -> Iterator[None]:
        """Inside the block, cell ``i`` of type ``c`` runs with ``hook(c, i, weights)`` as its op weights
        (``(edges, ops)``; the sampled ops and edge scales stay). Λ-DARTS adds a tensor of its own per cell to read
        each cell's gradient, and moves each cell's weights apart for its finite difference.

        Raises:
            ConfigurationError: the space does not run its cells' weights through :meth:`cell_edge_weights`.
        """
        if not self.per_cell_weights:
            raise ConfigurationError(f"{type(self).__name__} does not give its cells' edge weights one cell at a time "
                                     "(per_cell_weights), which this part needs; use CNNSearchSpace or "
                                     "NB201SearchSpace.")
        previous, self._cell_hook = self._cell_hook, hook
        try:
            yield
        finally:
            self._cell_hook = previous

    @contextlib.contextmanager
    def projected(self, projection: EdgeProjection) -> Iterator[None]:
        """Run every forward inside the block with ``projection`` applied to the edge weights (selection by
        perturbation, ``darts_pl.selection``); monitors and :meth:`genotype` still read the relaxation's
        probabilities."""
        unknown = sorted(set(projection.keep) - set(self.cell_names))
        if unknown:
            raise ConfigurationError(f"projected: the projection has cell types {unknown}, the space has "
                                     f"{sorted(self.cell_names)}.")
        previous, self._projection = self._projection, projection
        try:
            yield
        finally:
            self._projection = previous

    def edge_scales(self) -> dict[str, torch.Tensor]:
        """The edge normalisation's factor on every edge, ``{cell: (edges,)}``; ``{}`` without it."""
        if self.edge_normalization is None:
            return {}
        return self.edge_normalization.scales(self.arch, self.cell_names, self._in_degrees)

    def edge_probs(self) -> dict[str, torch.Tensor]:
        """The relaxation's probabilities per cell type: ``{cell: (edges, ops)}``, detached, on the CPU."""
        with torch.no_grad():
            return {cell: self.relaxation.probs(self.arch[cell].float()).cpu() for cell in self.cell_names}

    def derivation_probs(self) -> dict[str, torch.Tensor]:
        """What the derivation reads: :meth:`edge_probs`, times each edge's scale with edge normalisation (the
        strength of an op is its probability times its edge's weight, as PC-DARTS's ``genotype()``)."""
        probs = self.edge_probs()
        with torch.no_grad():
            for cell, scale in self.edge_scales().items():
                probs[cell] = probs[cell] * scale.float().cpu()[:, None]  # (edges, ops)
        return probs

    @abstractmethod
    def genotype(self) -> CellGenotype:
        """The discrete cell derived from the current probabilities."""

    def selection_mask(self, genotype: CellGenotype) -> dict[str, torch.Tensor]:
        """The (edge, op) pairs ``genotype`` keeps, ``{cell: (edges, len(primitives)) bool}``, for figures.

        Node ``i`` of a genotype cell reads its inputs over edge rows ``sum(in_degrees[:i]) + input`` (the layout
        of the package's spaces: each node's incoming edges in input order); a space laid out otherwise
        overrides this. ``none`` choices keep nothing."""
        starts = [sum(self._in_degrees[:i]) for i in range(len(self._in_degrees))]
        masks = {}
        for cell, nodes in genotype.cells().items():
            if cell not in self.cell_names:
                continue
            mask = torch.zeros(sum(self._in_degrees), len(self.primitives), dtype=torch.bool)  # (edges, ops)
            for node, choices in enumerate(nodes[:len(starts)]):
                for op, source in choices:
                    if op != "none" and op in self.primitives and 0 <= source < self._in_degrees[node]:
                        mask[starts[node] + source, self.primitives.index(op)] = True
            masks[cell] = mask
        return masks

    def edge_labels(self) -> list[str]:
        """Human-readable edge names, in alpha row order (``"c_{k-2} -> 0"``...)."""
        return [str(i) for i in range(next(iter(self.edge_probs().values())).shape[0])]

    @property
    def primitives(self) -> list[str]:
        raise NotImplementedError

    def describe_parts(self) -> str:
        """One line: the space and its parts (what a run prints at its start)."""
        parts = ", ".join(f"{role} {_short(part)}" for role, part in self.parts().items())
        return f"{type(self).__name__} ({', '.join(self.cell_names)} cells; {len(self.primitives)} ops): {parts}"


def per_edge(weights: EdgeWeights) -> tuple[list[Sequence[torch.Tensor]], list[int | None], list[torch.Tensor | None]]:
    """A cell type's edge weights split per edge: the op weights (scalar tensors by column), the sampled op and the
    scale of every edge (``None`` where absent); the sampled ops with one host sync."""
    rows = [row.unbind(0) for row in weights.weights.unbind(0)]  # (edges, ops) -> per-edge scalars
    index = weights.index.tolist() if weights.index is not None else [None] * len(rows)
    scales = list(weights.scale.unbind(0)) if weights.scale is not None else [None] * len(rows)  # (edges,)
    return rows, index, scales


def _remember_input_shape(space: SearchSpace, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: the shape of one example of an image batch ``(x, y)`` (what op costs are counted at)."""
    batch = args[0] if args else None
    if isinstance(batch, (tuple, list)) and batch and torch.is_tensor(batch[0]) and batch[0].dim() == 4:
        space.input_shape = tuple(batch[0].shape[1:])


def space_of(module: nn.Module) -> SearchSpace | None:
    """The search space a module (``LitSearch``) holds as a direct child, if any."""
    return next((child for child in module.children() if isinstance(child, SearchSpace)), None)


def _short(part: nn.Module) -> str:
    args = part.extra_repr()
    return f"{type(part).__name__}({args})" if args else type(part).__name__


def check_primitives(owner: str, primitives: Sequence[str]) -> None:
    """A space's candidate ops: at least one besides ``none``, each once."""
    shown = primitives if isinstance(primitives, str) else list(primitives)
    if isinstance(primitives, str) or not [name for name in primitives if name != "none"]:
        raise ConfigurationError(f"{owner}: primitives={shown!r} has no op besides 'none'; list the candidate ops of "
                                 "an edge, e.g. [skip_connect, sep_conv_3x3].")
    twice = sorted({name for name in primitives if shown.count(name) > 1})
    if twice:
        raise ConfigurationError(f"{owner}: primitives={shown} names {', '.join(twice)} more than once; list each op "
                                 "once (two columns of one op would split its weight).")


def init_alpha(num_edges: int, num_ops: int, init: Literal["randn", "zeros"], scale: float) -> nn.Parameter:
    """Alphas as the original code initialises them (``scale · N(0, 1)``) or as the paper says (zeros)."""
    if init == "zeros":
        return nn.Parameter(torch.zeros(num_edges, num_ops))
    if init == "randn":
        return nn.Parameter(scale * torch.randn(num_edges, num_ops))
    raise ConfigurationError(f"Unknown alpha_init {init!r}; use 'randn' (original code) or 'zeros' (paper).")
