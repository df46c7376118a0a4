"""``notebooks/inspect_alphas.ipynb`` runs top to bottom on the run directory of a convolutional search and
of a recurrent one (the latter written in the same file format the monitor writes)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import lightning as L
import nbformat
import numpy as np
import pytest
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from darts_pl.callbacks import ArchitectureMonitor, GenotypeCheckpoint
from darts_pl.callbacks.monitor import AlphaHistory
from darts_pl.data import DigitsDataModule
from darts_pl.genotypes import RNN_PRIMITIVES, derive_rnn, save
from darts_pl.modules.search import LitSearch
from darts_pl.search import CNNSearchSpace

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "inspect_alphas.ipynb"


def execute(cwd: Path) -> tuple[str, int]:
    """Run every cell in a fresh kernel started in ``cwd``; returns the printed text and the number of images."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    images = sum("image/png" in out.get("data", {}) for out in outputs if out.output_type == "display_data")
    return text, images


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert "DARTS_RUN_DIR" in code[0].source and "RUN_DIR" in code[0].source


@pytest.mark.parametrize("method", ["darts", "fair_darts"])
def test_notebook_runs_on_a_cnn_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """DARTS, and FairDARTS: sigmoid weights that do not sum to one, cells derived by threshold (dropped edges)."""
    from darts_pl.search import Sigmoid, Threshold
    from darts_pl.strategies import ZeroOneLoss

    torch.manual_seed(0)
    parts, extra, ops = {}, {}, 8
    if method == "fair_darts":
        ops = 7
        parts = {"relaxation": Sigmoid(), "derivation": Threshold(), "alpha_init": "zeros",
                 "primitives": ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                                "dil_conv_3x3", "dil_conv_5x5"]}
        extra = {"regularizers": [ZeroOneLoss()]}
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, accelerator="cpu", devices=1,
                        logger=False, default_root_dir=str(tmp_path / "run"), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[ArchitectureMonitor(), GenotypeCheckpoint(verbose=False, diagrams=False)])
    trainer.fit(LitSearch(CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3, **parts), **extra),
                DigitsDataModule(batch_size=16))
    monkeypatch.setenv("DARTS_RUN_DIR", str(tmp_path / "run"))
    text, images = execute(tmp_path)
    assert f"run directory: {(tmp_path / 'run').resolve()}" in text
    assert f"2 epochs (0..1); cells ['normal', 'reduce']; 14 edges x {ops} ops" in text
    if method == "darts":
        assert "values: softmax(alpha) (Softmax; they sum to one over an edge)" in text
        assert "genotype.json (cnn):\nnormal cell: c_{k} = concat(0, 1, 2, 3)" in text
        assert "heatmaps of softmax(alpha) at epochs [0, 1]" in text  # titled by the relaxation, not an edge
    else:
        assert "values: sigmoid(alpha) (Sigmoid; independent per op)" in text
        assert "genotype.json (cnn):\nnormal cell: c_{k} = concat(" in text
        assert "heatmaps of sigmoid(alpha) at epochs [0, 1]" in text
    assert "skip connections in the normal cell by epoch:" in text
    assert images == 2 + 2 + 1  # heatmaps per cell, probabilities over epochs per cell, the derived cells


def test_notebook_runs_on_a_recurrent_run_found_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = tmp_path / "runs" / "quickstart" / "lightning_logs"
    stale = logs / "version_0"
    stale.mkdir(parents=True)
    (stale / "alpha_history.json").write_text("not json")  # older run: opening it would fail
    os.utime(stale, (1_000_000_000, 1_000_000_000))

    run = logs / "version_1"  # a recurrent search with FairDARTS's sigmoid: 8 nodes, 36 edges, 5 ops, 3 epochs
    labels = [f"{j}->{i + 1}" for i in range(8) for j in range(i + 1)]
    history = AlphaHistory(RNN_PRIMITIVES, labels, {"name": "Sigmoid", "label": "sigmoid(alpha)", "normalized": False})
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(36, len(RNN_PRIMITIVES)))
    for epoch in range(3):
        logits += rng.normal(scale=0.5, size=logits.shape)
        probs = 1 / (1 + np.exp(-logits))  # (edges, ops), independent per op
        history.append(epoch, 100 * (epoch + 1), {"recurrent": probs})
        save(derive_rnn(probs.tolist()), run / "genotypes" / f"epoch_{epoch:03d}.json")
    history.save(run)

    monkeypatch.delenv("DARTS_RUN_DIR", raising=False)
    text, images = execute(tmp_path)
    assert f"run directory: {run.resolve()}" in text
    assert "3 epochs (0..2); cells ['recurrent']; 36 edges x 5 ops: none, tanh, relu, sigmoid, identity" in text
    assert "values: sigmoid(alpha) (Sigmoid; independent per op)" in text
    assert "epoch 2 (rnn):\nrecurrent cell: h_{t} = mean(1, 2, 3, 4, 5, 6, 7, 8)" in text
    assert images == 1 + 1 + 1


def test_notebook_says_in_one_line_that_a_run_has_no_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"  # a search without ArchitectureMonitor: genotypes, no alpha history
    save(derive_rnn(np.full((36, len(RNN_PRIMITIVES)), 0.2).tolist()), run / "genotypes" / "epoch_000.json")
    monkeypatch.setenv("DARTS_RUN_DIR", str(run))
    with pytest.raises(CellExecutionError) as failure:
        execute(tmp_path)
    line = (f"FileNotFoundError: No alpha_history.json in {run.resolve()}: that search ran without "
            "darts_pl.callbacks.ArchitectureMonitor (add it under trainer.callbacks, as every search config in "
            "configs/ does), or RUN_DIR is not a run directory.")
    report = re.sub(r"\x1b\[[0-9;]*m", "", str(failure.value))  # without the terminal colours
    assert line in report
    assert "RUN_DIR = Path(RUN_DIR).resolve()" in report  # stopped in the first cell, before any reading
