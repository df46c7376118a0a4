"""Shared fixtures: tiny search spaces, tiny data in real on-disk formats, and the shared real samples."""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Run oneDNN's AVX2 kernels on every machine (before the first convolution picks them): AVX2-only CPUs are where its
# strided 1x1 backward-weights kernel corrupted the heap (tests/crash_sweep.py), and an AVX-512 machine hides that.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
# Tests use tiny tensors, where intra-op threads buy nothing and two busy processes that each spin two
# OpenMP threads on a 2-core machine slow each other down several-fold.
torch.set_num_threads(int(os.environ.get("DARTS_PL_TEST_THREADS", "1")))
if "PYTEST_XDIST_WORKER" in os.environ:  # the processes the tests start (CLI runs, DDP ranks) too, as DDP does
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA}")
    return SHARED_DATA


def write_cifar10_batches(root: Path, per_batch: int = 8, test_size: int = 8, seed: int = 0) -> Path:
    """Tiny CIFAR-10 python batches in the real pickle format (``cifar-10-batches-py/``)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, name: str) -> None:
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(i % 10) for i in range(n)]
        with open(folder / name, "wb") as handle:
            # The official files are Python 2 pickles whose str keys load as str with latin1.
            pickle.dump({"batch_label": name, "labels": labels, "data": data,
                         "filenames": [f"{name}_{i}.png" for i in range(n)]}, handle, protocol=2)

    for i in range(1, 6):
        batch(per_batch, f"data_batch_{i}")
    batch(test_size, "test_batch")
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": classes, "num_cases_per_batch": per_batch, "num_vis": 3072}, handle)
    return root


@pytest.fixture
def fake_cifar_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny batches are not the official files: accept them without their MD5 sums (tests only;
    ``batches.meta`` is checked separately by ``CIFAR10._load_meta``)."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)


@pytest.fixture
def tiny_cifar(tmp_path: Path, fake_cifar_checksums: None) -> Path:
    """A tiny CIFAR-10 directory in the real pickle format."""
    return write_cifar10_batches(tmp_path / "cifar10")


TINY_WORDS = (*(f"{a}{b}{c}" for a in "bdgkmp" for b in "aeiou" for c in "xn"), "<unk>", "N")[-50:]
"""Made-up words, with PTB's ``<unk>`` and ``N`` tokens: 50 words, 51 with ``<eos>``."""


def write_tiny_corpus(root: Path, pattern: str = "ptb.{split}.txt", lines: tuple[int, int, int] = (300, 80, 80),
                      seed: int = 0) -> Path:
    """A made-up corpus in Mikolov's token-file format: one sentence a line, words separated by single
    spaces, a space before and after (as in ``ptb.*.txt``); every word appears in the training split."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid", "test"), lines):
        sentences = [[rng.choice(TINY_WORDS) for _ in range(rng.randint(3, 14))] for _ in range(count)]
        if split == "train":
            sentences[0] = list(TINY_WORDS)
        text = "".join(f" {' '.join(words)} \n" for words in sentences)
        (root / pattern.format(split=split)).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def tiny_ptb(tmp_path: Path) -> Path:
    """A tiny made-up corpus laid out as Penn Treebank (``ptb.{train,valid,test}.txt``): 51 tokens."""
    return write_tiny_corpus(tmp_path / "ptb")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------------------------------- shared helpers
def run_cli(*args: str) -> int:
    """``darts-pl`` in this process (``main([...])``); its exit status."""
    from darts_pl.cli import main

    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def tiny_space(**kwargs: object):  # -> CNNSearchSpace (imported lazily: conftest loads before the package)
    """A 3-cell, 4-channel DARTS supernet for the digits (1 input channel, 10 classes); ``kwargs`` override."""
    from darts_pl.search import CNNSearchSpace

    return CNNSearchSpace(**({"num_classes": 10, "in_channels": 1, "channels": 4, "num_cells": 3} | kwargs))


def trainer(root: Path, **kwargs: object) -> L.Trainer:
    """A CPU trainer for a couple of batches, quiet (no logger, bar, summary, checkpoints); ``kwargs`` override."""
    args = dict(default_root_dir=root, accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return L.Trainer(**(args | kwargs))


def run_dir(root: Path, version: int = 0) -> Path:
    """The run directory ``<root>/<name>/version_N`` of a job's only name: the search method (``darts``,
    ``gdas``...), or ``lightning_logs`` for a run without one."""
    found = sorted(root.glob(f"*/version_{version}"))
    assert len(found) == 1, found
    return found[0]


SHARED_SETUP_MODULES = {"test_data_vision", "test_faults", "test_monitor", "test_selection", "test_study",
                        "test_tabular", "test_train_cnn"}
"""Test modules with module- or session-scoped fixtures that take seconds to build (a finished search, a study):
under ``pytest -n 2 --dist loadgroup`` each stays on one worker, which builds them once; the other tests go to
whichever worker is free."""


END_TO_END: dict[str, tuple[str, ...]] = {
    "test_faults": ("test_",),  # the fault matrix: killed, stopped and starved CLI runs in subprocesses
    "test_reliability": ("test_killed_", "test_two_seeded_"),
    "test_variant_configs": ("test_variant_runs_on_the_quickstart", "test_resumed_stochastic_search"),
    "test_device_check": ("test_cpu_mode_",),
}
"""Tests that run whole searches in subprocesses, by module and name prefix: ``slow`` like the ones marked in place
(and every multi-process ``ddp`` test), so that ``pytest -m "not slow"`` leaves the end-to-end runs out."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        end_to_end = item.get_closest_marker("ddp") is not None or item.name.startswith(
            END_TO_END.get(item.path.stem, ()))
        if end_to_end and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
        module = item.path.stem
        if module in SHARED_SETUP_MODULES:
            item.add_marker(pytest.mark.xdist_group(module))
