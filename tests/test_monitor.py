"""ArchitectureMonitor, GenotypeCheckpoint and SkipConnectEarlyStop on real two-epoch searches.

Each logger gets one tiny search (3 cells, 4 channels, sklearn digits, 2 batches per epoch), shared by
the tests of this module; a recorder callback keeps ``edge_probs()`` and the genotype at every epoch end,
which is what the files and the logged values must hold.
"""
from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from darts_pl import genotypes
from darts_pl.callbacks import ArchitectureMonitor, GenotypeCheckpoint, SkipConnectEarlyStop
from darts_pl.callbacks.monitor import AlphaHistory, edge_key
from darts_pl.callbacks.rundir import run_dir
from darts_pl.data import DigitsDataModule
from darts_pl.genotypes import PRIMITIVES
from darts_pl.modules.search import LitSearch
from darts_pl.search import CNNSearchSpace

EPOCHS = 2
CELLS = ("normal", "reduce")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Recorder(Callback):
    """What the module's space says at each epoch end."""

    def __init__(self) -> None:
        self.probs: list[dict[str, torch.Tensor]] = []
        self.genotypes: list[Any] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.probs.append({cell: p.clone() for cell, p in pl_module.space.edge_probs().items()})
        self.genotypes.append(pl_module.space.genotype())


class Run:
    def __init__(self, trainer: L.Trainer, module: LitSearch, recorder: Recorder, root: Path) -> None:
        self.trainer, self.module, self.recorder, self.root = trainer, module, recorder, root
        self.dir = run_dir(trainer)


def _logger(kind: str, root: Path) -> Any:
    if kind == "wandb":
        return WandbLogger(project="darts_pl_test", save_dir=str(root), offline=True)
    if kind == "csv+tensorboard":  # the first logger's directory is the run directory
        return [CSVLogger(str(root)), TensorBoardLogger(str(root), name="tensorboard")]
    return False


def tiny_search(kind: str, root: Path, *, max_epochs: int = EPOCHS, callbacks: list[Callback] | None = None,
                space: CNNSearchSpace | None = None, batches: tuple[int, int] = (2, 1)) -> Run:
    torch.manual_seed(0)
    space = space or CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    module = LitSearch(space)
    recorder = Recorder()
    callbacks = callbacks if callbacks is not None else [ArchitectureMonitor(), GenotypeCheckpoint(verbose=False)]
    trainer = L.Trainer(max_epochs=max_epochs, limit_train_batches=batches[0], limit_val_batches=batches[1],
                        accelerator="cpu",
                        devices=1, logger=_logger(kind, root), callbacks=[*callbacks, recorder],
                        default_root_dir=str(root), enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1)
    try:
        trainer.fit(module, DigitsDataModule(batch_size=16))
        return Run(trainer, module, recorder, root)
    finally:
        if kind == "wandb":
            import wandb

            wandb.finish()


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Run]]:
    """``search(kind)``: the tiny search with that logger, run once per module."""
    home = tmp_path_factory.mktemp("wandb_home")
    runs: dict[str, Run] = {}

    def get(kind: str) -> Run:
        if kind not in runs:
            runs[kind] = tiny_search(kind, tmp_path_factory.mktemp(kind))
        return runs[kind]

    with pytest.MonkeyPatch.context() as env:
        for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(home),
                            "WANDB_CONFIG_DIR": str(home / "config"), "WANDB_CACHE_DIR": str(home / "cache"),
                            "WANDB_DATA_DIR": str(home / "data")}.items():
            env.setenv(name, value)
        try:
            yield get
        finally:
            import wandb

            wandb.finish()


LOGGERS = ["wandb", "csv+tensorboard", "none"]


# ----------------------------------------------------------------------------------------- run directory
@pytest.mark.parametrize("kind", LOGGERS)
def test_alpha_history_matches_edge_probs_every_epoch(search: Callable[[str], Run], kind: str) -> None:
    run = search(kind)
    meta = json.loads((run.dir / "alpha_history.json").read_text())
    assert meta["primitives"] == list(PRIMITIVES)
    assert meta["edge_labels"] == run.module.space.edge_labels()
    assert meta["cell_types"] == list(CELLS)
    assert meta["epochs"] == list(range(EPOCHS))
    with np.load(run.dir / meta["arrays"]) as arrays:
        assert arrays["epochs"].tolist() == list(range(EPOCHS))
        for cell in CELLS:
            assert arrays[cell].shape == (EPOCHS, 14, len(PRIMITIVES))  # (epochs, edges, ops)
            for epoch, recorded in enumerate(run.recorder.probs):
                np.testing.assert_allclose(arrays[cell][epoch], recorded[cell].numpy(), rtol=0, atol=1e-7)
    # The alphas moved between the epochs, so the two rows are different records, not one copied.
    assert not torch.equal(run.recorder.probs[0]["normal"], run.recorder.probs[1]["normal"])


@pytest.mark.parametrize("kind", LOGGERS)
def test_genotype_files_and_diagrams_every_epoch(search: Callable[[str], Run], kind: str) -> None:
    run = search(kind)
    for epoch, expected in enumerate(run.recorder.genotypes):
        assert genotypes.load(run.dir / "genotypes" / f"epoch_{epoch:03d}.json") == expected
        for cell in CELLS:
            assert (run.dir / "genotypes" / f"epoch_{epoch:03d}_{cell}.png").read_bytes()[:8] == PNG_MAGIC
    assert genotypes.load(run.dir / "genotype.json") == run.recorder.genotypes[-1]
    for cell in CELLS:
        assert (run.dir / f"genotype_{cell}.png").read_bytes()[:8] == PNG_MAGIC
    leftovers = [p.name for p in run.dir.rglob(".*.tmp")]
    assert leftovers == []  # atomic writes leave no temporary files behind


# ----------------------------------------------------------------------------------------- W&B
def _media(offline_dir: Path, kind: str, key: str, suffix: str) -> list[Path]:
    """Files W&B wrote for ``key``, in logging order (the name carries W&B's step)."""
    prefix, name = key.rsplit("/", 1)
    files = (offline_dir / "files" / "media" / kind / prefix).glob(f"{name}_*{suffix}")
    return sorted(files, key=lambda p: int(re.match(rf"{re.escape(name)}_(\d+)_", p.name).group(1)))


def test_wandb_offline_run_holds_tables_heatmaps_diagrams_and_text(search: Callable[[str], Run]) -> None:
    run = search("wandb")
    offline = list((run.root / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    for cell in CELLS:
        tables = _media(offline[0], "table", f"alpha_table/{cell}", ".table.json")
        assert len(tables) == EPOCHS
        for epoch, path in enumerate(tables):
            table = json.loads(path.read_text())
            assert table["columns"] == ["edge", "label", *PRIMITIVES]
            assert [row[1] for row in table["data"]] == run.module.space.edge_labels()
            values = np.array([row[2:] for row in table["data"]])  # (edges, ops)
            np.testing.assert_allclose(values, run.recorder.probs[epoch][cell].numpy(), rtol=0, atol=1e-7)
        for key in (f"alpha_heatmap/{cell}", f"genotype/{cell}"):
            images = _media(offline[0], "images", key, ".png")
            assert len(images) == EPOCHS and all(p.read_bytes()[:8] == PNG_MAGIC for p in images)
    texts = _media(offline[0], "html", "genotype/text", ".html")
    assert len(texts) == EPOCHS
    last = texts[-1].read_text()
    assert "epoch 1 (genotype unchanged since epoch" in last and "normal cell: c_{k} = concat(" in last


# ----------------------------------------------------------------------------------------- CSV scalars
def test_csv_logger_gets_probability_entropy_and_collapse_scalars(search: Callable[[str], Run]) -> None:
    run = search("csv+tensorboard")
    rows = list(csv.DictReader((run.dir / "metrics.csv").open()))
    assert edge_key("normal", 3, "sep_conv_3x3", 14) == "alpha/normal/edge_03/sep_conv_3x3"
    for epoch in range(EPOCHS):
        row = next(r for r in rows if r.get("alpha/normal/edge_00/none") and int(r["epoch"]) == epoch)
        probs = run.recorder.probs[epoch]
        for cell in CELLS:
            for edge in range(14):
                for j, op in enumerate(PRIMITIVES):
                    assert float(row[edge_key(cell, edge, op, 14)]) == pytest.approx(float(probs[cell][edge, j]),
                                                                                    abs=1e-6)
            assert 0.0 < float(row[f"alpha_entropy/{cell}"]) <= np.log(len(PRIMITIVES)) + 1e-6
        normal = [op for op, _ in run.recorder.genotypes[epoch].normal]
        assert float(row["collapse/normal/num_skip_connect"]) == normal.count("skip_connect")
        parameter_free = sum(op in ("skip_connect", "max_pool_3x3", "avg_pool_3x3") for op in normal)
        assert float(row["collapse/normal/num_parameter_free"]) == parameter_free


# ----------------------------------------------------------------------------------------- TensorBoard
def test_tensorboard_gets_images_histograms_and_text(search: Callable[[str], Run]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = search("csv+tensorboard")
    tensorboard = next(lg for lg in run.trainer.loggers if isinstance(lg, TensorBoardLogger))
    events = EventAccumulator(tensorboard.log_dir, size_guidance={"images": 0, "histograms": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    for cell in CELLS:
        assert len(events.Images(f"alpha_heatmap/{cell}")) == EPOCHS
        assert len(events.Images(f"genotype/{cell}")) == EPOCHS
        assert len(events.Histograms(f"alpha_hist/{cell}/sep_conv_3x3")) == EPOCHS
        assert f"alpha_table/{cell}/text_summary" in tags["tensors"]
        assert edge_key(cell, 13, "dil_conv_5x5", 14) in tags["scalars"]
    assert "genotype/text/text_summary" in tags["tensors"]


# ----------------------------------------------------------------------------------------- collapse
def test_skip_connect_early_stop_ends_a_collapsed_search_after_min_epochs(tmp_path: Path) -> None:
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    with torch.no_grad():  # a collapsed normal cell: skip_connect dominates every edge
        space.arch["normal"][:, PRIMITIVES.index("skip_connect")] = 5.0
    stop = SkipConnectEarlyStop(num_skip_connects=2, min_epochs=2)
    first, second = ArchitectureMonitor(), ArchitectureMonitor()
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero_log.addHandler(handler)
    try:
        run = tiny_search("none", tmp_path, max_epochs=4, space=space, batches=(1, 0),
                          callbacks=[first, second, GenotypeCheckpoint(verbose=False, diagrams=False), stop])
    finally:
        rank_zero_log.removeHandler(handler)
    assert stop.stopped_epoch == 1  # not at epoch 0 (min_epochs=2), and not at the last epoch
    assert run.trainer.current_epoch == 2 and len(run.recorder.probs) == 2
    assert "8 skip connections" in stop.reason
    assert any(m.startswith("SkipConnectEarlyStop: stopping the search after epoch 1") for m in messages)
    assert run.trainer.callback_metrics["collapse/normal/num_skip_connect"] == 8
    assert genotypes.load(run.dir / "genotype.json") == run.recorder.genotypes[-1]
    # Listed twice (a config plus the W&B overlay): the first monitor keeps the history, the second idles.
    assert len(first.history) == 2 and second.history is None


def test_skip_connect_early_stop_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="num_skip_connects=0"):
        SkipConnectEarlyStop(num_skip_connects=0)
    with pytest.raises(ValueError, match="min_epochs=-1"):
        SkipConnectEarlyStop(min_epochs=-1)


# ----------------------------------------------------------------------------------------- the history itself
def test_alpha_history_round_trips_and_resumes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    history = AlphaHistory(["none", "tanh", "relu"], ["0->1", "0->2", "1->2"])
    for epoch in range(3):
        history.append(epoch, 10 * epoch, {"recurrent": rng.dirichlet(np.ones(3), size=3)})
    history.save(tmp_path)
    loaded = AlphaHistory.load(tmp_path)
    assert loaded.epochs == [0, 1, 2] and loaded.global_steps == [0, 10, 20]
    np.testing.assert_array_equal(loaded.arrays()["recurrent"], history.arrays()["recurrent"])

    # A resumed run replays epoch 2: the checkpointed history drops it and records the new one.
    monitor = ArchitectureMonitor()
    monitor.history = history
    checkpoint: dict[str, Any] = {}
    monitor.on_save_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    resumed = ArchitectureMonitor()
    resumed.on_load_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    replay = np.full((3, 3), 1 / 3)
    resumed.history.append(2, 25, {"recurrent": replay})
    assert resumed.history.epochs == [0, 1, 2] and resumed.history.global_steps == [0, 10, 25]
    np.testing.assert_array_equal(resumed.history.arrays()["recurrent"][2], replay.astype(np.float32))

    with pytest.raises(ValueError, match=r"expected \(3, 3\)"):
        history.append(3, 30, {"recurrent": np.ones((2, 3))})
