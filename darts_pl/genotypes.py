"""Genotypes: the discrete cells a search derives, the paper's published cells, JSON I/O and derivation.

Every genotype kind implements one small protocol, :class:`CellGenotype`: its ``kind`` (the JSON field that selects
the class on load), its cells and the ``(op, input)`` choices of each node (:meth:`~CellGenotype.cells`),
``validate``, ``to_dict``/``from_dict``, a plain-text rendering (``describe``) and a graph of each cell for the drawing
code (``cell_graph``). Kinds register themselves by subclassing (``class MyGenotype(CellGenotype, kind="mine")``);
monitors, genotype files, the genotype command, the notebook, the drawings, collapse counts and the trainers use the
protocol only, so a search space of a user's own, with a genotype kind of its own, needs no change here.

The three kinds of the package: a CNN ``Genotype`` lists, for each of the cell's intermediate nodes, two ``(op,
input)`` pairs; inputs ``0`` and ``1`` are the outputs of the two previous cells (c_{k-2}, c_{k-1}), input ``i +
2`` is node ``i``. An ``RNNGenotype`` lists one ``(op, input)`` pair per node; input ``0`` is the first node (the
highway over x_t and h_{t-1}), input ``i`` is node ``i``. An ``NB201Genotype`` (the NAS-Bench-201 cell, Dong &
Yang, 2020) lists, for each computed node ``1..n``, the ``(op, input)`` pairs of its incoming edges; input ``0`` is
the cell input, the cell output is the last node, and the cell is written in the benchmark's architecture string
(``to_nb201_str``, ``from_nb201_str``). Pure data: nothing here imports torch.

Files: ``{"kind": "cnn", "normal": [[op, input], ...], ...}``. Files written before kinds existed (no ``kind``
field) are recognised by their fields. A kind defined outside darts_pl also writes its ``class_path``, so a process
that has not imported it yet (the notebook, ``darts-pl-genotype``) can still read the file.

Derivation follows the original code (Liu et al., 2019, Sec. 2.4): on softmax(alpha) per edge, each
node keeps the ``k`` incoming edges whose strongest non-``none`` op is strongest (k=2 for CNN cells,
k=1 for recurrent cells); each kept edge takes its strongest non-``none`` op. Ties go to the lower index.
"""
from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from darts_pl.atomic import atomic_write
from darts_pl.errors import ConfigurationError

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""The CNN search space's candidate ops, in the original code's order (alpha columns follow it)."""

RNN_PRIMITIVES: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
"""The recurrent search space's candidate ops, in the original code's order."""

EVAL_ONLY_PRIMITIVES: tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")
"""Ops a trained CNN cell may use beyond the search space (the original code defines them too)."""

NB201_PRIMITIVES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The NAS-Bench-201 cell's candidate ops, in the benchmark's order (``NAS_BENCH_201`` in the authors'
``cell_operations.py``; alpha columns follow it)."""


class GenotypeError(ConfigurationError):
    """A genotype that cannot describe a cell: unknown op, bad input index, wrong number of edges."""


Choice = tuple[str, int]
"""One incoming edge of a node: ``(op, input)``."""

G = TypeVar("G", bound="CellGenotype")

GENOTYPE_KINDS: dict[str, type[CellGenotype]] = {}
"""Registered genotype kinds by their ``kind`` (what a file's ``"kind"`` field names)."""

PARAMETER_FREE: frozenset[str] = frozenset({"skip_connect", "max_pool_3x3", "avg_pool_3x3", "identity", "noise"})
"""Ops without weights (``noise``: RobustDARTS's S4): a cell full of them is a collapsed cell."""


@dataclass(frozen=True)
class CellGraph:
    """A derived cell as a graph, for drawing: node names in drawing order and labelled edges (``op`` None:
    unlabelled, e.g. the concatenation into the output)."""

    cell_type: str
    inputs: tuple[str, ...]
    nodes: tuple[str, ...]
    output: str
    edges: tuple[tuple[str, str, str | None], ...]
    reduction: str = "concat"
    """How the output combines its inputs (``concat``, ``mean``, ``sum``), for the text rendering."""


class CellGenotype(ABC):
    """The protocol every genotype kind implements (see the module docstring).

    Subclasses name their kind in the class statement, ``class MyGenotype(CellGenotype, kind="mine")``, which
    registers them, and implement :meth:`cells`, :meth:`validate`, :meth:`fields_dict`, :meth:`from_fields` and
    :meth:`cell_graph`. The rest (JSON, text, collapse counts, comparison) follows from those.

    Class attributes:
        kind: The kind's name in files.
        skip_ops: Ops counted as skip connections (collapse counts).
        collapse_cells: The cells whose skip connections and parameter-free ops the monitors count.
    """

    kind: ClassVar[str] = ""
    skip_ops: ClassVar[frozenset[str]] = frozenset({"skip_connect"})
    collapse_cells: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            GENOTYPE_KINDS[kind] = cls

    # ------------------------------------------------------------------ what a kind implements
    @abstractmethod
    def cells(self) -> dict[str, list[list[Choice]]]:
        """``{cell name: [the (op, input) choices of each node]}``, cells and nodes in order; ``input`` counts the
        node's possible inputs in the order of its incoming edges (the row order of the architecture tensor)."""

    @abstractmethod
    def validate(self: G, ops: Collection[str] | None = None) -> G:
        """Raise :class:`GenotypeError` naming the problem if this cannot describe a cell; else return it.

        Args:
            ops: The op names allowed (a search space's primitives); the kind's known ops when omitted.
        """

    @abstractmethod
    def fields_dict(self) -> dict[str, Any]:
        """The JSON fields besides ``kind`` (lists, strings and numbers only)."""

    @classmethod
    @abstractmethod
    def from_fields(cls: type[G], data: Mapping[str, Any]) -> G:
        """Build (and validate) from what :meth:`fields_dict` writes; :class:`GenotypeError` on bad input."""

    @abstractmethod
    def cell_graph(self, cell: str) -> CellGraph:
        """The graph of one cell, for the drawing code."""

    # ------------------------------------------------------------------ what follows
    @property
    def cell_names(self) -> list[str]:
        return list(self.cells())

    def cell_ops(self, cell: str) -> list[str]:
        """The ops of every edge of ``cell``, ``none`` included, in node order."""
        return [op for node in self._cell(cell) for op, _ in node]

    def _cell(self, cell: str) -> list[list[Choice]]:
        cells = self.cells()
        if cell not in cells:
            raise GenotypeError(f"cell {cell!r} is not a cell of this {self.kind} genotype; use one of "
                                f"{', '.join(cells)}.")
        return cells[cell]

    def cell_counts(self, cell: str) -> dict[str, int]:
        """Skip connections and parameter-free ops of one cell: ``{"num_skip_connect": n, "num_parameter_free": m}``."""
        ops = self.cell_ops(cell)
        return {"num_skip_connect": sum(op in self.skip_ops for op in ops),
                "num_parameter_free": sum(op in PARAMETER_FREE or op in self.skip_ops for op in ops)}

    def collapse_counts(self) -> dict[str, dict[str, int]]:
        """:meth:`cell_counts` of each of :attr:`collapse_cells` (the cells where collapse shows), by cell."""
        return {cell: self.cell_counts(cell) for cell in self.collapse_cells}

    def empty_cells(self) -> list[str]:
        """The cells that keep no op (every edge ``none``): a network built from them passes nothing through."""
        return [cell for cell, nodes in self.cells().items() if all(op == "none" for node in nodes for op, _ in node)]

    def key(self) -> tuple[Any, ...]:
        """What makes two genotypes the same cells: per cell and node the set of ``(op, input)`` choices other than
        ``none`` (an edge that is ``none`` contributes nothing, whatever input it names), plus the kind's fields."""
        cells = tuple((cell, tuple(tuple(sorted(choice for choice in node if choice[0] != "none")) for node in nodes))
                      for cell, nodes in self.cells().items())
        return (self.kind, cells)

    def same_cells(self, other: object) -> bool:
        """Whether ``other`` describes the same cells (:meth:`key`)."""
        return isinstance(other, CellGenotype) and self.key() == other.key()

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., **fields}``; a kind defined outside darts_pl also writes its ``class_path``."""
        data: dict[str, Any] = {"kind": self.kind}
        cls = type(self)
        if not cls.__module__.startswith("darts_pl."):
            data["class_path"] = f"{cls.__module__}.{cls.__qualname__}"
        data.update(self.fields_dict())
        return data

    def describe(self) -> str:
        """A plain-text listing of every cell: which ops feed each node, and what forms the output."""
        lines = []
        for cell in self.cell_names:
            graph = self.cell_graph(cell)
            into: dict[str, list[str]] = {}
            for src, dst, op in graph.edges:
                into.setdefault(dst, []).append(f"{op}({src})" if op else src)
            lines.append(f"{cell} cell: {graph.output} = {graph.reduction}({', '.join(into.get(graph.output, []))})")
            lines += [f"  node {node} <- {', '.join(into.get(node, ['nothing']))}" for node in graph.nodes]
        return "\n".join(lines)


def _tuples(value: Any, field: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"Genotype field {field!r} must be a list, got {value!r}.")
    return [tuple(v) if isinstance(v, (list, tuple)) else v for v in value]


def _plain(value: Sequence[Any]) -> list[Any]:
    return [list(v) if isinstance(v, tuple) else v for v in value]


@dataclass(eq=True)
class Genotype(CellGenotype, kind="cnn"):
    """A convolutional cell pair: ``normal`` and ``reduce`` edges (two ``(op, input)`` per node; inputs 0 and 1 are
    c_{k-2} and c_{k-1}, input ``i + 2`` node ``i``) and which nodes are concatenated into the output."""

    normal: list[Choice]
    normal_concat: list[int]
    reduce: list[Choice]
    reduce_concat: list[int]

    collapse_cells: ClassVar[tuple[str, ...]] = ("normal",)

    def cells(self) -> dict[str, list[list[Choice]]]:
        return {cell: [list(edges[i:i + 2]) for i in range(0, len(edges), 2)]
                for cell, edges in (("normal", self.normal), ("reduce", self.reduce))}

    def validate(self, ops: Collection[str] | None = None) -> Genotype:
        known = tuple(ops) if ops is not None else known_cnn_ops()
        for field in ("normal", "reduce"):
            edges = getattr(self, field)
            _check_edges(edges, field=field, known=known, per_node=2, first_inputs=2)
            _check_concat(getattr(self, f"{field}_concat"), field=f"{field}_concat", num_states=len(edges) // 2 + 2)
        return self

    def fields_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Genotype:
        return cls(**{f.name: _tuples(data[f.name], f.name) for f in fields(cls)}).validate()

    def cell_graph(self, cell: str) -> CellGraph:
        self._cell(cell)
        gene, concat = getattr(self, cell), getattr(self, f"{cell}_concat")
        inputs = ("c_{k-2}", "c_{k-1}")

        def state(index: int) -> str:
            return inputs[index] if index < 2 else str(index - 2)

        edges = [(state(src), str(pos // 2), op) for pos, (op, src) in enumerate(gene)]
        edges += [(state(index), "c_{k}", None) for index in concat]
        return CellGraph(cell, inputs, tuple(str(i) for i in range(len(gene) // 2)), "c_{k}", tuple(edges))

    def key(self) -> tuple[Any, ...]:
        return (*super().key(), tuple(self.normal_concat), tuple(self.reduce_concat))


@dataclass(eq=True)
class RNNGenotype(CellGenotype, kind="rnn"):
    """A recurrent cell: one ``(op, input)`` per node (input 0 is the highway over x_t and h_{t-1}, input ``i``
    node ``i``) and which nodes are averaged into h_t."""

    recurrent: list[Choice]
    concat: list[int]

    skip_ops: ClassVar[frozenset[str]] = frozenset({"identity"})
    collapse_cells: ClassVar[tuple[str, ...]] = ("recurrent",)

    def cells(self) -> dict[str, list[list[Choice]]]:
        return {"recurrent": [[edge] for edge in self.recurrent]}

    def validate(self, ops: Collection[str] | None = None) -> RNNGenotype:
        known = tuple(ops) if ops is not None else known_rnn_ops()
        _check_edges(self.recurrent, field="recurrent", known=known, per_node=1, first_inputs=1)
        _check_concat(self.concat, field="concat", num_states=len(self.recurrent) + 1)
        return self

    def fields_dict(self) -> dict[str, Any]:
        return {"recurrent": _plain(self.recurrent), "concat": list(self.concat)}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> RNNGenotype:
        return cls(_tuples(data["recurrent"], "recurrent"), _tuples(data["concat"], "concat")).validate()

    def cell_graph(self, cell: str) -> CellGraph:
        self._cell(cell)
        inputs = ("x_{t}", "h_{t-1}")
        nodes = tuple(str(i) for i in range(len(self.recurrent) + 1))
        edges = [(name, "0", None) for name in inputs]  # node 0: the highway over x_t and h_{t-1}
        edges += [(str(src), str(pos + 1), op) for pos, (op, src) in enumerate(self.recurrent)]
        edges += [(str(index), "h_{t}", None) for index in self.concat]
        return CellGraph("recurrent", inputs, nodes, "h_{t}", tuple(edges), reduction="mean")

    def key(self) -> tuple[Any, ...]:
        return (*super().key(), tuple(self.concat))


@dataclass(eq=True)
class NB201Genotype(CellGenotype, kind="nb201"):
    """A NAS-Bench-201 cell: ``nodes[i]`` holds the ``(op, input)`` pairs feeding node ``i + 1``; input ``0`` is
    the cell input, input ``j`` node ``j``; the cell output is the last node. ``str()`` gives the benchmark's
    architecture string (``|nor_conv_3x3~0|+|...|``), as the authors' ``Structure.tostr``."""

    nodes: list[tuple[Choice, ...]]

    collapse_cells: ClassVar[tuple[str, ...]] = ("cell",)

    def cells(self) -> dict[str, list[list[Choice]]]:
        return {"cell": [list(node) for node in self.nodes]}

    def validate(self, ops: Collection[str] | None = None) -> NB201Genotype:
        _check_nb201(self, tuple(ops) if ops is not None else known_nb201_ops())
        return self

    def fields_dict(self) -> dict[str, Any]:
        return {"nb201": to_nb201_str(self), "nodes": [[list(e) for e in node] for node in self.nodes]}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> NB201Genotype:
        return _nb201_from_dict(data)

    def cell_graph(self, cell: str) -> CellGraph:
        self._cell(cell)  # node 0 is the input, the last node the output; `none` edges are absent
        last = str(len(self.nodes))
        edges = [(str(j), str(i), op) for i, node in enumerate(self.nodes, start=1) for op, j in node if op != "none"]
        return CellGraph("cell", ("0",), tuple(str(i) for i in range(1, len(self.nodes))), last, tuple(edges),
                         reduction="sum")

    def describe(self) -> str:
        lines = [f"NB201 cell: {to_nb201_str(self)} (node 0: input; output: node {len(self.nodes)})"]
        lines += [f"  node {i} <- {', '.join(f'{op}({j})' for op, j in node)}" for i, node in enumerate(self.nodes, 1)]
        return "\n".join(lines)

    def tostr(self) -> str:
        return to_nb201_str(self)

    def __str__(self) -> str:
        return to_nb201_str(self)


AnyGenotype = CellGenotype
"""Any registered genotype kind (the protocol)."""

# The paper's cells, as published with the original code (cnn/genotypes.py, rnn/genotypes.py).
DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5],
)
"""First-order DARTS CIFAR-10 cell (paper Fig. 4 companion, 3.0% test error)."""

DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)
"""Second-order DARTS CIFAR-10 cell (paper Fig. 4-5, 2.76% test error, 3.3M parameters)."""

DARTS = DARTS_V2

RNN_DARTS_V1 = RNNGenotype(
    recurrent=[("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4), ("identity", 1),
               ("relu", 5), ("relu", 1)],
    concat=list(range(1, 9)),
)
"""First-order DARTS recurrent cell."""

RNN_DARTS_V2 = RNNGenotype(
    recurrent=[("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2),
               ("sigmoid", 5), ("tanh", 3), ("relu", 5)],
    concat=list(range(1, 9)),
)
"""Second-order DARTS recurrent cell (paper Fig. 6, 55.7 PTB test perplexity)."""

PUBLISHED: dict[str, CellGenotype] = {
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "DARTS": DARTS_V2,
    "RNN_DARTS_V1": RNN_DARTS_V1,
    "RNN_DARTS_V2": RNN_DARTS_V2,
    "RNN_DARTS": RNN_DARTS_V2,
}
"""Published genotypes by name; ``--model.genotype DARTS_V2`` looks a name up here."""


# ----------------------------------------------------------------------------------------- validation
def _check_edges(edges: Sequence[Choice], *, field: str, known: Sequence[str],
                 per_node: int, first_inputs: int) -> None:
    if len(edges) == 0 or len(edges) % per_node:
        raise GenotypeError(
            f"Genotype field {field!r} has {len(edges)} edges; it needs {per_node} per node "
            f"(a multiple of {per_node}, at least {per_node}).")
    for pos, edge in enumerate(edges):
        if not (isinstance(edge, (tuple, list)) and len(edge) == 2):
            raise GenotypeError(f"Genotype field {field!r}, edge {pos}: expected [op, input], got {edge!r}.")
        op, index = edge
        node = pos // per_node
        if op not in known:
            raise GenotypeError(f"Genotype field {field!r}, edge {pos}: unknown op {op!r}; known: {', '.join(known)}.")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < node + first_inputs:
            raise GenotypeError(
                f"Genotype field {field!r}, edge {pos} (node {node}): input index {index!r} out of range; "
                f"node {node} may read inputs 0..{node + first_inputs - 1}.")


def _check_concat(concat: Sequence[int], *, field: str, num_states: int) -> None:
    if len(concat) == 0:
        raise GenotypeError(f"Genotype field {field!r} is empty; list the nodes whose outputs form the cell output.")
    for index in concat:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_states:
            raise GenotypeError(f"Genotype field {field!r}: node index {index!r} out of range 0..{num_states - 1}.")
    twice = sorted({index for index in concat if list(concat).count(index) > 1})
    if twice:
        raise GenotypeError(f"Genotype field {field!r} = {list(concat)} lists node {twice[0]} more than once; list "
                            "each node whose output forms the cell output once.")


def known_cnn_ops() -> tuple[str, ...]:
    """Op names a CNN genotype may use: the paper's, and every name registered in ``darts_pl.ops.OPS``
    (a user's own op registered there saves and loads like the built-in ones)."""
    try:
        from darts_pl.ops import OPS  # imports torch: only when validating a CNN genotype
    except ImportError:  # reading genotypes without torch installed
        return PRIMITIVES + EVAL_ONLY_PRIMITIVES
    return tuple(dict.fromkeys((*PRIMITIVES, *EVAL_ONLY_PRIMITIVES, *OPS)))


def known_rnn_ops() -> tuple[str, ...]:
    """Op names a recurrent genotype may use: the paper's and every name in ``darts_pl.networks.rnn.ACTIVATIONS``."""
    try:
        from darts_pl.networks.rnn import ACTIVATIONS
    except ImportError:
        return RNN_PRIMITIVES
    return tuple(dict.fromkeys((*RNN_PRIMITIVES, *ACTIVATIONS)))


def known_nb201_ops() -> tuple[str, ...]:
    """Op names an NB201 cell may use: the benchmark's, and every name registered in ``darts_pl.ops.OPS``."""
    try:
        from darts_pl.ops import OPS
    except ImportError:
        return NB201_PRIMITIVES
    return tuple(dict.fromkeys((*NB201_PRIMITIVES, *OPS)))


def _check_nb201(genotype: NB201Genotype, known: Sequence[str]) -> None:
    if not isinstance(genotype.nodes, (list, tuple)) or len(genotype.nodes) == 0:
        raise GenotypeError(f"NB201 genotype field 'nodes' must list the edges of at least one node, got "
                            f"{genotype.nodes!r}.")
    for i, node in enumerate(genotype.nodes, start=1):
        if not isinstance(node, (list, tuple)) or len(node) == 0:
            raise GenotypeError(f"NB201 genotype, node {i}: expected a non-empty list of [op, input], got {node!r}.")
        for edge in node:
            if not (isinstance(edge, (tuple, list)) and len(edge) == 2):
                raise GenotypeError(f"NB201 genotype, node {i}: expected [op, input], got {edge!r}.")
            op, index = edge
            if op not in known:
                raise GenotypeError(f"NB201 genotype, node {i}: unknown op {op!r}; known: {', '.join(known)}.")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < i:
                raise GenotypeError(f"NB201 genotype, node {i}: input index {index!r} out of range; node {i} may "
                                    f"read nodes 0..{i - 1}.")


def validate(genotype: Any) -> CellGenotype:
    """Raise ``GenotypeError`` naming the problem if ``genotype`` cannot describe a cell; else return it."""
    if not isinstance(genotype, CellGenotype):
        raise GenotypeError(f"Expected a genotype (one of the kinds {', '.join(GENOTYPE_KINDS)}), got "
                            f"{type(genotype).__name__}.")
    return genotype.validate()


# ----------------------------------------------------------------------------------------- JSON I/O
def to_dict(genotype: CellGenotype) -> dict[str, Any]:
    """A JSON-ready mapping, ``{"kind": ..., **fields}`` (edges become ``[op, input]`` lists; an NB201 cell also
    gets its architecture string, ``nb201``)."""
    return validate(genotype).to_dict()


_LEGACY_FIELDS: dict[frozenset[str], str] = {
    frozenset({"normal", "normal_concat", "reduce", "reduce_concat"}): "cnn",
    frozenset({"recurrent", "concat"}): "rnn",
    frozenset({"nodes"}): "nb201", frozenset({"nb201"}): "nb201", frozenset({"nodes", "nb201"}): "nb201",
}
"""Files written before the ``kind`` field existed, recognised by their fields."""


def _kind_class(data: Mapping[str, Any]) -> type[CellGenotype]:
    kind = data.get("kind")
    if kind is None:
        legacy = _LEGACY_FIELDS.get(frozenset(data))
        if legacy is None:
            raise GenotypeError(
                f"A genotype mapping has fields {sorted(data)} and no 'kind'; expected {{'kind': one of "
                f"{sorted(GENOTYPE_KINDS)}, ...}}, or the fields of an earlier file: "
                f"{sorted(fields_of(Genotype))} (CNN), {sorted(fields_of(RNNGenotype))} (recurrent) or ['nb201'] "
                "and/or ['nodes'] (NAS-Bench-201).")
        return GENOTYPE_KINDS[legacy]
    if kind not in GENOTYPE_KINDS and isinstance(data.get("class_path"), str):
        _import_kind(data["class_path"], kind)
    if kind not in GENOTYPE_KINDS:
        raise GenotypeError(f"Unknown genotype kind {kind!r}; known: {', '.join(sorted(GENOTYPE_KINDS))} (a kind of "
                            "your own is known once its module is imported, or when the file names its class_path).")
    return GENOTYPE_KINDS[kind]


def _import_kind(class_path: str, kind: str) -> None:
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise GenotypeError(f"Genotype kind {kind!r}: cannot import its class {class_path!r} ({err}); install or put "
                            "on the Python path the package that defines it.") from None
    if not (isinstance(cls, type) and issubclass(cls, CellGenotype)):
        raise GenotypeError(f"Genotype kind {kind!r}: {class_path!r} is not a darts_pl.genotypes.CellGenotype.")


def fields_of(cls: type[CellGenotype]) -> list[str]:
    """The JSON fields of a dataclass genotype kind."""
    return [f.name for f in fields(cls)]  # type: ignore[arg-type]


def from_dict(data: Mapping[str, Any]) -> CellGenotype:
    """Build and validate a genotype from the mapping ``to_dict`` writes (or an inline YAML mapping, or a file of an
    earlier release without ``kind``)."""
    if not isinstance(data, Mapping):
        raise GenotypeError(f"A genotype must be a mapping such as {{'kind': 'cnn', 'normal': ..., ...}}; got "
                            f"{type(data).__name__}.")
    cls = _kind_class(data)
    body = {k: v for k, v in data.items() if k not in ("kind", "class_path")}
    expected = set(fields_of(cls)) if cls in (Genotype, RNNGenotype) else None
    if expected is not None and set(body) != expected:
        raise GenotypeError(f"A {cls.kind} genotype mapping has fields {sorted(body)}; expected {sorted(expected)}.")
    return cls.from_fields(body)


def _nb201_from_dict(data: Mapping[str, Any]) -> NB201Genotype:
    """An NB201 cell from ``{"nb201": string}``, ``{"nodes": [...]}`` or both (which must agree)."""
    unknown = sorted(set(data) - {"nodes", "nb201"})
    if unknown or not data:
        raise GenotypeError(f"An nb201 genotype mapping has fields {sorted(data)}; expected ['nb201'] and/or "
                            "['nodes'].")
    from_string = from_nb201_str(data["nb201"]) if "nb201" in data else None
    if "nodes" not in data:
        assert from_string is not None
        return from_string
    nodes = data["nodes"]
    if not isinstance(nodes, (list, tuple)) or not all(isinstance(node, (list, tuple)) for node in nodes):
        raise GenotypeError(f"NB201 genotype field 'nodes' must be a list of lists of [op, input], got {nodes!r}.")
    genotype = NB201Genotype([tuple(tuple(e) if isinstance(e, (list, tuple)) else e for e in node)
                              for node in nodes]).validate()
    if from_string is not None and from_string != genotype:
        raise GenotypeError(f"NB201 genotype: 'nb201' {data['nb201']!r} and 'nodes' ({to_nb201_str(genotype)!r}) "
                            "describe different cells; keep one of them.")
    return genotype


# ----------------------------------------------------------------------------------------- NAS-Bench-201 string
def to_nb201_str(genotype: NB201Genotype) -> str:
    """The benchmark's architecture string, ``|op~input|...|+|...|``, one ``+``-separated group per node (the
    authors' ``Structure.tostr``); look it up in NAS-Bench-201 / NATS-Bench."""
    return "+".join("|" + "|".join(f"{op}~{index}" for op, index in node) + "|" for node in genotype.nodes)


def from_nb201_str(text: str) -> NB201Genotype:
    """Parse an architecture string (the authors' ``Structure.str2structure``); ``to_nb201_str`` gives it back."""
    if not isinstance(text, str) or not text.startswith("|") or not text.endswith("|"):
        raise GenotypeError(f"NB201 architecture string {text!r} must look like "
                            "'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|'.")
    nodes = []
    for i, group in enumerate(text.split("+"), start=1):
        if not (group.startswith("|") and group.endswith("|")):
            raise GenotypeError(f"NB201 architecture string {text!r}: node {i} {group!r} must start and end with '|'.")
        edges = []
        for item in filter(None, group.split("|")):
            op, sep, index = item.partition("~")
            if not sep or not index.isdigit():
                raise GenotypeError(f"NB201 architecture string {text!r}: node {i}: {item!r} is not 'op~input'.")
            edges.append((op, int(index)))
        nodes.append(tuple(edges))
    return NB201Genotype(nodes).validate()


def dumps(genotype: CellGenotype) -> str:
    return json.dumps(to_dict(genotype), indent=2)


def save(genotype: CellGenotype, path: str | os.PathLike[str]) -> Path:
    """Write ``genotype`` as JSON, atomically (a crash leaves the old file or the new one, never half of one)."""
    return atomic_write(path, dumps(genotype) + "\n")


def load(path: str | os.PathLike[str]) -> CellGenotype:
    """Read a genotype JSON file written by ``save`` (or by a search's ``GenotypeCheckpoint``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GenotypeError(f"Genotype file {str(path)!r} does not exist; pass a published name "
                            f"({', '.join(PUBLISHED)}) or the path of a genotype.json.") from None
    except IsADirectoryError:
        raise GenotypeError(f"Genotype path {str(path)!r} is a directory; pass the genotype.json file in it (a "
                            "search writes <run>/genotype.json) or a published name.") from None
    except UnicodeDecodeError as err:
        raise GenotypeError(f"Genotype file {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start}); pass "
                            "a genotype.json written by a search or by darts_pl.genotypes.save.") from None
    except OSError as err:
        raise GenotypeError(f"Genotype file {str(path)!r} cannot be read ({err.strerror}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GenotypeError(f"Genotype file {str(path)!r} is not valid JSON ({err}).") from None
    return from_dict(data)


def resolve(spec: str | os.PathLike[str] | Mapping[str, Any] | CellGenotype) -> CellGenotype:
    """A genotype from a published name (``DARTS_V2``), a JSON path, a mapping, an NB201 string, or a genotype."""
    if isinstance(spec, CellGenotype):
        return validate(spec)
    if isinstance(spec, Mapping):
        return from_dict(spec)
    text = str(spec)
    if text in PUBLISHED:
        return PUBLISHED[text]
    if text.startswith("|"):
        return from_nb201_str(text)
    if text.endswith(".json") or os.sep in text or Path(text).exists():
        return load(text)
    raise GenotypeError(f"Unknown genotype {text!r}; use a published name ({', '.join(PUBLISHED)}), "
                        "the path of a genotype.json written by a search, or a NAS-Bench-201 architecture string.")


def expect_kind(spec: str | os.PathLike[str] | Mapping[str, Any] | CellGenotype, kind: str, needs: str) -> CellGenotype:
    """:func:`resolve` ``spec`` and check it is of ``kind``; else a :class:`GenotypeError` saying it is another kind's
    cell and what is needed (``needs``: e.g. "a CNN genotype (DARTS_V2, or the genotype.json of a CNN search)")."""
    genotype = resolve(spec)
    if genotype.kind != kind:
        shown = _KIND_NAMES.get(genotype.kind, genotype.kind)
        raise GenotypeError(f"genotype={spec!r} is a {shown} cell; this network needs {needs}.")
    return genotype


_KIND_NAMES = {"cnn": "convolutional", "rnn": "recurrent", "nb201": "NAS-Bench-201"}


# ----------------------------------------------------------------------------------------- derivation
EdgeSelection = Callable[..., "list[tuple[str, int]]"]
"""``select(probs, primitives, *, num_nodes, first_inputs, k) -> [(op, input), ...]``: the cell's edges."""


def top_k_edges(probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
                first_inputs: int, k: int) -> list[tuple[str, int]]:
    """Keep the ``k`` strongest incoming edges of each node; name the strongest non-``none`` op on each."""
    none = primitives.index("none") if "none" in primitives else -1
    expected = sum(first_inputs + i for i in range(num_nodes))
    if len(probs) != expected:
        raise ValueError(f"Expected probabilities for {expected} edges ({num_nodes} nodes), got {len(probs)}.")

    def best_op(row: Sequence[float]) -> int:
        candidates = [j for j in range(len(row)) if j != none]
        return max(candidates, key=lambda j: (row[j], -j))  # ties: the lower index

    gene: list[tuple[str, int]] = []
    start = 0
    for node in range(num_nodes):
        n_in = first_inputs + node
        rows = probs[start:start + n_in]
        strength = [rows[i][best_op(rows[i])] for i in range(n_in)]
        kept = sorted(range(n_in), key=lambda i: (-strength[i], i))[:k]
        for i in kept:
            gene.append((primitives[best_op(rows[i])], i))
        start += n_in
    return gene


def derive_cnn(normal_probs: Sequence[Sequence[float]], reduce_probs: Sequence[Sequence[float]],
               *, num_nodes: int = 4, multiplier: int = 4,
               primitives: Sequence[str] = PRIMITIVES, select: EdgeSelection = top_k_edges,
               reduce_select: EdgeSelection | None = None) -> Genotype:
    """The CNN genotype of per-edge probabilities (edges × ops), k=2 inputs per node; ``select`` picks the
    edges of each cell (DARTS's top-k by default), ``reduce_select`` those of the reduction cell if it differs."""
    concat = list(range(2 + num_nodes - multiplier, num_nodes + 2))
    normal = select(normal_probs, primitives, num_nodes=num_nodes, first_inputs=2, k=2)
    reduce = (reduce_select or select)(reduce_probs, primitives, num_nodes=num_nodes, first_inputs=2, k=2)
    return Genotype(normal=normal, normal_concat=_connected(concat, normal, 2),
                    reduce=reduce, reduce_concat=_connected(concat, reduce, 2))


def _connected(concat: list[int], edges: Sequence[tuple[str, int]], k: int) -> list[int]:
    """``concat`` without the nodes whose every edge a derivation dropped (``none``); all of ``concat`` when no
    node kept an edge (an all-``none`` cell, e.g. before any FairDARTS weight reaches its threshold)."""
    kept = [n for n in concat if any(op != "none" for op, _ in edges[(n - 2) * k:(n - 1) * k])]
    return kept or concat


def derive_rnn(probs: Sequence[Sequence[float]], *, num_nodes: int = 8,
               primitives: Sequence[str] = RNN_PRIMITIVES, select: EdgeSelection = top_k_edges) -> RNNGenotype:
    """The recurrent genotype of per-edge probabilities (edges × ops), k=1 input per node."""
    return RNNGenotype(
        recurrent=select(probs, primitives, num_nodes=num_nodes, first_inputs=1, k=1),
        concat=list(range(1, num_nodes + 1)),
    )


def argmax_edges(probs: Sequence[Sequence[float]], primitives: Sequence[str], *, num_nodes: int,
                 first_inputs: int, k: int = 0) -> list[tuple[str, int]]:
    """Every edge, each with its strongest op, ``none`` included (NAS-Bench-201's derivation: the authors'
    ``genotype()`` of their NB201 supernets takes the argmax over all ops of each edge); ties go to the lower
    index. ``k`` is ignored: every edge is kept."""
    expected = sum(first_inputs + i for i in range(num_nodes))
    if len(probs) != expected:
        raise ValueError(f"Expected probabilities for {expected} edges ({num_nodes} nodes), got {len(probs)}.")
    gene: list[tuple[str, int]] = []
    start = 0
    for node in range(num_nodes):
        for j in range(first_inputs + node):
            row = probs[start + j]
            gene.append((primitives[max(range(len(row)), key=lambda op: (row[op], -op))], j))
        start += first_inputs + node
    return gene


def derive_nb201(probs: Sequence[Sequence[float]], *, num_nodes: int = 4, primitives: Sequence[str] = NB201_PRIMITIVES,
                 select: EdgeSelection = argmax_edges) -> NB201Genotype:
    """The NB201 cell of per-edge probabilities (edges × ops) of a cell with ``num_nodes`` nodes, the input
    included (edge rows ``1<-0, 2<-0, 2<-1, 3<-0, ...``). ``select`` must name one op per edge (``argmax_edges``,
    the benchmark's; ``top_k_edges`` with ``k = num_nodes - 1`` keeps every edge with its strongest non-``none``
    op); each node's edges are listed by input."""
    computed = num_nodes - 1
    gene = select(probs, primitives, num_nodes=computed, first_inputs=1, k=computed)
    nodes, start = [], 0
    for i in range(1, num_nodes):
        edges = sorted(gene[start:start + i], key=lambda e: e[1])
        if [j for _, j in edges] != list(range(i)):
            raise ConfigurationError(
                f"The derivation gave node {i} the edges {edges}; a NAS-Bench-201 cell needs one op on each of its "
                f"inputs 0..{i - 1}. Use darts_pl.search.ArgmaxPerEdge (the benchmark's) or TopK.")
        nodes.append(tuple(edges))
        start += i
    if start != len(gene):
        raise ConfigurationError(f"The derivation gave {len(gene)} edges for a NAS-Bench-201 cell of {start} edges; "
                                 "use darts_pl.search.ArgmaxPerEdge (the benchmark's) or TopK.")
    return NB201Genotype(nodes)
