"""Ground truth for NAS-Bench-201 cells: what the tabular benchmark says a derived cell scores.

NAS-Bench-201 (Dong & Yang, ICLR 2020) trained every one of the 15,625 cells of its space with fixed settings and
stored the results; NATS-Bench (Dong et al., TPAMI 2021) is its successor, whose topology search space ("tss") holds
the same cells and numbers in a faster format. A cell found by a search on that space is looked up there instead
of being trained. The file is the user's own copy (this module never downloads anything), read through the
authors' API packages (``pip install 'darts-pl[nb201]'``):

* ``NATS-tss-v1_0-3ffb9-simple/`` (or ``-full/``), the NATS-Bench topology archive (recommended): opened with
  ``nats_bench.create(path, "tss", fast_mode=True)``, which reads ``meta.pickle.pbz2`` (the 15,625 architecture
  strings) at once and one ``NNNNNN.pickle.pbz2`` per architecture when it is first looked up;
* ``NATS-tss-v1_0-3ffb9.pickle.pbz2``: ``nats_bench.create(path, "tss", fast_mode=False)``, all of it at once;
* ``NAS-Bench-201-v1_0-e61699.pth`` or ``NAS-Bench-201-v1_1-096897.pth``: ``nas_201_api.NASBench201API(path)``.

What is reported (:data:`TABLE5`) is what the NAS-Bench-201 paper's Table 5 reports for a searched cell, as the
authors' code computes it (AutoDL-Projects, ``exps/NAS-Bench-201/visualize.py``, ``get_accs``): the accuracy after
the last epoch of the chosen training schedule (``hp="200"``: 200 epochs, the paper's numbers; ``hp="12"``: 12),
averaged over the trials (seeds) the benchmark holds, in percent:

==================  ========  ==========  ==================================================================
dataset             split     set name    what it is
==================  ========  ==========  ==================================================================
``cifar10-valid``   train     train       trained on CIFAR-10's 25k "train" half, accuracy on it
``cifar10-valid``   valid     x-valid     same network, on the 25k "valid" half (Table 5's CIFAR-10 validation)
``cifar10``         train     train       trained on all 50k training images, accuracy on them
``cifar10``         test      ori-test    same network, on the 10k test images (Table 5's CIFAR-10 test)
``cifar100``        train     train       trained on the 50k training images, accuracy on them
``cifar100``        valid     x-valid     same network, on 5k of the 10k test images (Table 5's validation)
``cifar100``        test      x-test      same network, on the other 5k test images (Table 5's test)
``ImageNet16-120``  train     train       trained on the 151,700 training images of the first 120 classes
``ImageNet16-120``  valid     x-valid     same network, on 3k of the 6k validation images (Table 5's validation)
``ImageNet16-120``  test      x-test      same network, on the other 3k (Table 5's test)
==================  ========  ==========  ==================================================================

A value the file does not hold (NAS-Bench-201 v1.0 has only ``cifar10-valid`` for ``hp="12"``) is ``None``.

Example::

    bench = TabularBenchmark("~/.torch/NATS-tss-v1_0-3ffb9-simple")
    bench.query("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    # {"arch": ..., "index": ..., "hp": "200", "accuracy": {"cifar10": {"train": ..., "test": ...}, ...}, "trials": ...}

Note:
    The APIs' files are Python pickles (``torch.load`` for the ``.pth``): open only files from the benchmark's
    authors. The ``.pth`` is read with ``weights_only=True`` and numpy's scalar types allowed (its parameter
    counts are numpy floats), so it loads under PyTorch >= 2.6, where ``nas_201_api``'s own ``torch.load`` fails.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import NB201Genotype, from_nb201_str, to_nb201_str, validate

Hp = Literal["12", "200"]
Kind = Literal["nats-tss-archive", "nats-tss-file", "nas-bench-201"]

TABLE5: dict[str, dict[str, str]] = {
    "cifar10-valid": {"train": "train", "valid": "x-valid"},
    "cifar10": {"train": "train", "test": "ori-test"},
    "cifar100": {"train": "train", "valid": "x-valid", "test": "x-test"},
    "ImageNet16-120": {"train": "train", "valid": "x-valid", "test": "x-test"},
}
"""``{dataset: {split: the benchmark's set name}}``: the numbers of the NB201 paper's Table 5, plus each training
accuracy (the module docstring says what each one is)."""

SPLIT_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "cifar10-valid": {"train": "trained on the 25k-image CIFAR-10 'train' half, accuracy on it",
                      "valid": "trained on the 'train' half, accuracy on the 25k-image 'valid' half (x-valid)"},
    "cifar10": {"train": "trained on all 50k CIFAR-10 training images, accuracy on them",
                "test": "trained on all 50k training images, accuracy on the 10k test images (ori-test)"},
    "cifar100": {"train": "trained on the 50k CIFAR-100 training images, accuracy on them",
                 "valid": "accuracy on 5k of the 10k test images (x-valid)",
                 "test": "accuracy on the other 5k test images (x-test)"},
    "ImageNet16-120": {"train": "trained on the 151,700 ImageNet16-120 training images, accuracy on them",
                       "valid": "accuracy on 3k of the 6k validation images (x-valid)",
                       "test": "accuracy on the other 3k validation images (x-test)"},
}

NATS_META = "meta.pickle.pbz2"
HISTORY_FILE = "benchmark.json"
HISTORY_FORMAT = "darts_pl.benchmark/1"
INSTALL = "pip install 'darts-pl[nb201]' (or: pip install nats_bench nas-bench-201)"
KNOWN_FILES = ("NATS-tss-v1_0-3ffb9-simple/ (or -full/), NATS-tss-v1_0-3ffb9.pickle.pbz2, or "
               "NAS-Bench-201-v1_0-e61699.pth / NAS-Bench-201-v1_1-096897.pth")


# ------------------------------------------------------------------------------------------ architecture strings
def benchmark_arch_str(arch: NB201Genotype | str) -> str:
    """The benchmark's spelling of a cell: every edge ``j -> i`` (``j < i``) listed, in input order, edges a
    derivation left out written as ``none``.

    The benchmark stores each of its cells with all 6 edges; a derivation that drops edges (a threshold, top-k)
    gives the same cell with fewer, which this restores.

    Raises:
        ConfigurationError: Two different ops on one edge (not a NAS-Bench-201 cell), or an unparsable string.
    """
    genotype = from_nb201_str(arch) if isinstance(arch, str) else validate(arch)
    nodes = []
    for i, node in enumerate(genotype.nodes, start=1):
        ops: dict[int, str] = {}
        for op, j in node:
            if op == "none":
                ops.setdefault(j, "none")
                continue
            if ops.get(j, "none") != "none":
                raise ConfigurationError(f"The cell {to_nb201_str(genotype)!r} has two ops ({ops[j]!r}, {op!r}) on "
                                         f"the edge {j} -> {i}; a NAS-Bench-201 cell has one op per edge.")
            ops[j] = op
        nodes.append(tuple((ops.get(j, "none"), j) for j in range(i)))
    return to_nb201_str(NB201Genotype(nodes))


# --------------------------------------------------------------------------------------------------- the files
def benchmark_kind(path: str | os.PathLike[str]) -> Kind:
    """Which of the benchmark formats ``path`` is (by its layout and its first bytes, without loading it).

    Raises:
        ConfigurationError: ``path`` does not exist, or is none of the known formats.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigurationError(f"The benchmark path {str(path)!r} does not exist; give the path of your copy of "
                                 f"{KNOWN_FILES} (nothing is downloaded).")
    if path.is_dir():
        if (path / NATS_META).is_file():
            return "nats-tss-archive"
        raise ConfigurationError(f"The benchmark path {str(path)!r} is a directory without {NATS_META}, so not a "
                                 f"NATS-Bench archive; give the path of {KNOWN_FILES}.")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head[:3] == b"BZh":  # nats_bench's pickle_save: a bz2-compressed pickle
        return "nats-tss-file"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch.save: zip archive, or the legacy pickle format
        return "nas-bench-201"
    raise ConfigurationError(f"The benchmark path {str(path)!r} is neither a bz2 pickle (NATS-Bench) nor a "
                             f"torch.save file (NAS-Bench-201); give the path of {KNOWN_FILES}.")


def _numpy_safe_globals() -> list[Any]:
    """numpy scalars, dtypes and arrays, under the names numpy 1 and numpy 2 pickle them, for ``weights_only``."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: list[Any] = [np.dtype, np.ndarray]
    for name in ("scalar", "_reconstruct"):
        function = getattr(multiarray, name)
        allowed += [function, (function, f"numpy.core.multiarray.{name}"),
                    (function, f"numpy._core.multiarray.{name}")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
    return allowed


@contextlib.contextmanager
def _readable(path: Path, kind: Kind) -> Iterator[None]:
    """Turn the APIs' many failure types on a bad file into one ``ConfigurationError``."""
    try:
        yield
    except ImportError as err:
        raise ConfigurationError(f"Reading the benchmark {str(path)!r} needs the package {err.name or err}: "
                                 f"{INSTALL}.") from None
    except (OSError, EOFError, ValueError, AssertionError, KeyError, TypeError, AttributeError,
            pickle.UnpicklingError, RuntimeError) as err:
        text = " ".join(str(err).split())[:300]
        raise ConfigurationError(f"Cannot read the benchmark {str(path)!r} as {kind} ({type(err).__name__}: "
                                 f"{text}); give the path of an unmodified copy of {KNOWN_FILES}.") from None


def _open_api(path: Path, kind: Kind) -> Any:
    with _readable(path, kind):
        if kind == "nas-bench-201":
            import torch
            from nas_201_api import NASBench201API

            # The API's own torch.load (weights_only=True since PyTorch 2.6) refuses the numpy scalars in the file.
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                return NASBench201API(str(path), verbose=False)
        import nats_bench

        return nats_bench.create(str(path), "tss", fast_mode=kind == "nats-tss-archive", verbose=False)


class TabularBenchmark:
    """NAS-Bench-201 / NATS-Bench (topology) opened from the user's file; :meth:`query` looks a cell up.

    The format is found from ``path`` (see the module docstring); a NATS-Bench archive directory is opened in
    the API's fast mode (one small file read per architecture looked up). Lookups are cached by architecture.

    Args:
        path: The benchmark file or archive directory.
        hp: The training schedule whose results are read: ``"200"`` epochs (the paper's tables) or ``"12"``.

    Raises:
        ConfigurationError: A missing path, a file of another kind (NATS-Bench's size space, a corrupt or
            unreadable file), ``hp`` not ``"12"``/``"200"``, or the API package not installed.
    """

    def __init__(self, path: str | os.PathLike[str], hp: Hp = "200") -> None:
        if hp not in ("12", "200"):
            raise ConfigurationError(f"hp={hp!r} is not a NAS-Bench-201 training schedule; use '200' (200 epochs, "
                                     "the paper's tables) or '12' (quoted in YAML: hp: \"200\").")
        self.path = Path(path).expanduser()
        self.hp = hp
        self.kind: Kind = benchmark_kind(self.path)
        self.api = _open_api(self.path, self.kind)
        first = self.api.meta_archs[0] if len(self.api) else ""
        if not (isinstance(first, str) and first.startswith("|")):
            raise ConfigurationError(f"The benchmark {str(self.path)!r} holds no NAS-Bench-201 cells (its first "
                                     f"architecture is {first!r}: NATS-Bench's size search space?); give the path of "
                                     f"the topology benchmark, {KNOWN_FILES}.")
        self._cache: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.api)

    def __repr__(self) -> str:
        return f"TabularBenchmark({str(self.path)!r}, hp={self.hp!r}, kind={self.kind!r}, {len(self)} architectures)"

    def describe(self) -> dict[str, Any]:
        """What was opened: ``path``, ``kind``, ``hp``, ``num_archs`` (JSON-ready)."""
        return {"path": str(self.path), "kind": self.kind, "hp": self.hp, "num_archs": len(self)}

    def index(self, arch: NB201Genotype | str) -> int:
        """The benchmark's index of a cell.

        Raises:
            ConfigurationError: The benchmark does not hold the cell (other ops, another number of nodes).
        """
        arch_str = benchmark_arch_str(arch)
        index = int(self.api.query_index_by_arch(arch_str))
        if index < 0:
            raise ConfigurationError(
                f"The architecture {arch_str!r} is not in the benchmark {str(self.path)!r} ({len(self)} "
                "architectures): NAS-Bench-201 cells have 4 nodes (6 edges) with the ops none, skip_connect, "
                "nor_conv_1x1, nor_conv_3x3, avg_pool_3x3; search with darts_pl.search.NB201SearchSpace and its "
                "default primitives and num_nodes.")
        return index

    def query(self, arch: NB201Genotype | str) -> dict[str, Any]:
        """Look a cell up: ``{"arch", "index", "hp", "accuracy": {dataset: {split: percent or None}},
        "trials": {dataset: number of trials averaged}}`` for the datasets and splits of :data:`TABLE5`.

        Raises:
            ConfigurationError: The cell is not in the benchmark, or the file has no results for ``hp``.
        """
        arch_str = benchmark_arch_str(arch)
        if arch_str not in self._cache:
            index = self.index(arch_str)
            self._cache[arch_str] = {"arch": arch_str, "index": index, "hp": self.hp,
                                     **_table5(self._results(index))}
        return json.loads(json.dumps(self._cache[arch_str]))  # a copy the caller may change

    def _results(self, index: int) -> Any:
        """The API's ``ArchResults`` of ``index`` for ``hp``. From an archive it is read now and not kept by the API
        (the lookup's record is cached instead: a few hundred bytes, not the API's curves of every epoch, nor the
        trained weights a ``-full`` archive carries)."""
        api = self.api
        with _readable(self.path, self.kind):
            if self.kind == "nats-tss-archive":
                api.reload(api.archive_dir, index)
                by_hp = api.arch2infos_dict.pop(index)
                api.evaluated_indexes.discard(index)
            else:
                by_hp = api.arch2infos_dict.get(index, {})
        if self.hp not in by_hp:
            raise ConfigurationError(f"The benchmark {str(self.path)!r} has no results for hp={self.hp!r} "
                                     f"(architecture {index} has {list(by_hp)}); use one of those.")
        return by_hp[self.hp]


def _table5(results: Any) -> dict[str, Any]:
    """``accuracy`` and ``trials`` of one ``ArchResults``: the last epoch, averaged over its trials."""
    accuracy: dict[str, dict[str, float | None]] = {}
    trials: dict[str, int] = {}
    names = set(results.get_dataset_names())
    for dataset, splits in TABLE5.items():
        trials[dataset] = len(results.get_dataset_seeds(dataset)) if dataset in names else 0
        accuracy[dataset] = {}
        for split, setname in splits.items():
            value = None
            if dataset in names:
                try:  # iepoch=None: after the last epoch; is_random=False: the mean over the trials
                    value = float(results.get_metrics(dataset, setname, iepoch=None, is_random=False)["accuracy"])
                except (KeyError, ValueError):  # a set this file does not hold (v1.0's 12-epoch results)
                    value = None
            accuracy[dataset][split] = value
    return {"accuracy": accuracy, "trials": trials}


def metric_keys(record: Mapping[str, Any], prefix: str = "benchmark") -> dict[str, float]:
    """``{"benchmark/<dataset>/<split>_acc": percent}`` of one :meth:`TabularBenchmark.query` result
    (values the file does not hold are left out)."""
    return {f"{prefix}/{dataset}/{split}_acc": value
            for dataset, splits in record["accuracy"].items() for split, value in splits.items() if value is not None}


# ---------------------------------------------------------------------------------------------- benchmark.json
def history_document(benchmark: Mapping[str, Any], epochs: list[dict[str, Any]],
                     final: dict[str, Any] | None) -> dict[str, Any]:
    """The content of ``benchmark.json`` (see :func:`load_benchmark_history`)."""
    return {
        "format": HISTORY_FORMAT,
        "benchmark": dict(benchmark),
        "unit": "percent",
        "description": "Accuracy the tabular benchmark holds for the cell derived after each search epoch (and at "
                       "the end of the fit): after the last epoch of the benchmark's hp-epoch training, averaged "
                       "over its trials. Splits as in the NAS-Bench-201 paper's Table 5.",
        "splits": TABLE5,
        "split_descriptions": SPLIT_DESCRIPTIONS,
        "epochs": epochs,
        "final": final,
    }


@dataclass
class BenchmarkHistory:
    """``benchmark.json`` of a run, ready to plot: ``accuracy[dataset][split][i]`` belongs to ``epochs[i]``.

    Attributes:
        epochs: Search epochs looked up, in order.
        steps: The logging step of each (the search iteration that ended the epoch).
        archs: The derived cell of each epoch, in the benchmark's string.
        indexes: Its index in the benchmark.
        accuracy: ``{dataset: {split: [percent or None per epoch]}}``.
        final: The lookup at the end of the fit (``None`` while the run has not finished).
        benchmark: ``path``, ``kind``, ``hp``, ``num_archs`` of the benchmark file used.
        splits: ``{dataset: {split: the benchmark's set name}}`` (:data:`TABLE5`).
    """

    epochs: list[int]
    steps: list[int]
    archs: list[str]
    indexes: list[int]
    accuracy: dict[str, dict[str, list[float | None]]]
    final: dict[str, Any] | None
    benchmark: dict[str, Any]
    splits: dict[str, dict[str, str]] = field(default_factory=lambda: dict(TABLE5))


def load_benchmark_history(run_dir: str | os.PathLike[str]) -> BenchmarkHistory:
    """Read a run's ``benchmark.json`` (written by :class:`darts_pl.callbacks.BenchmarkLookup`).

    Example::

        history = load_benchmark_history("runs/search_nb201_cifar10/darts/version_0")
        plt.plot(history.epochs, history.accuracy["cifar10"]["test"])   # percent, per search epoch

    Raises:
        ConfigurationError: No ``benchmark.json`` in ``run_dir``, or a file of another format.
    """
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        raise ConfigurationError(f"No {HISTORY_FILE} in {str(run_dir)!r}: that search ran without "
                                 "darts_pl.callbacks.BenchmarkLookup (add --config configs/benchmark_nb201.yaml "
                                 "--trainer.callbacks.init_args.path BENCHMARK to the search command).")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"Cannot read {str(path)!r}: {err}.") from None
    if not isinstance(document, dict) or document.get("format") != HISTORY_FORMAT:
        raise ConfigurationError(f"{str(path)!r} is not a {HISTORY_FORMAT} file.")
    records = document["epochs"]
    accuracy = {dataset: {split: [record["accuracy"].get(dataset, {}).get(split) for record in records]
                          for split in splits} for dataset, splits in document["splits"].items()}
    return BenchmarkHistory(epochs=[r["epoch"] for r in records], steps=[r["step"] for r in records],
                            archs=[r["arch"] for r in records], indexes=[r["index"] for r in records],
                            accuracy=accuracy, final=document.get("final"), benchmark=document["benchmark"],
                            splits=document["splits"])
