"""A search space of a user's own, defined in this file alone, runs through ``darts-pl fit`` with the monitors, the
genotype files, the notebook's loading code, resume and DDP, and no file under ``darts_pl/`` knows it.

The space is a chain of mixed ops (a MobileNet-like sequence: stem, ``length`` mixed ops one after another, global
pooling, classifier), with a genotype kind of its own (one op per position), drawn by the package's drawing code
from the kind's own cell graph. README's "A new search space" shows this file's two classes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.genotypes import CellGenotype, CellGraph, GenotypeError, known_cnn_ops
from darts_pl.ops import GlobalAvgPool
from darts_pl.parts import Derivation, Edge, Relaxation
from darts_pl.search import LossOutput, MixedOp, SearchSpace
from darts_pl.search.base import init_alpha, per_edge

from .conftest import REPO

# --------------------------------------------------------------------------------------------- the user's code


@dataclass(eq=True)
class ChainGenotype(CellGenotype, kind="chain"):
    """One op per position of the chain."""

    ops: list[str]

    collapse_cells = ("chain",)

    def cells(self) -> dict[str, list[list[tuple[str, int]]]]:
        return {"chain": [[(op, 0)] for op in self.ops]}  # each node has one input: the node before it

    def validate(self, ops: Collection[str] | None = None) -> ChainGenotype:
        known = tuple(ops) if ops is not None else known_cnn_ops()
        if not isinstance(self.ops, list) or not self.ops or any(op not in known for op in self.ops):
            raise GenotypeError(f"chain genotype: ops={self.ops!r}; give a non-empty list of ops from {known}.")
        return self

    def fields_dict(self) -> dict[str, Any]:
        return {"ops": list(self.ops)}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> ChainGenotype:
        return cls(list(data["ops"])).validate()

    def cell_graph(self, cell: str) -> CellGraph:
        nodes = tuple(str(i) for i in range(1, len(self.ops)))
        edges = tuple((str(i), str(i + 1), op) for i, op in enumerate(self.ops))
        return CellGraph("chain", ("0",), nodes, str(len(self.ops)), edges, reduction="last")


class ChainSearchSpace(SearchSpace):
    """A chain of ``length`` mixed ops over ``primitives``, each position's choice one row of ``arch["chain"]``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, channels: int = 8, length: int = 3,
                 primitives: Sequence[str] = ("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"),
                 relaxation: Relaxation | None = None, edge: Edge | None = None,
                 derivation: Derivation | None = None) -> None:
        super().__init__(relaxation, derivation, edge)
        self._primitives = list(primitives)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.edges = nn.ModuleList(MixedOp(channels, 1, self._primitives) for _ in range(length))
        self.pool = GlobalAvgPool()
        self.classifier = nn.Linear(channels, num_classes)
        self.add_cells({"chain": init_alpha(length, len(self._primitives), "randn", 1e-3)}, in_degrees=[1] * length)

    @property
    def primitives(self) -> list[str]:
        return list(self._primitives)

    def forward(self, batch: Any, stream: str = "train", regularized: bool = False) -> LossOutput:
        x, y = batch
        rows, index, scales = per_edge(self.edge_weights()["chain"])
        h = self.stem(x)
        for e, mixed in enumerate(self.edges):
            h = self.edge(mixed, h, rows[e], index[e], scales[e])
        logits = self.classifier(self.pool(h).flatten(1))
        return LossOutput(F.cross_entropy(logits, y), logits.detach(), y)

    def edge_labels(self) -> list[str]:
        return [f"{i}->{i + 1}" for i in range(len(self.edges))]

    def genotype(self) -> ChainGenotype:
        probs = self.derivation_probs()["chain"]  # (length, ops)
        if "none" in self._primitives:
            probs[:, self._primitives.index("none")] = -1.0  # never derive `none`
        return ChainGenotype([self._primitives[j] for j in probs.argmax(-1).tolist()])


# --------------------------------------------------------------------------------------------- the runs
SPACE = __name__ + ".ChainSearchSpace"
TINY = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar",
        "false", "--trainer.enable_model_summary", "false", "--data.init_args.batch_size", "16",
        "--trainer.deterministic", "true"]


def config(tmp_path: Path, overlay: str = "") -> Path:
    """The quickstart with the chain space instead of the DARTS one (a user's config file)."""
    path = tmp_path / "chain.yaml"
    path.write_text(f"model:\n  init_args:\n    method: chain\n    space:\n      class_path: {SPACE}\n"
                    f"      init_args:\n        channels: 4\n        length: 3\n{overlay}")
    return path


def fit(tmp_path: Path, root: Path, *extra: str, overlay: str = "",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "darts_pl.cli", "fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
           "--config", str(config(tmp_path, overlay)), *TINY, "--trainer.default_root_dir", str(root), *extra]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=environment, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def only_run(root: Path) -> Path:
    runs = [p.parent for p in root.rglob("config.yaml")]
    assert len(runs) == 1, runs
    return runs[0]


def test_no_file_of_the_package_names_the_chain_space() -> None:
    for path in (REPO / "darts_pl").rglob("*.py"):
        assert "chainsearchspace" not in path.read_text().lower() and "chaingenotype" not in path.read_text().lower()


@pytest.mark.slow
def test_the_chain_space_searches_with_the_monitors_files_and_notebook_loading(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    fit(tmp_path, root, "--trainer.max_epochs", "2")
    run = only_run(root)
    genotype = json.loads((run / "genotype.json").read_text())
    assert genotype["kind"] == "chain" and genotype["class_path"] == f"{__name__}.ChainGenotype"
    assert len(genotype["ops"]) == 3
    assert (run / "genotype_chain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (run / "genotypes").glob("*.json")) == ["epoch_000.json", "epoch_001.json"]
    meta = json.loads((run / "alpha_history.json").read_text())
    assert meta["cell_types"] == ["chain"] and meta["edge_labels"] == ["0->1", "1->2", "2->3"]
    assert meta["selected"] == {"chain": "selected_chain"}
    # The notebook's loading code, in a fresh process that never imported this module: the file names its class.
    code = ("from darts_pl.genotypes import load; g = load(r'%s'); "
            "print(g.kind, g.collapse_counts(), g.describe().splitlines()[0])" % (run / "genotype.json"))
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("chain {'chain': {'num_skip_connect': ") and "chain cell: 3 = last(" in shown.stdout


@pytest.mark.slow
def test_the_chain_space_resumes_to_the_uninterrupted_alphas(tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    fit(tmp_path, whole, "--trainer.max_epochs", "2")
    fit(tmp_path, parts, "--trainer.max_epochs", "1")
    fit(tmp_path, parts, "--trainer.max_epochs", "2", "--ckpt_path", "last")
    a = torch.load(only_run(whole) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(only_run(parts) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(a["space.arch.chain"], b["space.arch.chain"])


@pytest.mark.slow
@pytest.mark.ddp
def test_the_chain_space_searches_under_ddp_with_gdas_parts(tmp_path: Path) -> None:
    """Two gloo processes, with GDAS's sampling relaxation and sampled-op edge on the user's space: the CLI tells DDP
    that unsampled ops get no gradient, every rank derives the same cell, one set of files."""
    overlay = ("        relaxation: {class_path: darts_pl.parts.GumbelSoftmax}\n"
               "        edge: {class_path: darts_pl.parts.SampledOp}\n")
    root = tmp_path / "runs"
    done = fit(tmp_path, root, "--trainer.max_epochs", "1", "--trainer.devices", "2", "--trainer.strategy", "ddp",
               "--trainer.accelerator", "cpu", overlay=overlay)
    config_text = (only_run(root) / "config.yaml").read_text()
    assert "GumbelSoftmax" in config_text and "ddp_find_unused_parameters_true" in done.stderr
    assert json.loads((only_run(root) / "genotype.json").read_text())["kind"] == "chain"
    assert (done.stderr + done.stdout).count("Final genotype written") == 1
