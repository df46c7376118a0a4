"""The report of a study, built from its root alone: ``report.md``, ``report.csv``, ``cells.csv`` and the pictures in
``report_files/`` (and the same tables in W&B when the cells log there).

Per method (and axis values), over the seeds whose cell is finished: mean ± sample standard deviation (``ddof=1``;
none for one seed) of the final supernet validation accuracy (``val/acc``; ``val/ppl`` or ``val/loss`` for a space
without accuracy), the tabular benchmark's test accuracies (``benchmark.json``), the skip connections and
parameter-free ops of the derived normal cell (NAS-Bench-201: the cell), seconds per search iteration, peak memory
(the runner's ``os.wait4`` of each child: its largest resident set; for a DDP cell, the largest process) and wall
time (all attempts of the cell). Curves over epochs (the validation metric, mean alpha entropy, skip connections,
benchmark test accuracy) draw one line per method, the mean over seeds, in a band from the lowest to the highest
seed. The derived normal cells (NAS-Bench-201: the cell) are drawn side by side, one row per method, one column per
seed. What is read from which
file is in :mod:`darts_pl.study.rundata`.

Only finished cells enter the numbers; the report says which cells are still running or failed. Nothing in the
report depends on when it was built, so a study that was interrupted and continued, and ``darts-pl-study report
ROOT``, give the same tables as one uninterrupted run (timings aside).
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts_pl.atomic import atomic_write
from darts_pl.study import cells as cellfiles
from darts_pl.study.rundata import SCALARS, RunData, read_run
from darts_pl.study.spec import RECORD

REPORT = "report.md"
REPORT_CSV = "report.csv"
CELLS_CSV = "cells.csv"
FILES = "report_files"
TIMING = ("s_per_iteration", "peak_rss_mb", "wall_s")
"""Columns that measure the machine, not the search: they differ between two runs of one study."""


@dataclass
class CellResult:
    """One cell as the report sees it."""

    method: str
    axes: dict[str, str]
    seed: int
    directory: Path
    status: str
    record: dict[str, Any] = field(default_factory=dict)
    run: Path | None = None
    data: RunData | None = None

    @property
    def group(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.method, tuple(self.axes.items())

    @property
    def name(self) -> str:
        return "/".join([self.method, *[f"{k}={v}" for k, v in self.axes.items()], f"seed_{self.seed}"])


# ----------------------------------------------------------------------------------------- reading the root
def _grid_cells(root: Path, grid: Mapping[str, Any]) -> list[tuple[str, dict[str, str], int]]:
    combos: list[dict[str, str]] = [{}]
    for axis in grid.get("axes", []):
        combos = [{**c, axis["name"]: v["name"]} for c in combos for v in axis["values"]]
    return [(m["name"], combo, int(s)) for m in grid.get("methods", []) for combo in combos for s in grid["seeds"]]


def _walked_cells(root: Path) -> list[tuple[str, dict[str, str], int]]:
    found = []
    for record in sorted(root.rglob(cellfiles.CELL_RECORD)):
        parts = record.parent.relative_to(root).parts
        if len(parts) < 2 or not parts[-1].startswith("seed_") or not parts[-1][5:].lstrip("-").isdigit():
            continue
        axes = dict(p.split("=", 1) for p in parts[1:-1] if "=" in p)
        found.append((parts[0], axes, int(parts[-1][5:])))
    return found


def load_study_record(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def collect(root: Path, cache: dict[Path, tuple[float, RunData]] | None = None) -> list[CellResult]:
    """Every cell of the study in ``root`` (from its record, else the cell directories found) with its data.

    Args:
        root: The study's root.
        cache: Run data of finished cells already read (by run directory and the genotype's mtime).
    """
    record = load_study_record(root)
    keys = _grid_cells(root, record["grid"]) if "grid" in record else _walked_cells(root)
    results = []
    for method, axes, seed in keys:
        directory = root / method / Path(*[f"{k}={v}" for k, v in axes.items()]) / f"seed_{seed}"
        cell_record = cellfiles.read_record(directory)
        finished = cellfiles.is_finished(directory)
        status = "finished" if finished else cell_record.get("status", "pending")
        if status == "finished" and not finished:  # recorded, but its genotype.json is gone
            status = "incomplete"
        result = CellResult(method, axes, seed, directory, status, cell_record)
        if finished:
            result.run = cellfiles.result_run(directory)
            result.data = _read_cached(result.run, cache)
        results.append(result)
    return results


def _read_cached(run: Path, cache: dict[Path, tuple[float, RunData]] | None) -> RunData:
    stamp = (run / "genotype.json").stat().st_mtime
    if cache is not None and run in cache and cache[run][0] == stamp:
        return cache[run][1]
    data = read_run(run)
    if cache is not None:
        cache[run] = (stamp, data)
    return data


# ----------------------------------------------------------------------------------------- per-cell values
def headline(results: Sequence[CellResult]) -> str | None:
    """The validation scalar the report leads with: the first of ``SCALARS`` that a finished cell has."""
    for tag in SCALARS:
        if any(r.data and r.data.scalars.get(tag) for r in results):
            return tag
    return None


def datasets(results: Sequence[CellResult]) -> list[str]:
    """Benchmark datasets any finished cell has, in order of appearance."""
    seen: dict[str, None] = {}
    for r in results:
        if r.data:
            seen.update(dict.fromkeys([*r.data.benchmark_final, *r.data.benchmark]))
    return list(seen)


def _final(curve: Mapping[int, float]) -> float | None:
    return curve[max(curve)] if curve else None


def value_columns(metric: str | None, benchmark: Sequence[str]) -> list[str]:
    """The per-cell number columns, in report order (the timing ones last)."""
    return [*([_column(metric)] if metric else []), *[f"{d}_test_acc" for d in benchmark], "num_skip_connect",
            "num_parameter_free", *TIMING]


def cell_values(result: CellResult, metric: str | None, benchmark: Sequence[str]) -> dict[str, float | None]:
    """The report's numbers of one finished cell, by column name."""
    data, record = result.data or RunData(), result.record
    values: dict[str, float | None] = {}
    if metric:
        values[_column(metric)] = _final(data.scalars.get(metric, {}))
    for dataset in benchmark:
        values[f"{dataset}_test_acc"] = data.benchmark_final.get(dataset, _final(data.benchmark.get(dataset, {})))
    values["num_skip_connect"] = data.counts.get("num_skip_connect")
    values["num_parameter_free"] = data.counts.get("num_parameter_free")
    per_iteration = data.seconds_per_iteration
    if per_iteration is None and record.get("wall_s") and data.iterations:
        per_iteration = record["wall_s"] / data.iterations  # start-up included: an upper bound
    values["s_per_iteration"] = per_iteration
    values["peak_rss_mb"] = record.get("peak_rss_mb")
    values["wall_s"] = record.get("wall_s")
    return values


def _column(tag: str) -> str:
    return tag.replace("/", "_")


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (``ddof=1``; ``None`` below two values) of the values given."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None, None, 0
    return statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else None, len(present)


# ----------------------------------------------------------------------------------------- tables
def _groups(results: Sequence[CellResult]) -> dict[tuple, list[CellResult]]:
    groups: dict[tuple, list[CellResult]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    return groups


def summary_rows(results: Sequence[CellResult], axis_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per method and axis values: ``<column>_mean``, ``<column>_std``, ``<column>_n`` of the finished
    cells."""
    metric, benchmark = headline(results), datasets(results)
    rows = []
    for (method, combo), members in _groups(results).items():
        done = [r for r in members if r.status == "finished"]
        row: dict[str, Any] = {"method": method, **dict(combo), "seeds": len(done), "cells": len(members)}
        per_cell = [cell_values(r, metric, benchmark) for r in done]
        for column in value_columns(metric, benchmark):
            mean, std, n = mean_std([v.get(column) for v in per_cell])
            row.update({f"{column}_mean": mean, f"{column}_std": std, f"{column}_n": n})
        rows.append({k: row.get(k) for k in ["method", *axis_names, *row] if k in row})
    return rows


def cell_rows(root: Path, results: Sequence[CellResult], axis_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per cell, finished or not."""
    metric, benchmark = headline(results), datasets(results)
    rows = []
    for r in results:
        values = cell_values(r, metric, benchmark) if r.status == "finished" else {}
        genotype = r.data.genotype if r.data else None
        rows.append({"method": r.method, **{a: r.axes.get(a) for a in axis_names}, "seed": r.seed,
                     "status": r.status, "attempts": r.record.get("attempts"), **values,
                     "genotype": str(genotype) if genotype is not None else None,
                     "run_dir": str(r.run.relative_to(root)) if r.run else None})
    return rows


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else value


DIGITS = {"num_skip_connect": 2, "num_parameter_free": 2, "s_per_iteration": 3, "peak_rss_mb": 0, "wall_s": 1}


def _fmt(value: float | None, std: float | None = None, column: str = "") -> str:
    if value is None:
        return "–"
    digits = DIGITS.get(column, 4 if abs(value) < 10 else 2)
    text = f"{value:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if std is not None else text


# ----------------------------------------------------------------------------------------- markdown
LABELS = {"val_acc": "val/acc", "val_ppl": "val/ppl", "val_loss": "val/loss",
          "num_skip_connect": "skip connections", "num_parameter_free": "parameter-free ops",
          "s_per_iteration": "s / iteration", "peak_rss_mb": "peak memory (MB)", "wall_s": "wall time (s)"}


def _label(column: str) -> str:
    return LABELS.get(column, column.replace("_test_acc", " test acc"))


def _table(rows: Sequence[Mapping[str, Any]], axis_names: Sequence[str], columns: Sequence[str]) -> list[str]:
    head = ["method", *axis_names, "seeds", *[_label(c) for c in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["method"], *[str(row.get(a)) for a in axis_names], f"{row['seeds']}/{row['cells']}"]
        cells += [_fmt(row.get(f"{c}_mean"), row.get(f"{c}_std"), c) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _status_line(results: Sequence[CellResult]) -> str:
    done = sum(r.status == "finished" for r in results)
    line = f"{done} of {len(results)} cells finished."
    for status in ("running", "interrupted", "failed", "incomplete", "pending"):
        names = [r.name for r in results if r.status == status]
        if names:
            shown = ", ".join(f"`{n}`" for n in names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            line += f" {status.capitalize()}: {shown}."
    if any(r.status == "failed" for r in results):
        line += f" A failed cell's output is in its `{cellfiles.CELL_LOG}`, its error in `{cellfiles.CELL_RECORD}`."
    return line


def markdown(title: str, study_hash: str | None, results: Sequence[CellResult], axis_names: Sequence[str],
             pictures: Mapping[str, list[str]], diagrams: Mapping[str, str]) -> str:
    """The text of ``report.md``."""
    rows = summary_rows(results, axis_names)
    metric, benchmark = headline(results), datasets(results)
    quality = [c for c in value_columns(metric, benchmark) if c not in TIMING]
    lines = [f"# Study: {title}", "", (f"Study hash `{study_hash}`. " if study_hash else "") + _status_line(results),
             "", "## Results", "",
             "Mean ± sample standard deviation over the seeds whose cell finished (seeds: finished / all); the "
             "validation metric is the supernet's after the last epoch, the counts are of the derived normal cell "
             "(NAS-Bench-201: the cell).", "", *_table(rows, axis_names, quality), "", "## Cost", "",
             "Seconds per search iteration (epoch wall time over its iterations, validation included), the largest "
             "resident memory of the run's process, and the wall time of all its attempts.", "",
             *_table(rows, axis_names, TIMING), ""]
    if pictures:
        lines += ["## Curves", "", "One line per method: the mean over seeds, in a band from the lowest to the "
                  "highest seed.", ""]
        for heading, files in pictures.items():
            lines += [*([f"### {heading}", ""] if heading else []), *[f"![{Path(f).stem}]({f})" for f in files], ""]
    if diagrams:
        lines += ["## Derived cells", "",
                  "The final normal cell of every run (NAS-Bench-201: the cell); every cell type's diagram is in the "
                  "run directory (`genotype_<cell>.png`).", "",
                  *_diagram_tables(results, axis_names, diagrams), ""]
    lines += ["## Cells", "", *_cell_table(results, axis_names, metric, benchmark), ""]
    return "\n".join(lines)


def _diagram_tables(results: Sequence[CellResult], axis_names: Sequence[str],
                    diagrams: Mapping[str, str]) -> list[str]:
    seeds = list(dict.fromkeys(r.seed for r in results))
    lines = []
    combos = list(dict.fromkeys(tuple(r.axes.items()) for r in results))
    for combo in combos:
        if combo:
            lines += [f"### {', '.join(f'{k}={v}' for k, v in combo)}", ""]
        lines += ["| method | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|" + "---|" * (len(seeds) + 1)]
        for method in dict.fromkeys(r.method for r in results):
            by_seed = {r.seed: r for r in results if r.method == method and tuple(r.axes.items()) == combo}
            cells = [f"![{by_seed[s].name}]({diagrams[by_seed[s].name]})" if s in by_seed and by_seed[s].name in
                     diagrams else "–" for s in seeds]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _cell_table(results: Sequence[CellResult], axis_names: Sequence[str], metric: str | None,
                benchmark: Sequence[str]) -> list[str]:
    columns = [c for c in value_columns(metric, benchmark) if c not in TIMING]
    head = ["cell", "status", "attempts", *[_label(c) for c in columns], "genotype"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        values = cell_values(r, metric, benchmark) if r.status == "finished" else {}
        genotype = f"`{r.data.genotype}`" if r.data and r.data.genotype is not None else "–"
        lines.append("| " + " | ".join([f"`{r.name}`", r.status, str(r.record.get("attempts", "–")),
                                        *[_fmt(values.get(c), None, c) for c in columns], genotype]) + " |")
    return lines


# ----------------------------------------------------------------------------------------- pictures
CURVES: dict[str, tuple[str, Callable[[RunData], Mapping[int, float]]]] = {
    "alpha_entropy": ("mean alpha entropy (nats), derived cell type", lambda d: d.entropy),
    "skip_connect": ("skip connections in the derived normal cell", lambda d: d.skips),
}


def _curve_figure(title: str, ylabel: str, lines: Mapping[str, list[Mapping[int, float]]]) -> Any:
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = figure.add_subplot()
    for i, (label, curves) in enumerate(lines.items()):
        epochs = sorted({e for c in curves for e in c})
        values = [[c[e] for c in curves if e in c] for e in epochs]
        mean = np.array([np.mean(v) for v in values])
        color = f"C{i % 10}"
        ax.plot(epochs, mean, color=color, label=f"{label} ({len(curves)} seeds)", marker="." if len(epochs) < 20
                else None)
        if len(curves) > 1:
            ax.fill_between(epochs, [min(v) for v in values], [max(v) for v in values], color=color, alpha=0.2,
                            linewidth=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def draw_curves(root: Path, results: Sequence[CellResult], axis_names: Sequence[str]) -> dict[str, list[str]]:
    """One PNG per curve and axis combination in ``report_files/``; ``{heading: [relative paths]}``."""
    from darts_pl.viz import figure_bytes

    metric, benchmark = headline(results), datasets(results)
    curves = dict(CURVES)
    if metric:
        curves = {_column(metric): (f"supernet {metric}", lambda d: d.scalars.get(metric, {})), **curves}
    for dataset in benchmark:
        curves[f"{dataset}_test_acc"] = (f"benchmark test accuracy, {dataset}",
                                         lambda d, k=dataset: d.benchmark.get(k, {}))
    done = [r for r in results if r.status == "finished" and r.data]
    pictures: dict[str, list[str]] = {}
    for combo in dict.fromkeys(tuple(r.axes.items()) for r in done):
        suffix = "".join(f"__{k}={v}" for k, v in combo)
        heading = ", ".join(f"{k}={v}" for k, v in combo)
        for name, (ylabel, read) in curves.items():
            lines: dict[str, list[Mapping[int, float]]] = {}
            for r in done:
                if tuple(r.axes.items()) == combo and read(r.data):
                    lines.setdefault(r.method, []).append(read(r.data))
            if not lines:
                continue
            path = f"{FILES}/curve_{name}{suffix}.png"
            figure = _curve_figure(f"{ylabel}{' (' + heading + ')' if heading else ''}", ylabel.split(",")[0], lines)
            atomic_write(root / path, figure_bytes(figure, "png", dpi=100))
            pictures.setdefault(heading, []).append(path)
    return pictures


def draw_cells(root: Path, results: Sequence[CellResult]) -> dict[str, str]:
    """Each finished cell's derived normal cell (NAS-Bench-201: the cell; recurrent: its cell) in
    ``report_files/cells/``, drawn once per genotype file; ``{cell name: relative path}``. Every cell type's diagram
    is in the run directory (``genotype_<cell>.png``)."""
    from darts_pl.study.rundata import derived_cell
    from darts_pl.viz import save_cell_diagram

    diagrams = {}
    for r in results:
        if r.status != "finished" or not r.data or r.data.genotype is None or r.run is None:
            continue
        path = f"{FILES}/cells/{r.name.replace('/', '__')}.png"
        target = root / path
        if not target.is_file() or target.stat().st_mtime < (r.run / "genotype.json").stat().st_mtime:
            save_cell_diagram(r.data.genotype, target, derived_cell(r.data.genotype), engine="matplotlib", dpi=80)
        diagrams[r.name] = path
    return diagrams


# ----------------------------------------------------------------------------------------- the whole report
@dataclass
class Report:
    """The built report: its rows (for W&B) and files."""

    title: str
    results: list[CellResult]
    summary: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    pictures: dict[str, list[str]]
    diagrams: dict[str, str]


def build_report(root: str | Path, cache: dict[Path, tuple[float, RunData]] | None = None,
                 draw: bool = True) -> Report:
    """Read every cell of the study in ``root`` and write ``report.md``, ``report.csv``, ``cells.csv`` and the
    pictures (atomically; each refresh replaces them).

    Args:
        root: The study's root.
        cache: Run data already read (the runner keeps one while it runs).
        draw: Draw the curves and the cell diagrams.
    """
    root = Path(root)
    record = load_study_record(root)
    results = collect(root, cache)
    axis_names = [a["name"] for a in record.get("grid", {}).get("axes", [])] or list(
        dict.fromkeys(k for r in results for k in r.axes))
    title = record.get("grid", {}).get("name") or root.absolute().name
    pictures = draw_curves(root, results, axis_names) if draw else {}
    diagrams = draw_cells(root, results) if draw else {}
    summary, per_cell = summary_rows(results, axis_names), cell_rows(root, results, axis_names)
    atomic_write(root / REPORT, markdown(title, record.get("hash"), results, axis_names, pictures, diagrams))
    atomic_write(root / REPORT_CSV, _csv_text(summary))
    atomic_write(root / CELLS_CSV, _csv_text(per_cell))
    return Report(title, results, summary, per_cell, pictures, diagrams)


def log_to_wandb(root: Path, report: Report, settings: Mapping[str, Any]) -> None:
    """The report's tables and pictures to W&B: one run of job type ``study-report`` in the study's group, resumed
    by every refresh (its id is the study's hash).

    Args:
        root: The study's root (W&B's files go to ``<root>/wandb``).
        report: The built report.
        settings: ``project``, ``entity``, ``group`` and ``id`` of the study record's ``wandb`` entry.
    """
    import wandb

    run = wandb.init(project=settings.get("project"), entity=settings.get("entity"), group=settings.get("group"),
                     job_type="study-report", name=f"{settings.get('group')}-report", id=settings.get("id"),
                     resume="allow", dir=str(root), reinit="finish_previous")
    try:
        payload: dict[str, Any] = {}
        for key, rows in (("study/summary", report.summary), ("study/cells", report.cells)):
            columns = list(dict.fromkeys(k for row in rows for k in row))
            payload[key] = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
        for files in report.pictures.values():
            for path in files:
                payload[f"study/{Path(path).stem}"] = wandb.Image(str(root / path))
        run.log(payload)
    finally:
        run.finish()
