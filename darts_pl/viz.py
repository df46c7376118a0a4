"""Pictures of a search: cell diagrams, a plain-text listing of a genotype, and alpha heatmaps.

Cell diagrams follow the figures of the paper (Liu et al., 2019, Fig. 4-6): a convolutional cell reads
the outputs of the two previous cells, c_{k-2} and c_{k-1}, its intermediate nodes each sum two
operations, and c_{k} concatenates the nodes; a recurrent cell starts from a node fed by x_t and
h_{t-1}, each further node applies one activation, and h_t averages the nodes.

Diagrams are drawn with matplotlib, laying the nodes out in ranks the way graphviz's ``dot`` would
(a node sits one column right of its deepest input). When the ``dot`` binary is on the PATH and
``engine="auto"``, graphviz renders instead (the original code's ``visualize.py`` look); without it
nothing fails. Every function that returns a figure builds it without ``pyplot`` (no global state,
no GUI backend) unless it is handed an ``ax`` to draw into, which is how a notebook uses them.

Example::

    from darts_pl.genotypes import DARTS_V2
    from darts_pl.viz import save_cell_diagram

    save_cell_diagram(DARTS_V2, "darts_v2.png")  # normal and reduce cells side by side
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as MplPath

from darts_pl.atomic import atomic_write
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import CellGenotype, CellGraph, validate

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Engine = Literal["auto", "matplotlib", "graphviz"]
FORMATS = ("png", "pdf", "svg")

OP_COLORS: dict[str, str] = {
    "none": "#9e9e9e",
    "max_pool_3x3": "#2e7d32",
    "avg_pool_3x3": "#66bb6a",
    "skip_connect": "#c62828",
    "sep_conv_3x3": "#1565c0",
    "sep_conv_5x5": "#42a5f5",
    "sep_conv_7x7": "#0d47a1",
    "dil_conv_3x3": "#6a1b9a",
    "dil_conv_5x5": "#ab47bc",
    "conv_7x1_1x7": "#37474f",
    "tanh": "#1565c0",
    "relu": "#6a1b9a",
    "sigmoid": "#2e7d32",
    "identity": "#c62828",
    "nor_conv_1x1": "#42a5f5",
    "nor_conv_3x3": "#1565c0",
}
"""Edge colors by op: convolutions blue/purple, pooling green, skip connections red."""

_FILL = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}  # graphviz darkseagreen2/lightblue/palegoldenrod


# ----------------------------------------------------------------------------------------- the cell as a graph
def cell_types(genotype: CellGenotype) -> list[str]:
    """The cells a genotype describes: ``["normal", "reduce"]``, ``["recurrent"]``, ``["cell"]`` (NB201)..."""
    return validate(genotype).cell_names


def cell_graph(genotype: CellGenotype, cell_type: str) -> CellGraph:
    """The graph of one cell of ``genotype`` (the genotype kind's own :meth:`~CellGenotype.cell_graph`)."""
    names = cell_types(genotype)
    if cell_type not in names:
        raise ConfigurationError(f"cell_type={cell_type!r} is not a cell of this genotype; use one of "
                                 f"{', '.join(names)}.")
    return genotype.cell_graph(cell_type)


# ----------------------------------------------------------------------------------------- text
def describe(genotype: CellGenotype) -> str:
    """A plain-text listing of every cell: which ops feed each node, and what forms the output."""
    return validate(genotype).describe()


def _ranks(graph: CellGraph) -> dict[str, int]:
    """Column of each node: inputs 0, a node one right of its deepest input, the output last."""
    rank = dict.fromkeys(graph.inputs, 0)
    for node in graph.nodes:  # nodes only read earlier states, so one pass in order suffices
        sources = [src for src, dst, _ in graph.edges if dst == node]
        rank[node] = 1 + max((rank[src] for src in sources), default=0)
    rank[graph.output] = 1 + max(rank.values())
    return rank


def layout(graph: CellGraph, dx: float = 2.6, dy: float = 1.4) -> dict[str, tuple[float, float]]:
    """Node positions: ranks left to right; within a rank, ordered by the mean height of the inputs."""
    rank = _ranks(graph)
    columns: dict[int, list[str]] = {}
    for name in (*graph.inputs, *graph.nodes, graph.output):
        columns.setdefault(rank[name], []).append(name)
    pos: dict[str, tuple[float, float]] = {}
    for r in sorted(columns):
        names = columns[r]
        if r > 0:
            def mean_y(name: str) -> float:
                ys = [pos[src][1] for src, dst, _ in graph.edges if dst == name and src in pos]
                return -float(np.mean(ys)) if ys else 0.0
            names = sorted(names, key=lambda n: (mean_y(n), names.index(n)))
        for k, name in enumerate(names):
            pos[name] = (r * dx, ((len(names) - 1) / 2 - k) * dy)
    return pos


_RADS = (0.0, -0.15, 0.15, -0.3, 0.3, -0.45, 0.45, -0.6, 0.6)  # arc3 curvatures to try, least bent first
_LABEL = (0.95, 0.26)  # an edge label's extent in layout units (sep_conv_3x3 at 7 pt), width and height


def _bezier(a: np.ndarray, b: np.ndarray, rad: float, t: np.ndarray) -> np.ndarray:
    """Points of the arc matplotlib's arc3 draws: a quadratic Bezier with control point mid + rad · (dy, -dx)."""
    control = (a + b) / 2 + rad * np.array([b[1] - a[1], -(b[0] - a[0])])
    t = t[:, None]  # (T, 1)
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t ** 2 * b  # (T, 2)


def _min_distance(points: np.ndarray, others: np.ndarray) -> float:
    if len(others) == 0:
        return float("inf")
    return float(np.linalg.norm(points[:, None, :] - others[None], axis=-1).min())


def _route(graph: CellGraph, pos: dict[str, tuple[float, float]]) -> list[float]:
    """A curvature per edge: the least bent one that clears the other nodes and, for labelled edges, the labels
    and the middle of the labelled edges placed so far; when none does, the one that violates least."""
    body, middle = np.linspace(0.08, 0.92, 22), np.linspace(0.3, 0.7, 9)
    labels: list[np.ndarray] = []
    curves: list[np.ndarray] = []
    rads = []
    for src, dst, op in graph.edges:
        a, b = np.array(pos[src]), np.array(pos[dst])
        nodes = np.array([xy for name, xy in pos.items() if name not in (src, dst)])
        best, best_cost = 0.0, float("inf")
        for rad in _RADS:
            node_gap = _min_distance(_bezier(a, b, rad, body), nodes)
            mid = _bezier(a, b, rad, np.array([0.5]))[0]
            label_hits = sum(bool(np.all(np.abs(mid - other) < _LABEL)) for other in labels) if op else 0
            curve_gap = _min_distance(_bezier(a, b, rad, middle), np.concatenate(curves)) if curves and op else np.inf
            cost = 4 * max(0.0, 0.6 - node_gap) + label_hits + 2 * max(0.0, 0.15 - curve_gap) + 0.01 * abs(rad)
            if cost < best_cost:
                best, best_cost = rad, cost
            if cost < 0.02:  # nothing in the way: the least bent such arc wins
                break
        rads.append(best)
        if op:  # unlabelled edges (into the output) only keep clear of nodes
            curves.append(_bezier(a, b, best, middle))
            labels.append(_bezier(a, b, best, np.array([0.5]))[0])
    return rads


def _math(name: str) -> str:
    return f"${name}$" if "_" in name else name


# ----------------------------------------------------------------------------------------- matplotlib
def _new_figure(width: float, height: float, constrained: bool = True) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


_BOX = (0.5, 0.3)  # half width, half height of an input/output box
_RADIUS = 0.36  # of an intermediate node


def _node_patch(xy: tuple[float, float], kind: str) -> FancyBboxPatch | Circle:
    if kind == "node":
        return Circle(xy, _RADIUS, facecolor=_FILL[kind], edgecolor="#333333", linewidth=1.2, zorder=3)
    return FancyBboxPatch((xy[0] - _BOX[0], xy[1] - _BOX[1]), 2 * _BOX[0], 2 * _BOX[1], boxstyle="round,pad=0.04",
                          facecolor=_FILL[kind], edgecolor="#333333", linewidth=1.2, zorder=3)


def _inside(points: np.ndarray, center: np.ndarray, kind: str, pad: float = 0.06) -> np.ndarray:
    offset = np.abs(points - center)  # (T, 2)
    if kind == "node":
        return np.hypot(offset[:, 0], offset[:, 1]) < _RADIUS + pad
    return (offset[:, 0] < _BOX[0] + pad) & (offset[:, 1] < _BOX[1] + pad)


def _edge_path(a: np.ndarray, b: np.ndarray, rad: float, kind_a: str, kind_b: str) -> tuple[MplPath, np.ndarray]:
    """The arc from node a to node b, cut where it leaves a and enters b; and the arc's midpoint.

    The visible piece [t0, t1] of the quadratic Bezier is again a quadratic Bezier, whose control point is
    the blossom B(t0, t1) of the whole arc.
    """
    t = np.linspace(0.0, 1.0, 201)
    curve = _bezier(a, b, rad, t)  # (T, 2)
    control = (a + b) / 2 + rad * np.array([b[1] - a[1], -(b[0] - a[0])])
    index = np.flatnonzero(~_inside(curve, a, kind_a) & ~_inside(curve, b, kind_b))
    if index.size == 0:  # overlapping nodes: draw the whole arc
        index = np.array([0, len(t) - 1])
    t0, t1 = float(t[index[0]]), float(t[index[-1]])
    blossom = (1 - t0) * (1 - t1) * a + ((1 - t0) * t1 + t0 * (1 - t1)) * control + t0 * t1 * b
    path = MplPath([tuple(curve[index[0]]), tuple(blossom), tuple(curve[index[-1]])],
                   [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
    return path, curve[len(t) // 2]


def _draw_edges(ax: Axes, graph: CellGraph, pos: dict[str, tuple[float, float]],
                kinds: dict[str, str]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for (src, dst, op), rad in zip(graph.edges, _route(graph, pos)):
        repeat = seen.get((src, dst), 0)  # the same input twice: fan the copies out
        seen[(src, dst)] = repeat + 1
        rad += 0.3 * ((repeat + 1) // 2) * (1 if repeat % 2 else -1)
        color = OP_COLORS.get(op, "#555555") if op else "#9e9e9e"
        path, mid = _edge_path(np.array(pos[src]), np.array(pos[dst]), rad, kinds[src], kinds[dst])
        ax.add_patch(FancyArrowPatch(
            path=path, arrowstyle="-|>", mutation_scale=11, shrinkA=0, shrinkB=0, color=color,
            linewidth=1.4 if op else 1.0, linestyle="-" if op else "--", alpha=1.0 if op else 0.6, zorder=2))
        if op:
            ax.text(mid[0], mid[1], op, fontsize=7, color=color, ha="center", va="center", zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})


def _extent(graph: CellGraph, pos: dict[str, tuple[float, float]]) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) of the nodes, the routed arcs and their labels, with a margin."""
    points = [np.array(list(pos.values()))]
    for (src, dst, op), rad in zip(graph.edges, _route(graph, pos)):
        a, b = np.array(pos[src]), np.array(pos[dst])
        points.append(_bezier(a, b, rad, np.linspace(0.0, 1.0, 21)))
        if op:
            mid = _bezier(a, b, rad, np.array([0.5]))[0]
            points.append(np.array([mid - np.array(_LABEL) / 2, mid + np.array(_LABEL) / 2]))
    every = np.concatenate(points)  # (P, 2)
    return (float(every[:, 0].min()) - 0.7, float(every[:, 0].max()) + 0.7,
            float(every[:, 1].min()) - 0.55, float(every[:, 1].max()) + 0.55)


def _cell_size(graph: CellGraph, pos: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """Figure inches for a laid-out cell: 0.75 inch per layout unit, plus room for the title."""
    xmin, xmax, ymin, ymax = _extent(graph, pos)
    return 0.75 * (xmax - xmin), 0.75 * (ymax - ymin) + 0.4


def plot_cell(genotype: CellGenotype, cell_type: str | None = None, *, ax: Axes | None = None,
              title: str | None = None) -> Figure:
    """Draw one cell of ``genotype`` (its only cell, or ``cell_type``); returns the figure drawn on.

    Args:
        genotype: A genotype of any kind.
        cell_type: One of the genotype's cells (``"normal"``, ``"reduce"``...); required when it has several.
        ax: Axes to draw into; a new pyplot-free figure when omitted.
        title: Axes title; the cell type when omitted.
    """
    kinds = cell_types(genotype)
    if cell_type is None:
        if len(kinds) > 1:
            raise ConfigurationError(f"This genotype has cells {', '.join(kinds)}; pass cell_type=one of them "
                                     "(or use plot_genotype to draw them all).")
        cell_type = kinds[0]
    graph = cell_graph(genotype, cell_type)
    pos = layout(graph)
    if ax is None:
        width, height = _cell_size(graph, pos)
        fig = _new_figure(width, height, constrained=False)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - 0.4 / height))
    kinds = {name: "input" if name in graph.inputs else "output" if name == graph.output else "node" for name in pos}
    for name, xy in pos.items():
        ax.add_patch(_node_patch(xy, kinds[name]))
        ax.text(*xy, _math(name), ha="center", va="center", fontsize=10, zorder=5)
    _draw_edges(ax, graph, pos, kinds)
    xmin, xmax, ymin, ymax = _extent(graph, pos)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title if title is not None else "NB201 cell" if cell_type == "cell" else f"{cell_type} cell",
                 fontsize=11)
    return ax.figure


def plot_genotype(genotype: CellGenotype, cells: Sequence[str] | None = None) -> Figure:
    """All cells of ``genotype`` (or ``cells``) side by side in one new figure."""
    cells = list(cells) if cells else cell_types(genotype)
    graphs = [cell_graph(genotype, cell) for cell in cells]
    sizes = [_cell_size(graph, layout(graph)) for graph in graphs]
    width, height = sum(w for w, _ in sizes) + 0.3 * (len(cells) - 1), max(h for _, h in sizes)
    fig = _new_figure(width, height, constrained=False)
    left = 0.0
    for (w, _), cell in zip(sizes, cells):
        plot_cell(genotype, cell, ax=fig.add_axes((left / width, 0.0, w / width, 1.0 - 0.4 / height)))
        left += w + 0.3
    return fig


# ----------------------------------------------------------------------------------------- graphviz
def graphviz_available() -> bool:
    """Whether graphviz's ``dot`` binary is on the PATH."""
    return shutil.which("dot") is not None


def dot_source(genotype: CellGenotype, cells: Sequence[str] | None = None) -> str:
    """Graphviz source of the cells (one cluster per cell when there are several)."""
    cells = list(cells) if cells else cell_types(genotype)
    lines = ["digraph cell {", "  rankdir=LR;",
             '  node [style=filled, shape=rect, fontname="helvetica", fontsize=20, penwidth=2, height=0.5, '
             "width=0.5];", '  edge [fontname="helvetica", fontsize=16];']
    for cell in cells:
        graph = cell_graph(genotype, cell)
        prefix = f"{cell}:" if len(cells) > 1 else ""
        indent = "    " if len(cells) > 1 else "  "
        if len(cells) > 1:
            lines += [f"  subgraph cluster_{cell} {{", f'    label="{cell} cell";']
        for name in (*graph.inputs, *graph.nodes, graph.output):
            kind = "input" if name in graph.inputs else "output" if name == graph.output else "node"
            shape = ", shape=circle" if kind == "node" else ""
            lines.append(f'{indent}"{prefix}{name}" [label="{name}", fillcolor="{_FILL[kind]}"{shape}];')
        for src, dst, op in graph.edges:
            attrs = f'label="{op}", color="{OP_COLORS.get(op, "#555555")}"' if op else 'style=dashed, color="gray"'
            lines.append(f'{indent}"{prefix}{src}" -> "{prefix}{dst}" [{attrs}];')
        if len(cells) > 1:
            lines.append("  }")
    return "\n".join([*lines, "}"]) + "\n"


def _render_graphviz(source: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("graphviz's `dot` binary is not on the PATH; install graphviz or use engine='matplotlib'.")
    done = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"dot -T{fmt} failed (exit {done.returncode}): {done.stderr.decode(errors='replace')}")
    return done.stdout


# ----------------------------------------------------------------------------------------- files
def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 150) -> bytes:
    """The figure encoded as ``fmt`` (png, pdf, svg)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, facecolor="white")
    return buffer.getvalue()


def figure_to_array(fig: Figure) -> np.ndarray:
    """The rendered figure as an ``(H, W, 3)`` uint8 RGB array (for image loggers)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)


def save_cell_diagram(genotype: CellGenotype, path: str | os.PathLike[str], cell_type: str | None = None, *,
                      engine: Engine = "auto", dpi: int = 150) -> Path:
    """Draw ``cell_type`` (all cells when omitted) of ``genotype`` to ``path`` (.png, .pdf or .svg), atomically.

    Args:
        genotype: A genotype of any kind.
        path: Output file; its suffix picks the format.
        cell_type: One cell, or all of them side by side.
        engine: ``"auto"`` uses graphviz when ``dot`` is installed and falls back to matplotlib if it fails;
            ``"graphviz"`` insists on it; ``"matplotlib"`` never calls it.
        dpi: Resolution of matplotlib's PNGs.

    Raises:
        ConfigurationError: The suffix is not a supported format, or ``engine`` is unknown.
        RuntimeError: ``engine="graphviz"`` and ``dot`` is missing or fails.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigurationError(f"Cannot draw a cell to {str(path)!r}: unknown format {fmt!r}; "
                                 f"use a file ending in {', '.join('.' + f for f in FORMATS)}.")
    if engine not in ("auto", "matplotlib", "graphviz"):
        raise ConfigurationError(f"engine={engine!r} is unknown; use 'auto', 'matplotlib' or 'graphviz'.")
    cells = [cell_type] if cell_type else cell_types(genotype)
    for cell in cells:
        cell_graph(genotype, cell)  # a bad genotype or cell type fails here, whichever engine runs
    if engine == "graphviz" or (engine == "auto" and graphviz_available()):
        try:
            return atomic_write(path, _render_graphviz(dot_source(genotype, cells), fmt))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
            if engine == "graphviz":
                raise RuntimeError(str(err)) from err
            warnings.warn(f"graphviz could not draw the cell ({err}); drawing it with matplotlib.", stacklevel=2)
    fig = plot_genotype(genotype, cells)
    return atomic_write(path, figure_bytes(fig, fmt, dpi))


# ----------------------------------------------------------------------------------------- alpha heatmaps
def plot_alpha_heatmap(probs: np.ndarray | Sequence[Sequence[float]], primitives: Sequence[str],
                       edge_labels: Sequence[str] | None = None, *, title: str | None = None,
                       ax: Axes | None = None, annotate: bool = True, label: str = "softmax(alpha)",
                       reference: float | None = None,
                       selected: np.ndarray | Sequence[Sequence[bool]] | None = None) -> Figure:
    """Heatmap of one cell type's op probabilities (``label``; softmax(alpha) in DARTS): edges down, ops across.

    Colours show the distance from ``reference``, the value of an undecided op: white there, red above, blue
    below, each side stretched to this figure's extreme, so the first epochs of a search (where every value
    lies within 1e-3 of 1/8) show their structure as clearly as the decided last ones; the colour bar gives
    the values. The ops the derived cell keeps (``selected``) are printed bold; without it, the strongest op other
    than ``none`` on each edge (the one DARTS's derivation would take there).

    Args:
        probs: ``(edges, ops)`` probabilities (a tensor works too).
        primitives: Op names, in column order.
        edge_labels: Row names (``"c_{k-2}->0"``...); edge indices when omitted.
        title: Axes title.
        ax: Axes to draw into; a new pyplot-free figure when omitted.
        annotate: Print each probability in its cell.
        label: What the values are, for the colour bar (a relaxation's ``label``: ``sigmoid(alpha)``...).
        reference: The undecided value: ``1 / len(primitives)`` when omitted (probabilities that sum to one
            over an edge); 0.5 suits independent sigmoid weights.
        selected: ``(edges, ops)`` booleans, the (edge, op) pairs the derived cell keeps
            (``SearchSpace.selection_mask``; the alpha history holds them per epoch).
    """
    probs = np.asarray(probs, dtype=float)  # (edges, ops)
    if probs.ndim != 2 or probs.shape[1] != len(primitives):
        raise ConfigurationError(f"probs has shape {probs.shape}; expected (edges, {len(primitives)}) to match "
                                 f"primitives {list(primitives)}.")
    num_edges, num_ops = probs.shape
    labels = list(edge_labels) if edge_labels is not None else [str(i) for i in range(num_edges)]
    if len(labels) != num_edges:
        raise ConfigurationError(f"{len(labels)} edge labels for {num_edges} edges; pass one label per row of probs.")
    if ax is None:
        fig = _new_figure(2.4 + 0.75 * num_ops, 1.2 + 0.3 * num_edges)
        ax = fig.add_subplot()
    reference = 1.0 / num_ops if reference is None else float(reference)
    norm = _centred_norm(probs, reference)
    image = ax.imshow(probs, cmap="RdBu_r", norm=norm, aspect="auto")
    ax.set_xticks(range(num_ops), labels=list(primitives), rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(num_edges), labels=labels, fontsize=8)
    ax.set_xlabel("op")
    ax.set_ylabel("edge")
    if title:
        ax.set_title(title, fontsize=10)
    if annotate:
        _annotate(ax, probs, list(primitives), norm, None if selected is None else np.asarray(selected, dtype=bool))
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label(f"{label} (white: {reference:.3g})", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return ax.figure


def _centred_norm(probs: np.ndarray, reference: float) -> TwoSlopeNorm:
    """``reference`` at the colour map's centre, this figure's smallest and largest values at its ends."""
    eps = 1e-9 * max(abs(reference), 1.0)  # an exactly uniform matrix still needs vmin < vcenter < vmax
    return TwoSlopeNorm(vcenter=reference, vmin=min(float(probs.min()), reference - eps),
                        vmax=max(float(probs.max()), reference + eps))


def _annotate(ax: Axes, probs: np.ndarray, primitives: list[str], norm: TwoSlopeNorm,
              selected: np.ndarray | None) -> None:
    if selected is None:
        masked = probs.copy()
        if "none" in primitives:
            masked[:, primitives.index("none")] = -np.inf
        selected = np.zeros(probs.shape, dtype=bool)  # (edges, ops)
        selected[np.arange(probs.shape[0]), masked.argmax(axis=1)] = True
    shade = np.abs(np.asarray(norm(probs)) - 0.5)  # (edges, ops); 0.5 at the dark ends of the colour map
    for i, j in np.ndindex(*probs.shape):
        ax.text(j, i, f"{probs[i, j]:.3f}", ha="center", va="center", fontsize=6.5,
                color="white" if shade[i, j] > 0.3 else "black",
                fontweight="bold" if selected[i, j] else "normal")
