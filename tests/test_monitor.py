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
from darts_pl.callbacks.monitor import AlphaHistory, alpha_entropy, edge_key
from darts_pl.callbacks.rundir import run_dir
from darts_pl.data import DigitsDataModule
from darts_pl.genotypes import PRIMITIVES
from darts_pl.modules.search import LitSearch
from darts_pl.search import CNNSearchSpace, Sigmoid

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


class RecordingWandbLogger(WandbLogger):
    """A real (offline) W&B logger that also keeps the keys and the step of every ``log_metrics`` call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[set[str], int | None]] = []

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.calls.append((set(metrics), step))
        super().log_metrics(metrics, step)

    def steps(self, key: str) -> list[int | None]:
        return [step for keys, step in self.calls if key in keys]


def _logger(kind: str, root: Path) -> Any:
    if kind == "wandb":
        return RecordingWandbLogger(project="darts_pl_test", save_dir=str(root), offline=True)
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


@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
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
            assert float(row[f"alpha_entropy_normalized/{cell}"]) == pytest.approx(
                float(row[f"alpha_entropy/{cell}"]) / np.log(len(PRIMITIVES)), rel=1e-5)
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


# ----------------------------------------------------------------------------------------- one step axis
ITERATION_ENDING_EACH_EPOCH = [1, 3]  # 2 search iterations per epoch; trainer.global_step is 4 and 8 there


def test_tensorboard_media_scalars_and_epoch_losses_share_the_iteration_axis(search: Callable[[str], Run]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = search("csv+tensorboard")
    tensorboard = next(lg for lg in run.trainer.loggers if isinstance(lg, TensorBoardLogger))
    events = EventAccumulator(tensorboard.log_dir, size_guidance={"images": 0, "histograms": 0, "tensors": 0,
                                                                  "scalars": 0}).Reload()
    steps = {
        "alpha_heatmap/normal": [e.step for e in events.Images("alpha_heatmap/normal")],
        "genotype/reduce": [e.step for e in events.Images("genotype/reduce")],
        "alpha_hist/normal/none": [e.step for e in events.Histograms("alpha_hist/normal/none")],
        "alpha_table/normal": [e.step for e in events.Tensors("alpha_table/normal/text_summary")],
        "genotype/text": [e.step for e in events.Tensors("genotype/text/text_summary")],
        "alpha_entropy/normal": [e.step for e in events.Scalars("alpha_entropy/normal")],
        "train/loss": [e.step for e in events.Scalars("train/loss")],
        "val/loss": [e.step for e in events.Scalars("val/loss")],
    }
    assert steps == dict.fromkeys(steps, ITERATION_ENDING_EACH_EPOCH)


def test_wandb_media_and_scalars_share_the_iteration_axis(search: Callable[[str], Run]) -> None:
    logger = search("wandb").trainer.logger
    for key in ("alpha_heatmap/normal", "alpha_table/reduce", "genotype/text", "genotype/normal",
                "alpha_entropy/normal", "train/loss", "arch/loss"):
        assert logger.steps(key) == ITERATION_ENDING_EACH_EPOCH, key


def test_losses_of_every_iteration_reach_the_logger(search: Callable[[str], Run]) -> None:
    run = search("csv+tensorboard")
    rows = list(csv.DictReader((run.dir / "metrics.csv").open()))
    for key in ("train/loss_step", "arch/loss_step"):  # log_every_n_steps=1: all 4 iterations
        logged = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        assert [step for step, _ in logged] == [0, 1, 2, 3], key
        assert all(np.isfinite(value) and value > 0 for _, value in logged)
    bar = run.trainer.progress_bar_metrics
    assert "train/loss_step" in bar and "arch/loss_step" in bar


# ----------------------------------------------------------------------------------------- relaxations
def test_normalised_entropy_puts_every_relaxation_on_one_scale() -> None:
    from darts_pl.callbacks.monitor import normalized_alpha_entropy

    uniform8, uniform3 = torch.full((14, 8), 1 / 8), torch.full((14, 3), 1 / 3)
    assert normalized_alpha_entropy(uniform8) == pytest.approx(1.0) == normalized_alpha_entropy(uniform3)
    assert normalized_alpha_entropy(torch.full((5, 4), 0.5), normalized=False) == pytest.approx(1.0)
    decided = torch.zeros(14, 8)
    decided[:, 2] = 1.0
    assert normalized_alpha_entropy(decided) == pytest.approx(0.0)
    pruned = torch.zeros(14, 8)  # P-DARTS: 3 ops on every edge, the other columns 0
    pruned[:, [1, 3, 4]] = 1 / 3
    assert normalized_alpha_entropy(pruned) == pytest.approx(1.0)
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert normalized_alpha_entropy(half) == pytest.approx(1.0)  # each edge undecided among the ops it has


def test_alpha_entropy_of_normalised_and_independent_probabilities() -> None:
    uniform, one_hot = torch.full((14, 8), 1 / 8), torch.eye(8)[[3] * 14]
    assert alpha_entropy(uniform) == pytest.approx(np.log(8))
    assert alpha_entropy(one_hot) == pytest.approx(0.0, abs=1e-12)
    halves, decided = torch.full((14, 7), 0.5), torch.tensor([[0.0, 1.0] * 3 + [1.0]] * 14)
    assert alpha_entropy(halves, normalized=False) == pytest.approx(np.log(2))
    assert alpha_entropy(decided, normalized=False) == pytest.approx(0.0, abs=1e-12)
    # A near-uniform sigmoid cell is undecided, as the binary entropy says; the edge-distribution entropy of
    # values that do not sum to one would be 7 * 0.5 * log(2) = 2.43 nats, above log(7): not an entropy at all.
    assert alpha_entropy(halves, normalized=False) < alpha_entropy(halves) > np.log(7)


def test_sigmoid_search_says_what_its_history_and_heatmaps_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    import darts_pl.viz

    drawn: list[dict[str, Any]] = []
    plot = darts_pl.viz.plot_alpha_heatmap

    def recording_plot(*args: Any, **kwargs: Any) -> Any:
        drawn.append(kwargs)
        return plot(*args, **kwargs)

    monkeypatch.setattr(darts_pl.viz, "plot_alpha_heatmap", recording_plot)
    primitives = [op for op in PRIMITIVES if op != "none"]  # FairDARTS's 7 ops
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3, primitives=primitives,
                           alpha_init="zeros", relaxation=Sigmoid())
    run = tiny_search("csv+tensorboard", tmp_path, space=space, max_epochs=1,
                      callbacks=[ArchitectureMonitor(), GenotypeCheckpoint(verbose=False, diagrams=False)])
    meta = json.loads((run.dir / "alpha_history.json").read_text())
    assert meta["relaxation"] == {"name": "Sigmoid", "label": "sigmoid(alpha)", "normalized": False}
    assert meta["description"].startswith("sigmoid(alpha) after each training epoch")
    probs = run.recorder.probs[0]
    for cell in CELLS:
        p = probs[cell].double()
        binary = float(-(p * p.log() + (1 - p) * (1 - p).log()).mean())
        assert float(run.trainer.callback_metrics[f"alpha_entropy/{cell}"]) == pytest.approx(binary, rel=1e-5)
        assert binary == pytest.approx(np.log(2), abs=1e-3)  # one epoch from alpha = 0: every weight near 0.5
    assert [d["label"] for d in drawn] == ["sigmoid(alpha)"] * 2 and [d["reference"] for d in drawn] == [0.5] * 2
    assert [d["title"] for d in drawn] == [f"{cell} cell, epoch 0 (iteration 2): sigmoid(alpha)" for cell in CELLS]
    # The checkpointed history keeps the relaxation, so a resumed run writes the same metadata.
    resumed = ArchitectureMonitor()
    checkpoint: dict[str, Any] = {}
    run.trainer.callbacks[0].on_save_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    resumed.on_load_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    assert resumed.history.metadata()["relaxation"] == meta["relaxation"]


# ----------------------------------------------------------------------------------------- configs
SEARCH_CONFIGS = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")
                        if "darts_pl.modules.LitSearch" in p.read_text())


@pytest.mark.parametrize("name", SEARCH_CONFIGS)
def test_every_search_config_monitors_and_names_checkpoints_by_iteration(name: str) -> None:
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / name).read_text())
    callbacks = {cb["class_path"]: cb.get("init_args", {}) for cb in config["trainer"]["callbacks"]}
    assert {"darts_pl.callbacks.ArchitectureMonitor", "darts_pl.callbacks.GenotypeCheckpoint"} <= set(callbacks)
    assert callbacks["lightning.pytorch.callbacks.ModelCheckpoint"]["filename"] == "{epoch:03d}-{iteration:.0f}"


def test_search_configs_are_found() -> None:
    assert {"quickstart.yaml", "search_cifar.yaml", "search_ptb.yaml"} <= set(SEARCH_CONFIGS)


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


# ----------------------------------------------------------------------------------------- what the cell keeps
def _selected_pairs(mask: torch.Tensor, primitives: list[str], labels: list[str]) -> set[tuple[str, str]]:
    return {(labels[e], primitives[j]) for e, j in mask.nonzero().tolist()}


def test_selection_mask_marks_the_pairs_the_genotype_keeps() -> None:
    torch.manual_seed(0)
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    genotype = space.genotype()
    masks = space.selection_mask(genotype)
    labels = space.edge_labels()
    names = ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3"]
    for cell in ("normal", "reduce"):
        expected = {(f"{names[j]}->{pos // 2}", op) for pos, (op, j) in enumerate(getattr(genotype, cell))}
        assert _selected_pairs(masks[cell], space.primitives, labels) == expected
        assert masks[cell].sum() == 8  # two edges per node, one op each


def test_selection_mask_of_a_threshold_derivation_keeps_no_dropped_edge(tmp_path: Path) -> None:
    from darts_pl.search import Threshold

    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3, relaxation=Sigmoid(),
                           derivation=Threshold(0.85))
    with torch.no_grad():  # one strong op on edge 0 of the normal cell, every other weight near 0.5
        space.arch["normal"][0, PRIMITIVES.index("sep_conv_3x3")] = 4.0
    run = tiny_search("none", tmp_path, max_epochs=1, space=space, batches=(1, 0))
    history = AlphaHistory.load(run.dir)
    normal, reduce = history.arrays()["selected_normal"][0], history.arrays()["selected_reduce"][0]
    assert normal.sum() <= 1 and reduce.sum() == 0  # bold only where the cell keeps an op
    genotype = genotypes.load(run.dir / "genotype.json")
    assert normal.sum() == sum(op != "none" for op, _ in genotype.normal)


@pytest.mark.parametrize(("genotype", "cell", "count"), [
    (genotypes.DARTS_V1, "normal", 3),
    (genotypes.RNN_DARTS_V2, "recurrent", 1),
    (genotypes.from_nb201_str("|skip_connect~0|+|skip_connect~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"),
     "cell", 3),
])
def test_collapse_counts_come_from_the_genotype_of_every_kind(genotype: Any, cell: str, count: int) -> None:
    assert genotype.collapse_counts()[cell]["num_skip_connect"] == count
