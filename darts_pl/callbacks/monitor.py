"""``ArchitectureMonitor``: where the alphas are going, every search epoch, in every logger and on disk.

After each training epoch it reads ``space.edge_probs()`` (``{cell type: (edges, ops)}``, the probabilities of
the space's relaxation: softmax(alpha) in DARTS, sigmoid(alpha) in FairDARTS; ``space.relaxation.label``
names them) and the derived genotype of the module's search space, and logs:

=====================================================  ==========================================================
key                                                    what
=====================================================  ==========================================================
``alpha/<cell>/edge_<NN>/<op>``                        probability of ``op`` on edge ``NN`` (every logger)
``alpha_entropy/<cell>``                               how undecided the cell is, in nats (every logger; below)
``alpha_entropy_normalized/<cell>``                    the same divided by its maximum: 1 undecided, 0 decided, on
                                                       one scale for every relaxation (every logger)
``edge_weight/<cell>/edge_<NN>``                       PC-DARTS's normalised edge weight (``space.edge_scales()``;
                                                       every logger; only for spaces with edge normalisation)
``collapse/normal/num_skip_connect``                   skip connections in the derived normal cell (every logger)
``collapse/normal/num_parameter_free``                 skip connections and pooling ops in it (every logger)
``collapse/cell/num_skip_connect``                     the same for a NAS-Bench-201 cell (every logger)
``collapse/cell/num_parameter_free``                   the same for a NAS-Bench-201 cell (every logger)
``alpha_heatmap/<cell>``                               heatmap image, edges × ops, values printed (W&B, TensorBoard)
``alpha_table/<cell>``                                 exact probabilities: ``wandb.Table`` / TensorBoard text
``alpha_hist/<cell>/<op>``                             the op's probabilities over edges (TensorBoard histogram)
=====================================================  ==========================================================

``<cell>`` is a key of ``edge_probs()``: ``normal`` and ``reduce`` for convolutional spaces, ``recurrent``
for recurrent ones. ``NN`` is the edge's row in the alpha matrix, zero-padded; the edge's name
(``c_{k-2}->0``...) is in the table, the heatmap and the history file. The ``collapse/*`` keys exist for
convolutional genotypes only (``normal`` for DARTS cells, ``cell`` for NAS-Bench-201 cells).

``alpha_entropy/<cell>`` depends on what the relaxation's probabilities are (:func:`alpha_entropy`):

* probabilities that sum to one over an edge (``relaxation.normalized``: softmax, GDAS, DrNAS): the entropy
  of each edge's distribution over ops, averaged over edges; ``log(num ops)`` is uniform, 0 is one-hot;
* independent weights in [0, 1] (FairDARTS's sigmoid): the binary entropy of each weight, averaged over edges
  and ops; ``log 2`` (0.693) is every weight at 0.5, 0 is every weight at 0 or 1.

Everything is logged at the step of the search iteration that ended the epoch (see
:func:`darts_pl.callbacks.media.log_step`), the step of that epoch's losses, so heatmaps and tables line up
with the loss curves. The heatmaps are coloured by the distance from the undecided value (1 / num ops, or 0.5
for independent weights), stretched to each figure's range, with a colour bar.

Every run, with any logger or none, also gets the alpha history in its run directory, rewritten
atomically after each epoch, readable with numpy and json alone:

* ``alpha_history.npz``: ``epochs`` (T,), ``global_steps`` (T,), and one float32 array per cell type,
  ``(T, edges, ops)``; and ``meta``, the JSON text below, so the ``.npz`` alone is one consistent unit;
* ``alpha_history.json``: ``cell_types``, ``primitives`` (column names), ``edge_labels`` (row names),
  ``epochs``, ``shapes`` (a copy written after the ``.npz``; a kill in between leaves it one epoch behind).

``alpha_history.json`` also names what the arrays hold: ``relaxation`` is ``{"name", "label", "normalized"}``
(``{"name": "Softmax", "label": "softmax(alpha)", "normalized": true}`` for DARTS).

Example::

    monitor = ArchitectureMonitor()
    trainer = L.Trainer(callbacks=[monitor, GenotypeCheckpoint()], logger=WandbLogger(project="darts_pl"))
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from darts_pl.atomic import atomic_open, atomic_write
from darts_pl.callbacks import media
from darts_pl.callbacks.rundir import run_dir
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import CellGenotype
from darts_pl.search.base import SearchSpace, space_of

HISTORY_ARRAYS = "alpha_history.npz"
HISTORY_META = "alpha_history.json"
FORMAT = "darts_pl.alpha_history/1"
CHECKPOINT_KEY = "darts_pl.alpha_history"
SOFTMAX = {"name": "Softmax", "label": "softmax(alpha)", "normalized": True}
"""What ``relaxation`` is for a history or space that does not say (DARTS's softmax)."""


def relaxation_of(space: SearchSpace) -> dict[str, Any]:
    """``{"name", "label", "normalized"}`` of a search space's relaxation."""
    relaxation = space.relaxation
    return {"name": type(relaxation).__name__, "label": str(relaxation.label),
            "normalized": bool(relaxation.normalized)}


def normalized_alpha_entropy(probs: torch.Tensor, normalized: bool = True) -> float:
    """:func:`alpha_entropy` divided by its maximum, in [0, 1] (1: undecided, 0: decided), so curves of relaxations
    with different maxima (ln(ops) for a softmax, ln 2 for independent sigmoid weights) share an axis. An edge's
    maximum is ln of the ops it has (columns of ops an edge lacks hold 0, as ``edge_probs`` writes them)."""
    p = probs.double()
    if not normalized:
        return alpha_entropy(probs, normalized=False) / math.log(2)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)  # (edges,)
    ops = (p > 0).sum(-1).clamp_min(2).double()  # (edges,) the ops each edge has
    return float((entropy / ops.log()).mean())


def alpha_entropy(probs: torch.Tensor, normalized: bool = True) -> float:
    """How undecided one cell type's ``(edges, ops)`` probabilities are, in nats (the module docstring says
    what 0 and the maximum mean).

    Args:
        probs: The relaxation's probabilities, ``(edges, ops)``.
        normalized: Each edge's probabilities sum to one: mean over edges of their entropy. Otherwise every
            value is its own Bernoulli probability: mean over edges and ops of its binary entropy.
    """
    p = probs.double()
    if normalized:
        return float(-(p * p.clamp_min(1e-30).log()).sum(-1).mean())
    p = p.clamp(0.0, 1.0)
    return float(-(p * p.clamp_min(1e-30).log() + (1 - p) * (1 - p).clamp_min(1e-30).log()).mean())


class AlphaHistory:
    """Per-epoch op probabilities of every cell type, and their two files.

    Args:
        primitives: Op names (columns).
        edge_labels: Edge names (rows).
        relaxation: What the probabilities are, ``{"name", "label", "normalized"}`` (:func:`relaxation_of`);
            DARTS's softmax when omitted.
    """

    def __init__(self, primitives: Sequence[str], edge_labels: Sequence[str],
                 relaxation: Mapping[str, Any] | None = None) -> None:
        self.primitives = list(primitives)
        self.edge_labels = list(edge_labels)
        self.relaxation = dict(relaxation) if relaxation else dict(SOFTMAX)
        self.epochs: list[int] = []
        self.global_steps: list[int] = []
        self.probs: dict[str, list[np.ndarray]] = {}
        self.selected: dict[str, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.epochs)

    def append(self, epoch: int, global_step: int, probs: Mapping[str, np.ndarray | torch.Tensor],
               selected: Mapping[str, np.ndarray | torch.Tensor] | None = None) -> None:
        """Record ``probs`` (``{cell type: (edges, ops)}``) for ``epoch``, replacing ``epoch`` and later ones, and
        which (edge, op) pairs the derived cell keeps (``selected``, booleans of the same shape), if given."""
        self.truncate(epoch)
        shape = (len(self.edge_labels), len(self.primitives))
        if self.probs and set(probs) != set(self.probs):
            raise ConfigurationError(f"Cell types changed from {sorted(self.probs)} to {sorted(probs)} during the "
                                     "search; the alpha history needs the same cell types every epoch.")
        # The selection is kept only while every epoch recorded it (a history resumed from an earlier release may
        # lack it for its first epochs).
        complete = selected is not None and all(len(self.selected.get(cell, [])) == len(self) for cell in probs)
        for cell, value in probs.items():
            array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
            if array.shape != shape:
                raise ConfigurationError(f"edge_probs()[{cell!r}] has shape {array.shape}; expected {shape} "
                                         f"({len(self.edge_labels)} edge labels × {len(self.primitives)} primitives).")
            self.probs.setdefault(cell, []).append(array)
            if complete and cell in selected:
                mask = selected[cell]
                mask = mask.cpu() if isinstance(mask, torch.Tensor) else mask
                self.selected.setdefault(cell, []).append(np.asarray(mask, dtype=bool).reshape(shape))
        self.epochs.append(int(epoch))
        self.global_steps.append(int(global_step))

    def truncate(self, epoch: int) -> None:
        """Forget ``epoch`` and every later one (a resumed run repeats them)."""
        keep = sum(1 for e in self.epochs if e < epoch)
        self.epochs, self.global_steps = self.epochs[:keep], self.global_steps[:keep]
        self.probs = {cell: rows[:keep] for cell, rows in self.probs.items()}
        self.selected = {cell: rows[:keep] for cell, rows in self.selected.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        """``epochs``, ``global_steps`` and ``{cell: (T, edges, ops)}``."""
        out = {"epochs": np.asarray(self.epochs, dtype=np.int64),
               "global_steps": np.asarray(self.global_steps, dtype=np.int64)}
        for cell, rows in self.probs.items():
            out[cell] = np.stack(rows) if rows else np.zeros((0, len(self.edge_labels), len(self.primitives)),
                                                                np.float32)  # (T, edges, ops)
        for cell, rows in self.selected.items():
            if len(rows) == len(self.epochs):  # every epoch recorded it
                out[f"selected_{cell}"] = np.stack(rows)  # (T, edges, ops) bool
        return out

    def metadata(self) -> dict[str, Any]:
        arrays = self.arrays()
        return {
            "format": FORMAT,
            "arrays": HISTORY_ARRAYS,
            "cell_types": list(self.probs),
            "primitives": self.primitives,
            "edge_labels": self.edge_labels,
            "epochs": self.epochs,
            "shapes": {cell: list(arrays[cell].shape) for cell in self.probs},
            "selected": {cell: f"selected_{cell}" for cell in self.probs if f"selected_{cell}" in arrays},
            "relaxation": self.relaxation,
            "description": f"{self.relaxation['label']} after each training epoch; "
                           f"{HISTORY_ARRAYS}[cell][i, edge, op] belongs to epochs[i].",
        }

    def save(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write both files, the ``.npz`` as the unit of truth.

        The ``.npz`` holds the arrays and, under ``meta``, the JSON metadata: one atomic rename publishes
        both together. ``alpha_history.json`` is a readable copy of that metadata written next; after a kill
        between the two renames it can lag one epoch behind, and ``load`` then reads the ``.npz``'s own.
        """
        directory = Path(directory)
        meta = json.dumps(self.metadata(), indent=1) + "\n"
        with atomic_open(directory / HISTORY_ARRAYS, "wb") as handle:
            np.savez(handle, meta=np.array(meta), **self.arrays())
        return directory / HISTORY_ARRAYS, atomic_write(directory / HISTORY_META, meta)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> AlphaHistory:
        """Read the files ``save`` wrote (the metadata inside the ``.npz`` wins over the ``.json`` copy)."""
        directory = Path(directory)
        with np.load(directory / HISTORY_ARRAYS) as arrays:
            text = str(arrays["meta"]) if "meta" in arrays.files else (directory / HISTORY_META).read_text()
            meta = json.loads(text)
            history = cls(meta["primitives"], meta["edge_labels"])
            history.epochs = arrays["epochs"].tolist()
            history.global_steps = arrays["global_steps"].tolist()
            history.probs = {cell: list(arrays[cell]) for cell in meta["cell_types"]}
            history.selected = {cell: list(arrays[key]) for cell, key in meta.get("selected", {}).items()}
        return history

    def state_dict(self) -> dict[str, Any]:
        return {"primitives": self.primitives, "edge_labels": self.edge_labels, "relaxation": self.relaxation,
                "epochs": self.epochs,
                "global_steps": self.global_steps,
                "probs": {cell: torch.from_numpy(array) for cell, array in self.arrays().items()
                          if cell in self.probs},
                "selected": {cell: torch.from_numpy(np.stack(rows)) for cell, rows in self.selected.items()
                             if rows and len(rows) == len(self.epochs)}}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> AlphaHistory:
        history = cls(state["primitives"], state["edge_labels"], state.get("relaxation"))
        history.epochs = [int(e) for e in state["epochs"]]
        history.global_steps = [int(s) for s in state["global_steps"]]
        history.probs = {cell: list(torch.as_tensor(value).numpy()) for cell, value in state["probs"].items()}
        history.selected = {cell: list(torch.as_tensor(value).numpy()) for cell, value in
                            state.get("selected", {}).items()}
        return history


def edge_key(cell: str, edge: int, op: str, num_edges: int) -> str:
    """Scalar key of one op's probability: ``alpha/<cell>/edge_<NN>/<op>`` with ``NN`` zero-padded."""
    return f"alpha/{cell}/edge_{edge:0{len(str(max(num_edges - 1, 0)))}d}/{op}"


class ArchitectureMonitor(Callback):
    """Log the op probabilities of every edge and the collapse counts after each training epoch, and keep
    the alpha history in the run directory (see the module docstring for the keys and the files).

    Works with any logger, or none: scalars reach every logger; heatmaps and tables go to W&B and
    TensorBoard; the history files are always written. Files and media come from rank 0 only. A model
    without a search space (training a derived network) is left alone. Listed twice (a config plus the
    W&B overlay), only the first instance runs.

    Args:
        log_scalars: Log one scalar per edge and op (``alpha/...``); turn off to keep dashboards small.
        log_media: Log heatmap images and probability tables to W&B/TensorBoard.
        dirpath: Where the history files go; the run directory when omitted.
    """

    def __init__(self, log_scalars: bool = True, log_media: bool = True, dirpath: str | None = None) -> None:
        self.log_scalars = log_scalars
        self.log_media = log_media
        self.dirpath = dirpath
        self.history: AlphaHistory | None = None
        self._active = True

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        first = next(cb for cb in trainer.callbacks if isinstance(cb, ArchitectureMonitor))
        if first is not self:
            self._active = False
            rank_zero_info("ArchitectureMonitor is listed more than once; only the first one runs.")
        elif space_of(pl_module) is None:
            self._active = False
            rank_zero_info(f"ArchitectureMonitor: {type(pl_module).__name__} has no search space, so there are no "
                           "alphas to monitor.")

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        space = space_of(pl_module)
        assert space is not None
        probs = {cell: p.detach().float().cpu() for cell, p in space.edge_probs().items()}  # {cell: (edges, ops)}
        primitives, labels = list(space.primitives), list(space.edge_labels())
        relaxation = relaxation_of(space)
        genotype = space.genotype()
        self._log_scalars(pl_module, probs, primitives, genotype, relaxation)
        directory = Path(self.dirpath) if self.dirpath else run_dir(trainer)  # every rank: log_dir broadcasts
        if not trainer.is_global_zero:
            return
        same = self.history is not None and (self.history.primitives, self.history.edge_labels,
                                             self.history.relaxation) == (primitives, labels, relaxation)
        if not same:
            self.history = AlphaHistory(primitives, labels, relaxation)
        selected = space.selection_mask(genotype)  # {cell: (edges, ops)}: what the derived cell keeps
        self.history.append(trainer.current_epoch, trainer.global_step, probs, selected)
        self.history.save(directory)
        if self.log_media and media.wants_media(trainer):
            self._log_media(trainer, probs, primitives, labels, relaxation, selected)

    def _log_scalars(self, pl_module: L.LightningModule, probs: dict[str, torch.Tensor], primitives: list[str],
                     genotype: CellGenotype, relaxation: dict[str, Any]) -> None:
        # Identical on every rank (alphas are synchronised), so every rank logs: monitors see the same values.
        metrics: dict[str, float] = {}
        for cell, p in probs.items():
            metrics[f"alpha_entropy/{cell}"] = alpha_entropy(p, relaxation["normalized"])
            metrics[f"alpha_entropy_normalized/{cell}"] = normalized_alpha_entropy(p, relaxation["normalized"])
            if self.log_scalars:
                for (edge, op), value in np.ndenumerate(p.numpy()):
                    metrics[edge_key(cell, edge, primitives[op], p.shape[0])] = float(value)
        space = space_of(pl_module)
        for cell, scale in (space.edge_scales() if self.log_scalars and space is not None else {}).items():
            width = len(str(max(scale.numel() - 1, 0)))  # PC-DARTS's edge weights, beside the op probabilities
            for edge, value in enumerate(scale.detach().float().cpu().tolist()):
                metrics[f"edge_weight/{cell}/edge_{edge:0{width}d}"] = value
        for cell, counts in genotype.collapse_counts().items():
            for name, count in counts.items():
                metrics[f"collapse/{cell}/{name}"] = float(count)
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=False, on_epoch=True, sync_dist=False)

    def _log_media(self, trainer: L.Trainer, probs: dict[str, torch.Tensor], primitives: list[str],
                   labels: list[str], relaxation: dict[str, Any], selected: dict[str, torch.Tensor]) -> None:
        from darts_pl.viz import figure_to_array, plot_alpha_heatmap

        images = {}
        label = relaxation["label"]
        reference = None if relaxation["normalized"] else 0.5  # undecided: uniform, or each weight at 0.5
        for cell, p in probs.items():
            title = f"{cell} cell, epoch {trainer.current_epoch} (iteration {media.iterations(trainer)}): {label}"
            figure = plot_alpha_heatmap(p.numpy(), primitives, labels, title=title, label=label, reference=reference,
                                        selected=selected[cell].numpy() if cell in selected else None)
            images[f"alpha_heatmap/{cell}"] = figure_to_array(figure)
            rows = [[edge, labels[edge], *map(float, row)] for edge, row in enumerate(p.tolist())]
            media.log_table(trainer, f"alpha_table/{cell}", ["edge", "label", *primitives], rows)
            media.log_histograms(trainer, {f"alpha_hist/{cell}/{op}": p[:, j].numpy()
                                           for j, op in enumerate(primitives)})
        media.log_images(trainer, images)

    # The history travels in the checkpoint under its own key rather than as callback state: Lightning refuses
    # two stateful callbacks of one type, and a config plus the W&B overlay may list this callback twice.
    @override
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._active and self.history is not None:
            checkpoint[CHECKPOINT_KEY] = self.history.state_dict()

    @override
    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if self._active and state:
            self.history = AlphaHistory.from_state_dict(state)
