"""What a study's report reads from one run directory, and nothing else (so ``darts-pl-study report ROOT`` rebuilds
the report from the files alone).

========================================  ====================================================================
file in the run directory                 read for
========================================  ====================================================================
``events.out.tfevents.*`` (TensorBoard)   ``val/acc`` (``val/ppl``, ``val/loss``) per epoch: the value at the step of
                                          each epoch (``epoch`` scalar at the same step); a later event file (a
                                          resumed run) replaces the values of the steps it repeats. Seconds per
                                          search iteration: the wall time between the ends of two consecutive
                                          epochs of one process (``train/loss`` events) over the iterations between
                                          them, median over epochs (validation included).
``metrics.csv`` (CSVLogger)               the same scalars by its ``epoch`` column (no wall times)
``epoch_scalars.json`` (EpochScalars)     the same, for runs logged to W&B or to no logger
``alpha_history.npz`` (ArchitectureMonitor) mean alpha entropy of the derived cell's type (``normal``, NB201's ``cell``,
                                          ``recurrent``) per epoch, by the monitor's own :func:`alpha_entropy`
                                          (the relaxation's ``normalized`` flag from the file's metadata)
``genotypes/epoch_NNN.json``              skip connections and parameter-free ops of the derived normal cell per epoch
``genotype.json``                         the final cell: its text, its skip and parameter-free counts, its diagram
``benchmark.json`` (BenchmarkLookup)      tabular-benchmark accuracies (below)
========================================  ====================================================================

``benchmark.json`` is read tolerantly; every key is optional::

    {"epochs": [{"epoch": 0, "arch": "|nor_conv_3x3~0|+|...|",
                 "cifar10": {"test_acc": 93.1, "valid_acc": ...}, "cifar100": {"test_acc": ...}}, ...],
     "final": {"arch": "|...|", "cifar10": {"test_acc": 93.5}, ...}}

A dataset is any key whose value is an object with ``test_acc`` (also accepted: ``test_accuracy``, ``test-accuracy``);
its value is reported as given (percent in NAS-Bench-201). The final accuracies are ``final``'s, else the last
epoch record's. Records without ``epoch`` are numbered in order.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darts_pl import genotypes

SCALARS = ("val/acc", "val/ppl", "val/loss")
"""The per-epoch validation scalars read (the first one a run has is its headline metric)."""
TIMING_TAG = "train/loss"
TEST_ACC_KEYS = ("test_acc", "test_accuracy", "test-accuracy")
BENCHMARK = "benchmark.json"


@dataclass
class RunData:
    """One run directory's per-epoch curves and final values (empty where a file is missing)."""

    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    """``{"val/acc": {epoch: value}}``."""
    entropy: dict[int, float] = field(default_factory=dict)
    skips: dict[int, int] = field(default_factory=dict)
    benchmark: dict[str, dict[int, float]] = field(default_factory=dict)
    """``{dataset: {epoch: test accuracy}}``."""
    benchmark_final: dict[str, float] = field(default_factory=dict)
    benchmark_arch: str | None = None
    genotype: genotypes.AnyGenotype | None = None
    counts: dict[str, int] = field(default_factory=dict)
    """``num_skip_connect`` and ``num_parameter_free`` of the final derived normal cell."""
    seconds_per_iteration: float | None = None
    iterations: int | None = None


def read_run(run: Path) -> RunData:
    """Everything the report uses from ``run`` (see the module docstring)."""
    data = RunData()
    data.scalars, data.seconds_per_iteration, data.iterations = read_scalars(run)
    data.entropy = read_entropy(run)
    data.skips = read_skips(run)
    data.benchmark, data.benchmark_final, data.benchmark_arch = read_benchmark(run / BENCHMARK)
    if (run / "genotype.json").is_file():
        data.genotype = genotypes.load(run / "genotype.json")
        data.counts = derived_counts(data.genotype)
    return data


# ----------------------------------------------------------------------------------------- scalars
def read_scalars(run: Path) -> tuple[dict[str, dict[int, float]], float | None, int | None]:
    """``({tag: {epoch: value}}, seconds per iteration, iterations)`` from the first source the run has."""
    events = sorted(run.glob("events.out.tfevents.*"), key=_opened_at)
    if events:
        return _tensorboard(events)
    if (run / "metrics.csv").is_file():
        return _csv(run / "metrics.csv"), None, None
    if (run / "epoch_scalars.json").is_file():
        return _epoch_scalars(run / "epoch_scalars.json")
    return {}, None, None


def _opened_at(path: Path) -> tuple[float, str]:
    """When an event file was opened: the wall time of its first event (the writer's file-version record), then its
    name. The names alone do not order the files: their per-process counter is not zero-padded (``...9`` sorts after
    ``...10``)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    first = next(iter(EventFileLoader(str(path)).Load()), None)
    return (float(first.wall_time) if first is not None else float("inf")), path.name


def _event_scalars(path: Path) -> list[tuple[str, int, float, float]]:
    """``(tag, step, wall_time, value)`` of every scalar in one event file, in file order."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    found = []
    for event in EventFileLoader(str(path)).Load():
        for value in event.summary.value:
            if value.HasField("simple_value"):
                number = float(value.simple_value)
            elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                number = float(tensor_util.make_ndarray(value.tensor))
            else:
                continue
            found.append((value.tag, int(event.step), float(event.wall_time), number))
    return found


def _tensorboard(files: Iterable[Path]) -> tuple[dict[str, dict[int, float]], float | None, int | None]:
    by_step: dict[str, dict[int, float]] = {}
    epoch_at: dict[int, int] = {}
    rates: list[float] = []
    for path in files:  # oldest first: a resumed run's file replaces the steps it repeats
        scalars = _event_scalars(path)
        for tag, step, _, value in scalars:
            if tag == "epoch":
                epoch_at[step] = int(value)
            elif tag in SCALARS:
                by_step.setdefault(tag, {})[step] = value
        ends = sorted({step: wall for tag, step, wall, _ in scalars if tag == TIMING_TAG}.items())
        rates += [(w1 - w0) / (s1 - s0) for (s0, w0), (s1, w1) in itertools.pairwise(ends) if s1 > s0]
    scalars = {tag: {epoch_at.get(step, i): value for i, (step, value) in enumerate(sorted(values.items()))}
               for tag, values in by_step.items()}
    steps = [step for values in by_step.values() for step in values]
    return scalars, statistics.median(rates) if rates else None, max(steps) + 1 if steps else None


def _csv(path: Path) -> dict[str, dict[int, float]]:
    scalars: dict[str, dict[int, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for tag in SCALARS:
                value = row.get(tag)
                if value not in (None, "") and row.get("epoch") not in (None, ""):
                    scalars.setdefault(tag, {})[int(float(row["epoch"]))] = float(value)
    return scalars


def _epoch_scalars(path: Path) -> tuple[dict[str, dict[int, float]], float | None, int | None]:
    try:
        epochs = json.loads(path.read_text()).get("epochs", [])
    except (OSError, ValueError):
        return {}, None, None
    scalars: dict[str, dict[int, float]] = {}
    for entry in epochs:
        for tag in SCALARS:
            if tag in entry.get("metrics", {}):
                scalars.setdefault(tag, {})[int(entry["epoch"])] = float(entry["metrics"][tag])
    ends = [(e["step"], e["wall_time"]) for e in epochs if "step" in e and "wall_time" in e]
    rates = [(w1 - w0) / (s1 - s0) for (s0, w0), (s1, w1) in itertools.pairwise(ends) if s1 > s0]
    iterations = max(s for s, _ in ends) + 1 if ends else None
    return scalars, statistics.median(rates) if rates else None, iterations


# ----------------------------------------------------------------------------------------- alphas and cells
def derived_cell(genotype: genotypes.AnyGenotype) -> str | None:
    """The cell the report counts and draws: the first of the genotype kind's ``collapse_cells`` (``normal`` in the
    DARTS space, ``cell`` in NAS-Bench-201, ``recurrent`` for a recurrent cell); ``None`` for a kind without one."""
    return genotype.collapse_cells[0] if genotype.collapse_cells else None


def derived_counts(genotype: genotypes.AnyGenotype) -> dict[str, int]:
    """Skip connections and parameter-free ops in :func:`derived_cell` (empty when the kind names none)."""
    cell = derived_cell(genotype)
    return genotype.cell_counts(cell) if cell else {}


def read_entropy(run: Path) -> dict[int, float]:
    """``{epoch: mean alpha entropy}`` of the derived cell's type, from ``alpha_history.npz``."""
    import torch

    from darts_pl.callbacks.monitor import HISTORY_ARRAYS, alpha_entropy

    path = run / HISTORY_ARRAYS
    if not path.is_file():
        return {}
    try:
        with np.load(path) as arrays:
            meta = json.loads(str(arrays["meta"])) if "meta" in arrays.files else json.loads(
                (run / "alpha_history.json").read_text())
            cell = next((c for c in ("normal", "cell", "recurrent") if c in meta["cell_types"]), None)
            if cell is None:
                return {}
            normalized = bool(meta.get("relaxation", {}).get("normalized", True))
            probs = arrays[cell]  # (T, edges, ops)
            return {int(e): alpha_entropy(torch.from_numpy(np.asarray(p)), normalized)
                    for e, p in zip(arrays["epochs"], probs)}
    except (OSError, ValueError, KeyError):
        return {}


def read_skips(run: Path) -> dict[int, int]:
    """``{epoch: skip connections in the derived normal cell}`` from ``genotypes/epoch_NNN.json``."""
    skips = {}
    for path in sorted((run / "genotypes").glob("epoch_*.json")):
        suffix = path.stem[len("epoch_"):]
        if not suffix.isdigit():
            continue
        try:
            counts = derived_counts(genotypes.load(path))
        except genotypes.GenotypeError:
            continue
        if "num_skip_connect" in counts:
            skips[int(suffix)] = counts["num_skip_connect"]
    return skips


# ----------------------------------------------------------------------------------------- benchmark.json
def _test_acc(entry: Any) -> float | None:
    if not isinstance(entry, Mapping):
        return None
    for key in TEST_ACC_KEYS:
        value = entry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _accuracies(record: Mapping[str, Any]) -> dict[str, float]:
    return {key: acc for key, value in record.items() if (acc := _test_acc(value)) is not None}


def read_benchmark(path: Path) -> tuple[dict[str, dict[int, float]], dict[str, float], str | None]:
    """``({dataset: {epoch: test acc}}, {dataset: final test acc}, final arch)``; empty when absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, {}, None
    if not isinstance(data, Mapping):
        return {}, {}, None
    records = [r for r in data.get("epochs", []) if isinstance(r, Mapping)] if isinstance(
        data.get("epochs"), list) else []
    curves: dict[str, dict[int, float]] = {}
    for i, record in enumerate(records):
        epoch = record.get("epoch", i)
        for dataset, acc in _accuracies(record).items():
            curves.setdefault(dataset, {})[int(epoch)] = acc
    final = data.get("final") if isinstance(data.get("final"), Mapping) else (records[-1] if records else {})
    arch = final.get("arch") if isinstance(final.get("arch"), str) else None
    return curves, _accuracies(final), arch
