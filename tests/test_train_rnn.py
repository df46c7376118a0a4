"""Training a derived recurrent cell: the paper's parameter counts, the cell's equations, variable-length
learning-rate scaling, the SGD -> ASGD switch with averaged evaluation, checkpoints and the CLI."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from darts_pl import genotypes
from darts_pl.cli import main
from darts_pl.data import PTBDataModule
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import RNN_DARTS_V1, GenotypeError
from darts_pl.modules import LitLanguageModel
from darts_pl.networks import DARTSCell

from .conftest import REPO


def tiny_model(**kwargs: Any) -> LitLanguageModel:
    args = {"num_tokens": 50, "emb_size": 6, "hidden_size": 6, **kwargs}
    return LitLanguageModel(**args)


def trainer(root: Path, epochs: int = 1, callbacks: list[Callback] | None = None, **kwargs: Any) -> L.Trainer:
    options = {"limit_train_batches": 2, "limit_val_batches": 2, "limit_test_batches": 2, **kwargs}
    return L.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, default_root_dir=root, accelerator="cpu", devices=1, callbacks=callbacks,
                     **options)


def mini_data(root: Path, **kwargs: Any) -> PTBDataModule:
    return PTBDataModule(str(root), **{"mode": "train", "batch_size": 4, "eval_batch_size": 2,
                                       "test_batch_size": 1, "bptt": 8, **kwargs})


# ----------------------------------------------------------------------------------------- the paper's models
# the authors' RNNModel counts: tests/goldens/darts.py
@pytest.mark.parametrize(("num_tokens", "size", "expected"), [
    (10000, 850, 22_960_000),  # PTB: the paper's 23M
    (33278, 700, 33_127_878),  # WikiText-2: the paper's 33M
])
def test_parameter_counts_match_the_paper(num_tokens: int, size: int, expected: int) -> None:
    model = LitLanguageModel("RNN_DARTS_V2", num_tokens=num_tokens, emb_size=size, hidden_size=size)
    count = sum(p.numel() for p in model.parameters())
    # tied embedding/decoder V·E + decoder bias V + W0 (E + H)·2H + 8 node matrices H·2H
    assert count == num_tokens * size + num_tokens + 2 * size * 2 * size + 8 * size * 2 * size == expected
    assert model.network.decoder.weight is model.network.encoder.weight


def test_derived_cell_follows_the_highway_equations() -> None:
    torch.manual_seed(0)
    cell = DARTSCell(RNN_DARTS_V1, emb_size=4, hidden_size=4).eval()
    x, h_prev = torch.randn(1, 2, 4), torch.randn(2, 4)
    c0, h0 = (torch.cat([x[0], h_prev], -1) @ cell.first_weight).chunk(2, -1)
    states = [h_prev + torch.sigmoid(c0) * (torch.tanh(h0) - h_prev)]
    acts = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda v: v}
    for (op, pred), weight in zip(RNN_DARTS_V1.recurrent, cell.node_weights):
        c, h = (states[pred] @ weight).chunk(2, -1)
        states.append(states[pred] + torch.sigmoid(c) * (acts[op](h) - states[pred]))
    assert torch.allclose(cell(x, h_prev)[0], torch.stack(states[1:]).mean(0), atol=1e-6)


def test_genotype_forms_and_a_cnn_genotype_is_refused(tmp_path: Path) -> None:
    path = genotypes.save(RNN_DARTS_V1, tmp_path / "genotype.json")
    for spec in (str(path), genotypes.to_dict(RNN_DARTS_V1), "RNN_DARTS_V1"):
        assert tiny_model(genotype=spec).network.cell.genotype == RNN_DARTS_V1
    with pytest.raises(GenotypeError, match=r"'DARTS_V2' is a convolutional cell.*RNN_DARTS_V2"):
        tiny_model(genotype="DARTS_V2")
    with pytest.raises(ConfigurationError, match=r"emb_size=6 and hidden_size=8 must be equal"):
        tiny_model(hidden_size=8)
    with pytest.raises(ConfigurationError, match=r"dropout_x=1\.0 must be in \[0, 1\)"):
        tiny_model(dropout_x=1.0)


# ----------------------------------------------------------------------------------------- training
class RecordSteps(Callback):
    """Learning rate at each optimizer step and the window length it came from."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int, int]] = []
        self._window = (0, 0)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._window = (batch["input"].size(0), batch["bptt"])

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        self.steps.append((optimizer.param_groups[0]["lr"], *self._window))


def test_two_batch_training_fit_scales_the_lr_and_carries_the_state(tiny_ptb: Path, tmp_path: Path) -> None:
    dm = mini_data(tiny_ptb, bptt=35, batch_size=8)
    model = tiny_model(num_tokens=dm.num_tokens)
    before = [p.detach().clone() for p in model.parameters()]
    record = RecordSteps()
    run = trainer(tmp_path, callbacks=[record], limit_train_batches=4)
    run.fit(model, dm)
    assert len(record.steps) == 4
    for lr, seq_len, bptt in record.steps:
        assert lr == pytest.approx(20.0 * seq_len / bptt)
    assert len({seq_len for _, seq_len, _ in record.steps}) > 1  # variable lengths
    assert run.optimizers[0].param_groups[0]["lr"] == 20.0  # restored after each step
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    hidden = model._hidden["train"]
    assert hidden.shape == (8, 6) and not hidden.requires_grad
    metrics = run.callback_metrics
    assert math.isfinite(float(metrics["val/ppl"])) and float(metrics["val/ppl"]) < 2 * dm.num_tokens
    assert {"train/loss", "val/loss", "lr", "asgd"} <= set(metrics)
    assert (tmp_path / "vocab.json").is_file()


def test_non_monotone_trigger() -> None:
    """Switch only when the loss is worse than the best before the last ``nonmono`` epochs."""
    model = tiny_model(nonmono=2)
    model._trainer = SimpleNamespace(strategy=SimpleNamespace(optimizers=[]), current_epoch=0)  # type: ignore
    switched = []
    for loss in [3.0, 2.0, 1.5, 1.8, 1.9, 2.1]:
        model._maybe_switch(loss)
        switched.append(model.averaging)
    assert switched == [False] * 5 + [True]  # 1.8 > 1.5 does not count: 1.5 is within the last 2 epochs
    assert isinstance(model._trainer.strategy.optimizers[0], torch.optim.ASGD)
    assert model.val_history == [3.0, 2.0, 1.5, 1.8, 1.9, 2.1]


def test_switch_to_asgd_evaluates_the_average_and_survives_a_checkpoint(tiny_ptb: Path, tmp_path: Path) -> None:
    dm = mini_data(tiny_ptb)
    model = tiny_model(num_tokens=dm.num_tokens, nonmono=1)
    model.val_history = [0.0, 0.0]  # a hand-set history the first validation is worse than
    run = trainer(tmp_path, epochs=2, limit_train_batches=3)  # ASGD averages from its second step on
    run.fit(model, dm)
    optimizer = run.optimizers[0]
    assert model.averaging and isinstance(optimizer, torch.optim.ASGD)
    assert optimizer.param_groups[0]["t0"] == 0 and optimizer.param_groups[0]["lambd"] == 0.0
    average = model.averaged_weights()
    assert average is not None and any(not torch.equal(a, p) for a, p in zip(average, model.parameters()))

    raw = [p.detach().clone() for p in model.parameters()]
    averaged_loss = run.validate(model, dm, verbose=False)[0]["val/loss"]
    assert all(torch.equal(a, p) for a, p in zip(raw, model.parameters()))  # raw weights restored
    with torch.no_grad():
        for p, a in zip(model.parameters(), average):
            p.copy_(a)
    model.averaging = False  # evaluate the averaged weights directly
    assert run.validate(model, dm, verbose=False)[0]["val/loss"] == pytest.approx(averaged_loss, rel=1e-5)

    checkpoint = next((tmp_path / "checkpoints").glob("*.ckpt"))
    loaded = LitLanguageModel.load_from_checkpoint(checkpoint)
    assert loaded.averaging and loaded.val_history == model.val_history
    assert loaded._loaded_average is not None
    assert all(torch.equal(a, b) for a, b in zip(loaded._loaded_average, average))
    result = trainer(tmp_path / "test").test(loaded, dm, verbose=False)[0]
    assert math.isfinite(result["test/ppl"]) and result["test/loss"] == pytest.approx(math.log(result["test/ppl"]))


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_resume_restores_asgd_and_continues_exactly(tiny_ptb: Path, tmp_path: Path) -> None:
    dm = mini_data(tiny_ptb)

    def fresh() -> LitLanguageModel:
        L.seed_everything(0)
        model = tiny_model(num_tokens=dm.num_tokens, nonmono=1)
        model.val_history = [0.0, 0.0]  # switch to ASGD after the first epoch
        return model

    uninterrupted = fresh()
    trainer(tmp_path / "full", epochs=2, limit_train_batches=3).fit(uninterrupted, dm)
    first = fresh()
    trainer(tmp_path / "part", epochs=1, limit_train_batches=3).fit(first, dm)
    checkpoint = next((tmp_path / "part" / "checkpoints").glob("*.ckpt"))
    resumed = fresh()
    run = trainer(tmp_path / "part", epochs=2, limit_train_batches=3)
    run.fit(resumed, dm, ckpt_path=checkpoint)
    assert resumed.averaging and isinstance(run.optimizers[0], torch.optim.ASGD)
    for a, b in zip(uninterrupted.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_vocabulary_is_refused() -> None:
    model = tiny_model()
    with pytest.raises(ConfigurationError, match=r"vocabulary of 60 words, the data 50.*--data.vocab_path"):
        model.on_load_checkpoint({"state_dict": {"network.encoder.weight": torch.zeros(60, 6)}})


def test_cli_train_ptb_on_a_tiny_corpus(tiny_ptb: Path, tmp_path: Path) -> None:
    main(["fit", "--config", str(REPO / "configs" / "train_ptb.yaml"), "--data.data_dir", str(tiny_ptb),
          "--data.init_args.batch_size", "4", "--data.init_args.eval_batch_size", "2",
          "--model.init_args.emb_size", "6", "--model.init_args.hidden_size", "6",
          "--model.init_args.genotype", "RNN_DARTS_V1",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
          "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(tmp_path / "runs")])
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    checkpoint = torch.load(next((run / "checkpoints").glob("*.ckpt")), weights_only=False)
    assert checkpoint["hyper_parameters"]["num_tokens"] == PTBDataModule(str(tiny_ptb)).num_tokens  # linked
    assert checkpoint["hyper_parameters"]["genotype"] == genotypes.to_dict(RNN_DARTS_V1)
    assert (run / "vocab.json").is_file()
