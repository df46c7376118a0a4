"""Genotypes: the discrete cells DARTS derives, the paper's published cells, JSON I/O and derivation.

A CNN ``Genotype`` lists, for each of the cell's intermediate nodes, two ``(op, input)`` pairs; inputs
``0`` and ``1`` are the outputs of the two previous cells (c_{k-2}, c_{k-1}), input ``i + 2`` is node
``i``. An ``RNNGenotype`` lists one ``(op, input)`` pair per node; input ``0`` is the first node (the
highway over x_t and h_{t-1}), input ``i`` is node ``i``. An ``NB201Genotype`` (the NAS-Bench-201 cell,
Dong & Yang, 2020) lists, for each computed node ``1..n``, the ``(op, input)`` pairs of its incoming edges;
input ``0`` is the cell input, the cell output is the last node, and the cell is written in the benchmark's
architecture string (``to_nb201_str``, ``from_nb201_str``). Pure data: nothing here imports torch.

Derivation follows the original code (Liu et al., 2019, Sec. 2.4): on softmax(alpha) per edge, each
node keeps the ``k`` incoming edges whose strongest non-``none`` op is strongest (k=2 for CNN cells,
k=1 for recurrent cells); each kept edge takes its strongest non-``none`` op. Ties go to the lower index.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union

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


class Genotype(NamedTuple):
    """A convolutional cell pair: ``normal`` and ``reduce`` edges and which nodes are concatenated."""

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]


class RNNGenotype(NamedTuple):
    """A recurrent cell: one ``(op, input)`` per node and which nodes are averaged into h_t."""

    recurrent: list[tuple[str, int]]
    concat: list[int]


class NB201Genotype(NamedTuple):
    """A NAS-Bench-201 cell: ``nodes[i]`` holds the ``(op, input)`` pairs feeding node ``i + 1``; input ``0`` is
    the cell input, input ``j`` node ``j``; the cell output is the last node. ``str()`` gives the benchmark's
    architecture string (``|nor_conv_3x3~0|+|...|``), as the authors' ``Structure.tostr``."""

    nodes: list[tuple[tuple[str, int], ...]]

    def tostr(self) -> str:
        return to_nb201_str(self)

    def __str__(self) -> str:
        return to_nb201_str(self)


AnyGenotype = Union[Genotype, RNNGenotype, NB201Genotype]

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

PUBLISHED: dict[str, AnyGenotype] = {
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "DARTS": DARTS_V2,
    "RNN_DARTS_V1": RNN_DARTS_V1,
    "RNN_DARTS_V2": RNN_DARTS_V2,
    "RNN_DARTS": RNN_DARTS_V2,
}
"""Published genotypes by name; ``--model.genotype DARTS_V2`` looks a name up here."""


# ----------------------------------------------------------------------------------------- validation
def _check_edges(edges: Sequence[tuple[str, int]], *, field: str, known: Sequence[str],
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


def _check_nb201(genotype: NB201Genotype) -> None:
    if not isinstance(genotype.nodes, (list, tuple)) or len(genotype.nodes) == 0:
        raise GenotypeError(f"NB201 genotype field 'nodes' must list the edges of at least one node, got "
                            f"{genotype.nodes!r}.")
    known = known_nb201_ops()
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


def validate(genotype: AnyGenotype) -> AnyGenotype:
    """Raise ``GenotypeError`` naming the problem if ``genotype`` cannot describe a cell; else return it."""
    if isinstance(genotype, NB201Genotype):
        _check_nb201(genotype)
        return genotype
    if isinstance(genotype, Genotype):
        known = known_cnn_ops()
        for field in ("normal", "reduce"):
            edges = getattr(genotype, field)
            _check_edges(edges, field=field, known=known, per_node=2, first_inputs=2)
            _check_concat(getattr(genotype, f"{field}_concat"), field=f"{field}_concat",
                          num_states=len(edges) // 2 + 2)
        return genotype
    if isinstance(genotype, RNNGenotype):
        _check_edges(genotype.recurrent, field="recurrent", known=known_rnn_ops(), per_node=1, first_inputs=1)
        _check_concat(genotype.concat, field="concat", num_states=len(genotype.recurrent) + 1)
        return genotype
    raise GenotypeError(f"Expected a Genotype or RNNGenotype, got {type(genotype).__name__}.")


# ----------------------------------------------------------------------------------------- JSON I/O
def to_dict(genotype: AnyGenotype) -> dict[str, Any]:
    """A JSON-ready mapping; edges become ``[op, input]`` lists. An NB201 cell also gets its architecture
    string, ``nb201``."""
    if isinstance(genotype, NB201Genotype):
        return {"nb201": to_nb201_str(genotype), "nodes": [[list(e) for e in node] for node in genotype.nodes]}
    return {field: [list(e) if isinstance(e, tuple) else e for e in value]
            for field, value in genotype._asdict().items()}


def from_dict(data: Mapping[str, Any]) -> AnyGenotype:
    """Build and validate a genotype from the mapping ``to_dict`` writes (or an inline YAML mapping)."""
    if not isinstance(data, Mapping):
        raise GenotypeError(f"A genotype must be a mapping with fields {Genotype._fields} or "
                            f"{RNNGenotype._fields}; got {type(data).__name__}.")
    keys = set(data)
    if keys and keys <= {"nodes", "nb201"}:
        return _nb201_from_dict(data)
    for cls in (Genotype, RNNGenotype):
        if keys == set(cls._fields):
            fields = {}
            for name in cls._fields:
                value = data[name]
                if not isinstance(value, (list, tuple)):
                    raise GenotypeError(f"Genotype field {name!r} must be a list, got {value!r}.")
                fields[name] = [tuple(v) if isinstance(v, (list, tuple)) else v for v in value]
            return validate(cls(**fields))
    raise GenotypeError(
        f"A genotype mapping has fields {sorted(keys)}; expected {list(Genotype._fields)} (CNN), "
        f"{list(RNNGenotype._fields)} (recurrent) or ['nb201'] and/or ['nodes'] (NAS-Bench-201).")


def _nb201_from_dict(data: Mapping[str, Any]) -> NB201Genotype:
    """An NB201 cell from ``{"nb201": string}``, ``{"nodes": [...]}`` or both (which must agree)."""
    from_string = from_nb201_str(data["nb201"]) if "nb201" in data else None
    if "nodes" not in data:
        assert from_string is not None
        return from_string
    nodes = data["nodes"]
    if not isinstance(nodes, (list, tuple)) or not all(isinstance(node, (list, tuple)) for node in nodes):
        raise GenotypeError(f"NB201 genotype field 'nodes' must be a list of lists of [op, input], got {nodes!r}.")
    genotype = NB201Genotype([tuple(tuple(e) if isinstance(e, (list, tuple)) else e for e in node)
                              for node in nodes])
    validate(genotype)
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
    return validate(NB201Genotype(nodes))


def dumps(genotype: AnyGenotype) -> str:
    return json.dumps(to_dict(genotype), indent=2)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path`` (``darts_pl.atomic``).

    A crash at any point leaves either the old file or the new one, never a half-written file; the file
    gets the mode the user's umask gives.
    """
    return atomic_write(path, text)


def save(genotype: AnyGenotype, path: str | os.PathLike[str]) -> Path:
    """Write ``genotype`` as JSON, atomically."""
    return atomic_write_text(path, dumps(validate(genotype)) + "\n")


def load(path: str | os.PathLike[str]) -> AnyGenotype:
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


def resolve(spec: str | os.PathLike[str] | Mapping[str, Any] | AnyGenotype) -> AnyGenotype:
    """A genotype from a published name (``DARTS_V2``), a JSON path, a mapping, or a genotype."""
    if isinstance(spec, (Genotype, RNNGenotype, NB201Genotype)):
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
