"""Cost of NAS-Bench-201 / NATS-Bench lookups (``darts_pl.tabular``): per query, and the memory of opening a file.

Builds benchmark files in the real on-disk formats with the API packages' own classes (``ArchResults``,
``ResultsCount``, ``nats_bench.pickle_save``, ``torch.save``), with made-up metrics, then opens each in a fresh
process and reports the time to open it, the time of a first (cold) and a repeated (cached) query, and the
process's resident memory after importing ``darts_pl.tabular``, after opening the file and after the queries, and
its peak. The formats:

* ``archive``: ``NATS-tss-v1_0-3ffb9-simple/`` (``meta.pickle.pbz2`` and one ``NNNNNN.pickle.pbz2`` per
  architecture), opened in fast mode: only the queried architectures are read. Realistic size by default:
  15,625 architectures, 200 + 12 epochs of results on 4 datasets, 3 trials each;
* ``file``: ``NATS-tss-v1_0-3ffb9.pickle.pbz2``, everything in one bz2 pickle, loaded at once;
* ``pth``: ``NAS-Bench-201-v1_1-096897.pth`` (``torch.save``), loaded at once.

    python -m benchmarks.bench_tabular                                  # archive, 15,625 architectures
    python -m benchmarks.bench_tabular --formats file pth --num-archs 1000
    python -m benchmarks.bench_tabular --num-archs 50 --epochs 20 --queries 5   # a quick check

The files go to ``--root`` (a temporary directory by default, removed afterwards; ``--keep`` keeps them; a
``--root`` already holding them is reused). Writing the 15,625-architecture archive takes long (bz2 at level 9,
as the authors' ``pickle_save``): ``--workers`` writes in parallel. Run the measurement on a quiet machine.

The writers (:func:`write_nats_archive`, :func:`write_nats_file`, :func:`write_nb201_pth`) are also the tests'
source of benchmark files in the real formats.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
SEEDS = (777, 888, 999)
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
EVAL_SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
             "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
"""The evaluation sets the benchmark holds per dataset (NATS-Bench's ``tss`` results)."""

Metric = Callable[[int, str, str, int], float]
"""``(arch index, dataset, set name, seed) -> final accuracy in percent`` of a made-up benchmark."""


def all_arch_strings() -> list[str]:
    """The 15,625 cells of the space as architecture strings, in the benchmark's order of edges."""
    archs = []
    for ops in itertools.product(NB201_OPS, repeat=6):
        a, b, c, d, e, f = ops
        archs.append(f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|")
    return archs


def default_metric(index: int, dataset: str, setname: str, seed: int) -> float:
    """Made-up final accuracies, distinct per architecture, dataset, set and trial."""
    base = {"cifar10-valid": 80.0, "cifar10": 85.0, "cifar100": 60.0, "ImageNet16-120": 30.0}[dataset]
    offset = {"train": 9.0, "x-valid": 0.0, "x-test": 0.5, "ori-test": 0.25}[setname]
    return base + offset + (index % 97) * 0.1 + SEEDS.index(seed) * 0.01


def _curve(final: float, epochs: int) -> dict[int, float]:
    """Per-epoch values rising to ``final`` after the last epoch (as float64, like the authors' meters)."""
    return {e: final * (0.5 + 0.5 * (e + 1) / epochs) for e in range(epochs)}


def _results_count(cls: type, index: int, arch: str, dataset: str, seed: int, epochs: int, metric: Metric,
                   old_eval: bool) -> Any:
    """One trial in the API's ``ResultsCount``: train and eval curves, losses, times, cost figures."""
    train_acc = _curve(metric(index, dataset, "train", seed), epochs)
    train_loss = {e: 3.0 / (e + 1) for e in range(epochs)}
    config = {"name": "infer.tiny", "C": 16, "N": 5, "channel": 16, "num_cells": 5, "arch_str": arch,
              "class_num": CLASSES[dataset]}
    # params as numpy float64, as the authors' count_parameters_in_MB gives it
    result = cls(dataset, None, train_acc, train_loss, np.float64(0.05 + index * 1e-5), 10.0 + index * 1e-3,
                 config, seed, epochs, [0.01, 0.011])
    times = {e: 12.5 for e in range(epochs)}
    result.update_train_info(train_acc, {e: min(100.0, v + 5) for e, v in train_acc.items()}, train_loss, times)
    for setname in EVAL_SETS[dataset]:
        accs = _curve(metric(index, dataset, setname, seed), epochs)
        if old_eval:  # NAS-Bench-201 v1.0: per-epoch dicts without times
            result.update_OLD_eval(setname, accs, {e: 1.0 for e in range(epochs)})
        else:
            result.update_eval({f"{setname}@{e}": v for e, v in accs.items()},
                               {f"{setname}@{e}": 1.0 for e in range(epochs)},
                               {f"{setname}@{e}": 1.5 for e in range(epochs)})
    return result


def arch_results(api_module: Any, index: int, arch: str, epochs: int, metric: Metric, *,
                 datasets: Sequence[str] = tuple(CLASSES), seeds: Sequence[int] = SEEDS,
                 old_eval: bool = False) -> dict[str, Any]:
    """``ArchResults.state_dict()`` of one architecture trained for ``epochs``, built with ``api_module``'s
    classes (``nats_bench`` or ``nas_201_api``)."""
    results = api_module.ArchResults(index, arch)
    for dataset in datasets:
        for seed in seeds:
            results.update(dataset, seed, _results_count(api_module.ResultsCount, index, arch, dataset, seed,
                                                         epochs, metric, old_eval))
    return results.state_dict()


def _nats_hp_results(index: int, arch: str, epochs: int, metric: Metric) -> OrderedDict[str, Any]:
    """``{"12": ..., "200": ...}`` as one NATS-Bench (tss) architecture file holds it: 12 epochs with one
    trial, ``epochs`` (200) with three."""
    import nats_bench

    return OrderedDict({"12": arch_results(nats_bench, index, arch, 12, metric, seeds=SEEDS[1:2]),
                        "200": arch_results(nats_bench, index, arch, epochs, metric)})


def _write_one(job: tuple[str, int, str, int, Metric]) -> None:
    from nats_bench import pickle_save

    folder, index, arch, epochs, metric = job
    pickle_save(_nats_hp_results(index, arch, epochs, metric), str(Path(folder) / f"{index:06d}.pickle"))


def write_nats_archive(folder: str | os.PathLike[str], archs: Sequence[str], epochs: int = 200,
                       metric: Metric = default_metric, workers: int = 1) -> Path:
    """A NATS-Bench topology archive (``NATS-tss-v1_0-3ffb9-simple/``): ``meta.pickle.pbz2`` and one
    ``NNNNNN.pickle.pbz2`` per architecture, as the authors' ``exps/NATS-Bench/tss-collect.py`` writes them."""
    from nats_bench import pickle_save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pickle_save({"meta_archs": list(archs), "total_archs": len(archs), "arch2infos": None,
                 "evaluated_indexes": set()}, str(folder / "meta.pickle"))
    jobs = [(str(folder), index, arch, epochs, metric) for index, arch in enumerate(archs)]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_write_one, jobs, chunksize=16)
    else:
        for job in jobs:
            _write_one(job)
    return folder


def write_nats_file(path: str | os.PathLike[str], archs: Sequence[str], epochs: int = 200,
                    metric: Metric = default_metric) -> Path:
    """A single-file NATS-Bench topology benchmark (``NATS-tss-v1_0-3ffb9.pickle.pbz2``)."""
    from nats_bench import pickle_save

    path = Path(path)
    stem = str(path)[: -len(".pbz2")] if str(path).endswith(".pbz2") else str(path)
    infos = {index: _nats_hp_results(index, arch, epochs, metric) for index, arch in enumerate(archs)}
    pickle_save({"meta_archs": list(archs), "total_archs": len(archs), "arch2infos": infos,
                 "evaluated_indexes": set(infos)}, stem)
    return Path(stem + ".pbz2")


def write_nb201_pth(path: str | os.PathLike[str], archs: Sequence[str], epochs: int = 200,
                    metric: Metric = default_metric) -> Path:
    """A NAS-Bench-201 benchmark file (``NAS-Bench-201-v1_0-e61699.pth`` layout): ``{"meta_archs", "arch2infos":
    {index: {"less": 12-epoch results on cifar10-valid, "full": 200-epoch results}}, "evaluated_indexes"}``, saved
    with ``torch.save`` as the authors' ``exps/NAS-Bench-201/statistics.py`` (v1.0's per-epoch eval dicts)."""
    import nas_201_api
    import torch

    infos = {index: {"less": arch_results(nas_201_api, index, arch, 12, metric, datasets=("cifar10-valid",),
                                          seeds=SEEDS[1:2], old_eval=True),
                     "full": arch_results(nas_201_api, index, arch, epochs, metric, old_eval=True)}
             for index, arch in enumerate(archs)}
    torch.save({"meta_archs": list(archs), "arch2infos": infos, "evaluated_indexes": sorted(infos)}, str(path))
    return Path(path)


# ------------------------------------------------------------------------------------------------- measurement
def _peak_rss_mb() -> float:
    """The process's peak resident memory so far, MB (Linux ``ru_maxrss`` is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    """The process's resident memory now, MB (``/proc/self/statm``; the peak where that is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return _peak_rss_mb()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(path: str, queries: int, repeats: int) -> dict[str, Any]:
    """Open ``path`` and query it (run in a fresh process: the memory figures are that process's)."""
    from darts_pl.tabular import TabularBenchmark

    import_rss = _rss_mb()
    start = time.perf_counter()
    bench = TabularBenchmark(path)
    open_s = time.perf_counter() - start
    open_rss = _rss_mb()
    step = max(1, len(bench) // queries)
    archs = [bench.api.meta_archs[i] for i in range(0, len(bench), step)][:queries]
    cold = []
    for arch in archs:
        start = time.perf_counter()
        bench.query(arch)
        cold.append(time.perf_counter() - start)
    warm = []
    for _ in range(repeats):
        for arch in archs:
            start = time.perf_counter()
            bench.query(arch)
            warm.append(time.perf_counter() - start)
    return {"kind": bench.kind, "num_archs": len(bench), "open_s": open_s, "cold_ms": 1e3 * statistics.median(cold),
            "cold_max_ms": 1e3 * max(cold), "cached_ms": 1e3 * statistics.median(warm),
            "rss_import_mb": import_rss, "rss_open_mb": open_rss, "rss_queries_mb": _rss_mb(),
            "peak_rss_mb": _peak_rss_mb(), "queries": len(archs)}


def _measure_in_subprocess(path: Path, queries: int, repeats: int) -> dict[str, Any]:
    code = ("import json, sys; from benchmarks.bench_tabular import measure; "
            f"print(json.dumps(measure({str(path)!r}, {queries}, {repeats})))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                     os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _build(fmt: str, root: Path, archs: list[str], epochs: int, workers: int) -> tuple[Path, float]:
    target = {"archive": root / "NATS-tss-v1_0-3ffb9-simple", "file": root / "NATS-tss-v1_0-3ffb9.pickle.pbz2",
              "pth": root / "NAS-Bench-201-v1_1-096897.pth"}[fmt]
    if target.exists():
        return target, 0.0
    start = time.perf_counter()
    if fmt == "archive":
        write_nats_archive(target, archs, epochs, workers=workers)
    elif fmt == "file":
        write_nats_file(target, archs, epochs)
    else:
        write_nb201_pth(target, archs, epochs)
    return target, time.perf_counter() - start


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else list(path.iterdir())
    return sum(f.stat().st_size for f in files) / 2**20


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", nargs="+", choices=["archive", "file", "pth"], default=["archive"])
    parser.add_argument("--num-archs", type=int, default=15625, help="architectures in each file (15,625 real)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs of the long schedule (200 real)")
    parser.add_argument("--queries", type=int, default=50, help="distinct architectures looked up")
    parser.add_argument("--repeats", type=int, default=20, help="cached lookups of each")
    parser.add_argument("--workers", type=int, default=1, help="processes writing the archive")
    parser.add_argument("--root", type=Path, default=None, help="where the files go (reused when present)")
    parser.add_argument("--keep", action="store_true", help="keep a temporary --root")
    args = parser.parse_args(argv)
    archs = all_arch_strings()[: args.num_archs]
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_tabular_"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for fmt in args.formats:
            target, write_s = _build(fmt, root, archs, args.epochs, args.workers)
            result = _measure_in_subprocess(target, args.queries, args.repeats)
            rows.append((fmt, target.name, _size_mb(target), write_s, result))
    finally:
        if args.root is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{args.num_archs} architectures, {args.epochs}-epoch results, {args.queries} queries "
          f"(+{args.repeats} cached rounds); times are medians")
    header = ("format", "file", "MB on disk", "write s", "open s", "cold query ms", "cached query ms",
              "RSS after import MB", "RSS after open MB", "RSS after queries MB", "peak RSS MB")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for fmt, name, size, write_s, r in rows:
        print(f"| {fmt} | {name} | {size:.1f} | {write_s:.1f} | {r['open_s']:.2f} | {r['cold_ms']:.2f} | "
              f"{r['cached_ms']:.4f} | {r['rss_import_mb']:.0f} | {r['rss_open_mb']:.0f} | {r['rss_queries_mb']:.0f} | "
              f"{r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
