"""NAS-Bench-201 / NATS-Bench lookups (``darts_pl.tabular``) and the ``BenchmarkLookup`` callback.

The benchmark files are built in the real on-disk formats with the API packages' own classes
(``benchmarks/bench_tabular.py``: ``ArchResults``/``ResultsCount`` of ``nats_bench`` and ``nas_201_api``, written with
``nats_bench.pickle_save`` and ``torch.save``) and made-up metrics, then opened through the same code path a user
takes. The reference for every value is the authors' own accessor, ``api.get_more_info(..., is_random=False)``, and
the made-up numbers averaged over the trials.
"""
from __future__ import annotations

import bz2
import csv
import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from benchmarks import bench_tabular
from benchmarks.bench_tabular import (
    SEEDS,
    all_arch_strings,
    default_metric,
    write_nats_archive,
    write_nats_file,
    write_nb201_pth,
)
from darts_pl.callbacks import ArchitectureMonitor, BenchmarkLookup
from darts_pl.cli import main
from darts_pl.data import DigitsDataModule
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import NB201Genotype
from darts_pl.modules import LitSearch
from darts_pl.search import CNNSearchSpace, NB201SearchSpace
from darts_pl.tabular import (
    TABLE5,
    TabularBenchmark,
    benchmark_arch_str,
    benchmark_kind,
    load_benchmark_history,
    metric_keys,
)

from .conftest import REPO, run_dir

nats_bench = pytest.importorskip("nats_bench", reason="pip install 'darts-pl[nb201]' (pinned in requirements.txt)")
nas_201_api = pytest.importorskip("nas_201_api", reason="pip install 'darts-pl[nb201]' (pinned in requirements.txt)")

ALL = all_arch_strings()
PICKED = [ALL[i] for i in (0, 1, 777, 11472, 15624)]  # five cells of the space, from all-none to all-avg-pool
TWO_OPS = ["|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
           for ops in itertools.product(["skip_connect", "nor_conv_3x3"], repeat=6)]
"""Every cell a space of these two ops derives: the benchmark of the fits below."""
EPOCHS = 5  # the "200-epoch" schedule of the tiny files
FORMATS = {"archive": "NATS-tss-v1_0-3ffb9-simple", "file": "NATS-tss-v1_0-3ffb9.pickle.pbz2",
           "pth": "NAS-Bench-201-v1_1-096897.pth"}
KINDS = {"archive": "nats-tss-archive", "file": "nats-tss-file", "pth": "nas-bench-201"}


@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchmarks")
    return {"archive": write_nats_archive(root / FORMATS["archive"], PICKED, EPOCHS),
            "file": write_nats_file(root / FORMATS["file"], PICKED, EPOCHS),
            "pth": write_nb201_pth(root / FORMATS["pth"], PICKED, EPOCHS)}


@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
def two_ops_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nats_archive(tmp_path_factory.mktemp("two_ops") / FORMATS["archive"], TWO_OPS, 3)


def expected(index: int, dataset: str, setname: str, seeds=SEEDS) -> float:
    """The made-up final accuracy averaged over the trials, as the paper reports it."""
    return float(np.mean([default_metric(index, dataset, setname, seed) for seed in seeds]))


def authors_api(fmt: str, path: Path):
    if fmt == "pth":  # from the loaded dict, a way the API takes too
        return nas_201_api.NASBench201API(torch.load(path, weights_only=False), verbose=False)
    return nats_bench.create(str(path), "tss", fast_mode=fmt == "archive", verbose=False)


# --------------------------------------------------------------------------------------------------- lookups
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_lookup_gives_table5_numbers_of_every_format(files: dict[str, Path], fmt: str) -> None:
    bench = TabularBenchmark(files[fmt])
    assert bench.kind == KINDS[fmt] and len(bench) == len(PICKED)
    api = authors_api(fmt, files[fmt])
    for index, arch in enumerate(PICKED):
        record = bench.query(arch)
        assert (record["arch"], record["index"], record["hp"]) == (arch, index, "200")
        assert record["trials"] == dict.fromkeys(TABLE5, 3)
        for dataset, splits in TABLE5.items():
            for split, setname in splits.items():
                assert record["accuracy"][dataset][split] == pytest.approx(expected(index, dataset, setname), abs=1e-9)
            # the authors' accessor (train on the dataset's training set; valid/test as their tables)
            info = api.get_more_info(index, dataset, hp="200", is_random=False)
            assert record["accuracy"][dataset]["train"] == pytest.approx(info["train-accuracy"], abs=1e-9)
            if "valid" in splits:
                assert record["accuracy"][dataset]["valid"] == pytest.approx(info["valid-accuracy"], abs=1e-9)
            if "test" in splits:
                assert record["accuracy"][dataset]["test"] == pytest.approx(info["test-accuracy"], abs=1e-9)
    assert metric_keys(bench.query(PICKED[2]))["benchmark/cifar10/test_acc"] == pytest.approx(
        expected(2, "cifar10", "ori-test"))
    assert len(metric_keys(bench.query(PICKED[2]))) == 10


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_twelve_epoch_results(files: dict[str, Path], fmt: str) -> None:
    """hp="12": one trial; NAS-Bench-201 v1.0 holds only cifar10-valid for it, the rest is None."""
    record = TabularBenchmark(files[fmt], hp="12").query(PICKED[3])
    assert record["accuracy"]["cifar10-valid"]["valid"] == pytest.approx(
        expected(3, "cifar10-valid", "x-valid", seeds=SEEDS[1:2]))
    if fmt == "pth":
        assert record["trials"]["cifar100"] == 0 and record["accuracy"]["cifar100"] == dict.fromkeys(
            ("train", "valid", "test"))
        assert "benchmark/cifar100/test_acc" not in metric_keys(record)
    else:
        assert record["trials"] == dict.fromkeys(TABLE5, 1)
        assert record["accuracy"]["ImageNet16-120"]["test"] == pytest.approx(
            expected(3, "ImageNet16-120", "x-test", seeds=SEEDS[1:2]))


def test_archive_reads_only_what_it_looks_up(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    bench = TabularBenchmark(files["archive"])
    reads = []
    original = bench.api.reload
    monkeypatch.setattr(bench.api, "reload", lambda root, index: (reads.append(index), original(root, index)))
    assert bench.api.arch2infos_dict == {}  # fast mode: nothing but the architecture strings yet
    first = bench.query(PICKED[4])
    assert reads == [4] and bench.api.arch2infos_dict == {}  # read once; the API keeps nothing
    assert bench.query(PICKED[4]) == first and reads == [4]  # then from the cache


def test_pth_written_by_numpy_1_in_the_legacy_torch_format_loads(files: dict[str, Path], tmp_path: Path) -> None:
    """NAS-Bench-201 v1.0 (2020) was saved in torch's legacy format with numpy 1's names for numpy scalars."""
    data = torch.load(files["pth"], weights_only=False)
    buffer = io.BytesIO()
    torch.save(data, buffer, _use_new_zipfile_serialization=False)
    raw = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\nscalar" in raw
    legacy = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
    legacy.write_bytes(raw)
    record = TabularBenchmark(legacy).query(PICKED[1])
    assert record["accuracy"]["cifar100"]["valid"] == pytest.approx(expected(1, "cifar100", "x-valid"))


def test_derived_cells_are_spelled_as_the_benchmark() -> None:
    full = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    assert benchmark_arch_str(full) == full
    # a derivation that keeps fewer edges (threshold, top-k), in another order
    sparse = NB201Genotype([(("nor_conv_3x3", 0),), (("skip_connect", 1),), (("avg_pool_3x3", 2), ("none", 0))])
    assert benchmark_arch_str(sparse) == full
    with pytest.raises(ConfigurationError, match=r"two ops .* on the edge 0 -> 1"):
        benchmark_arch_str(NB201Genotype([(("nor_conv_3x3", 0), ("skip_connect", 0))]))


def test_unknown_cells_are_one_line(files: dict[str, Path]) -> None:
    bench = TabularBenchmark(files["archive"])
    absent = ALL[5]  # a real cell of the space, not among the file's five
    with pytest.raises(ConfigurationError, match=r"is not in the benchmark .* \(5 architectures\)") as info:
        bench.query(absent)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match="is not in the benchmark"):
        bench.query("|sep_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")  # an op of the DARTS space
    with pytest.raises(ConfigurationError, match="is not in the benchmark"):
        bench.query("|nor_conv_3x3~0|+|none~0|none~1|")  # 3 nodes


def test_bad_files_are_one_line(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {
        "does not exist": tmp_path / "missing.pth",
        "is a directory without meta.pickle.pbz2": tmp_path,
        "neither a bz2 pickle": tmp_path / "notes.txt",
        "Cannot read the benchmark": tmp_path / "torn.pickle.pbz2",
        "holds no NAS-Bench-201 cells": tmp_path / "NATS-sss-v1_0-50262-simple",
    }
    (tmp_path / "notes.txt").write_text("not a benchmark")
    (tmp_path / "torn.pickle.pbz2").write_bytes(files["file"].read_bytes()[:300])
    sss = cases["holds no NAS-Bench-201 cells"]
    sss.mkdir()
    nats_bench.pickle_save({"meta_archs": ["8:16:24:32:40", "64:64:64:64:64"], "total_archs": 2,
                            "arch2infos": None, "evaluated_indexes": set()}, str(sss / "meta.pickle"))
    for message, path in cases.items():
        with pytest.raises(ConfigurationError, match=message) as info:
            TabularBenchmark(path)
        assert "\n" not in str(info.value), message
    with pytest.raises(ConfigurationError, match="hp='90' is not a NAS-Bench-201 training schedule"):
        TabularBenchmark(files["pth"], hp="90")  # type: ignore[arg-type]
    # an archive missing the file of the architecture looked up
    broken = tmp_path / "broken"
    write_nats_archive(broken, PICKED[:2], 2)
    (broken / "000001.pickle.pbz2").unlink()
    with pytest.raises(ConfigurationError, match=r"Cannot read the benchmark .* as nats-tss-archive"):
        TabularBenchmark(broken).query(PICKED[1])
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    with pytest.raises(ConfigurationError, match=r"needs the package nats_bench: pip install 'darts-pl\[nb201\]'"):
        TabularBenchmark(files["archive"])
    assert benchmark_kind(files["pth"]) == "nas-bench-201"


def test_the_archive_format_is_the_authors(files: dict[str, Path]) -> None:
    """What tss-collect.py writes: a bz2 pickle of the strings, one bz2 pickle of {"12", "200"} per architecture."""
    with bz2.open(files["archive"] / "meta.pickle.pbz2") as handle:
        meta = __import__("pickle").load(handle)
    assert meta["meta_archs"] == PICKED and meta["total_archs"] == 5
    assert sorted(p.name for p in files["archive"].iterdir()) == [
        "000000.pickle.pbz2", "000001.pickle.pbz2", "000002.pickle.pbz2", "000003.pickle.pbz2",
        "000004.pickle.pbz2", "meta.pickle.pbz2"]
    data = nats_bench.pickle_load(str(files["archive"] / "000002.pickle.pbz2"))
    assert list(data) == ["12", "200"] and data["200"]["arch_str"] == PICKED[2]


# -------------------------------------------------------------------------------------------------- callback
def _space(**kwargs) -> NB201SearchSpace:
    return NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1,
                            primitives=["skip_connect", "nor_conv_3x3"], **kwargs)


def _trainer(tmp_path: Path, callbacks: list, **kwargs) -> L.Trainer:
    return L.Trainer(default_root_dir=tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=1,
                     enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                     callbacks=callbacks, **kwargs)


def test_callback_logs_each_epochs_cell_at_the_monitors_step(two_ops_archive: Path, tmp_path: Path) -> None:
    lookup = BenchmarkLookup(str(two_ops_archive), verbose=False)
    logger = CSVLogger(tmp_path, name="run")
    trainer = _trainer(tmp_path, [ArchitectureMonitor(log_media=False), lookup], logger=logger)
    module = LitSearch(_space())
    trainer.fit(module, DigitsDataModule(batch_size=16))
    history = load_benchmark_history(logger.log_dir)
    assert history.epochs == [0, 1] and history.steps == [1, 3]  # the iteration that ended each epoch
    assert history.benchmark == {"path": str(two_ops_archive), "kind": "nats-tss-archive", "hp": "200",
                                 "num_archs": 64}
    assert history.final is not None and history.final["arch"] == str(module.space.genotype())
    assert history.final["epoch"] == 1
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    for i, (epoch, step, arch) in enumerate(zip(history.epochs, history.steps, history.archs)):
        index = TWO_OPS.index(arch)
        assert history.indexes[i] == index
        row = next(r for r in rows if r.get("benchmark/cifar10/test_acc") and int(r["epoch"]) == epoch)
        assert int(row["step"]) == step
        monitor = next(r for r in rows if r.get("alpha_entropy/cell") and int(r["epoch"]) == epoch)
        assert int(monitor["step"]) == step  # the same x value as the alpha monitor's
        for dataset, splits in TABLE5.items():
            for split, setname in splits.items():
                value = expected(index, dataset, setname)
                assert history.accuracy[dataset][split][i] == pytest.approx(value)
                assert float(row[f"benchmark/{dataset}/{split}_acc"]) == pytest.approx(value, abs=1e-4)
    document = json.loads((Path(logger.log_dir) / "benchmark.json").read_text())
    assert document["splits"]["cifar10"] == {"train": "train", "test": "ori-test"} and document["unit"] == "percent"


def test_callback_state_survives_a_checkpoint(two_ops_archive: Path) -> None:
    lookup = BenchmarkLookup(str(two_ops_archive))
    lookup.history = [{"epoch": 0, "step": 1, "arch": TWO_OPS[3], "index": 3, "hp": "200", "accuracy": {},
                       "trials": {}}]
    restored = BenchmarkLookup(str(two_ops_archive))
    restored.load_state_dict(json.loads(json.dumps(lookup.state_dict())))
    assert restored.history == lookup.history and restored.final is None
    assert lookup.state_key == "BenchmarkLookup{'hp': '200'}"


def test_callback_refuses_what_the_benchmark_cannot_hold(two_ops_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"derives cnn genotypes; search with .*NB201SearchSpace"):
        _trainer(tmp_path, [BenchmarkLookup(str(two_ops_archive))], logger=False).fit(
            LitSearch(CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)),
            DigitsDataModule(batch_size=16))
    space = NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1,
                             primitives=["skip_connect", "sep_conv_3x3"])
    with pytest.raises(ConfigurationError, match=r"ops \['sep_conv_3x3'\]"):
        _trainer(tmp_path, [BenchmarkLookup(str(two_ops_archive))], logger=False).fit(
            LitSearch(space), DigitsDataModule(batch_size=16))
    with pytest.raises(ConfigurationError, match="needs the benchmark's path"):
        BenchmarkLookup()
    # a cell the file does not hold: stops after the epoch, one line
    few = write_nats_archive(tmp_path / "few", TWO_OPS[:1], 2)
    with pytest.raises(ConfigurationError, match="is not in the benchmark"):
        _trainer(tmp_path, [BenchmarkLookup(str(few))], logger=False).fit(
            LitSearch(_space()), DigitsDataModule(batch_size=16))


# -------------------------------------------------------------------------------------- the quickstart, resumed
QUICK = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.deterministic", "true", "--model.init_args.space.init_args.channels", "4",
         "--model.init_args.space.init_args.num_cells", "1", "--data.init_args.batch_size", "16",
         "--model.init_args.space.init_args.primitives", "[skip_connect, nor_conv_3x3]"]


def _quickstart(root: Path, archive: Path, epochs: int, *extra: str) -> None:
    args = ["fit", "--config", str(REPO / "configs" / "quickstart_nb201.yaml"),
            "--config", str(REPO / "configs" / "benchmark_nb201.yaml"),
            "--trainer.callbacks.init_args.path", str(archive), *QUICK, "--trainer.max_epochs", str(epochs),
            "--model.init_args.weight_scheduler.init_args.T_max", "2", "--trainer.default_root_dir", str(root), *extra]
    try:
        main(args)
    except SystemExit as exit_:
        assert not exit_.code


@pytest.mark.slow
def test_quickstart_with_the_overlay_resumes_to_the_same_history(two_ops_archive: Path, tmp_path: Path) -> None:
    _quickstart(tmp_path / "straight", two_ops_archive, 2)
    straight = run_dir(tmp_path / "straight")
    document = json.loads((straight / "benchmark.json").read_text())
    assert [r["epoch"] for r in document["epochs"]] == [0, 1]
    for record in document["epochs"]:
        genotype = json.loads((straight / "genotypes" / f"epoch_{record['epoch']:03d}.json").read_text())
        assert record["arch"] == genotype["nb201"]  # the cell GenotypeCheckpoint wrote for that epoch
        index = TWO_OPS.index(record["arch"])
        assert record["accuracy"]["ImageNet16-120"]["test"] == pytest.approx(expected(index, "ImageNet16-120",
                                                                                      "x-test"))
    assert document["final"]["arch"] == json.loads((straight / "genotype.json").read_text())["nb201"]
    # killed after epoch 0, continued with --ckpt_path last: the same history, the same final lookup
    _quickstart(tmp_path / "resumed", two_ops_archive, 1)
    resumed = run_dir(tmp_path / "resumed")
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert [r["epoch"] for r in ckpt["callbacks"]["BenchmarkLookup{'hp': '200'}"]["history"]] == [0]
    _quickstart(tmp_path / "resumed", two_ops_archive, 2, "--ckpt_path", "last")
    again = json.loads((resumed / "benchmark.json").read_text())
    assert again["epochs"] == document["epochs"] and again["final"] == document["final"]


@pytest.mark.slow
def test_cli_refuses_the_lookup_on_a_darts_space_in_one_line(two_ops_archive: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "darts_pl.cli", "fit", "--config",
                           str(REPO / "configs" / "quickstart.yaml"), "--config",
                           str(REPO / "configs" / "benchmark_nb201.yaml"), "--trainer.callbacks.init_args.path",
                           str(two_ops_archive), "--trainer.default_root_dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("darts-pl: error: BenchmarkLookup looks cells up in NAS-Bench-201, but LitSearch derives "
                           "cnn genotypes; search with") and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------------- DDP
DDP_SCRIPT = r"""
import json, os, sys
import lightning as L
from lightning.pytorch.callbacks import Callback
from darts_pl.callbacks import BenchmarkLookup
from darts_pl.data import DigitsDataModule
from darts_pl.modules import LitSearch
from darts_pl.search import NB201SearchSpace

class Record(Callback):
    def on_train_epoch_end(self, trainer, pl_module):  # after BenchmarkLookup's (listed first)
        lookup = next(cb for cb in trainer.callbacks if isinstance(cb, BenchmarkLookup))
        logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("benchmark/")}
        # One file per rank: two processes printing to one pipe may interleave their lines.
        with open(f"{sys.argv[2]}/rank{trainer.global_rank}.jsonl", "a") as handle:
            handle.write(json.dumps({"history": lookup.history, "logged": logged}) + "\n")

if __name__ == "__main__":
    archive, root = sys.argv[1], sys.argv[2]
    os.makedirs(root, exist_ok=True)
    space = NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1,
                             primitives=["skip_connect", "nor_conv_3x3"])
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2, limit_train_batches=2,
                        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=root,
                        callbacks=[BenchmarkLookup(archive, verbose=False), Record()])
    try:
        trainer.fit(LitSearch(space), DigitsDataModule(batch_size=16))
    except Exception as err:
        print("RAISED", type(err).__name__, str(err).strip().splitlines()[-1][:600], flush=True)
    else:
        print("FINISHED", flush=True)
"""


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_ranks_log_the_same_lookups_and_fail_together(two_ops_archive: Path, tmp_path: Path) -> None:
    """Rank 0 looks up and broadcasts: both ranks hold and log the same values; one file. A cell the benchmark
    lacks stops both ranks with the same one-line error (none waits in the broadcast)."""
    script = tmp_path / "ddp_lookup.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

    def run(archive: Path, root: Path) -> list[str]:
        done = subprocess.run([sys.executable, str(script), str(archive), str(root)], capture_output=True, text=True,
                              timeout=240, env=env, cwd=REPO)
        return [*done.stdout.strip().splitlines(), "STDERR " + done.stderr[-3000:]]

    out = run(two_ops_archive, tmp_path / "ok")
    assert "FINISHED" in out, out
    seen = {rank: [json.loads(line) for line in (tmp_path / "ok" / f"rank{rank}.jsonl").read_text().splitlines()]
            for rank in (0, 1)}
    assert seen[0] == seen[1] and len(seen[0]) == 2
    assert len(seen[0][-1]["logged"]) == 10 and len(seen[0][-1]["history"]) == 2
    assert list((tmp_path / "ok").glob("benchmark.json")) and not list((tmp_path / "ok").rglob("*.tmp"))
    few = write_nats_archive(tmp_path / "few", TWO_OPS[:1], 2)
    out = run(few, tmp_path / "few_run")
    assert any(line.startswith("RAISED") and "is not in the benchmark" in line for line in out), out


# ------------------------------------------------------------------------------------------------ the script
def test_bench_script_runs_on_tiny_files(tmp_path: Path, capsys) -> None:
    bench_tabular.main(["--formats", "archive", "pth", "--num-archs", "6", "--epochs", "3", "--queries", "3",
                "--repeats", "2", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| archive | NATS-tss-v1_0-3ffb9-simple |" in out and "| pth | NAS-Bench-201-v1_1-096897.pth |" in out
