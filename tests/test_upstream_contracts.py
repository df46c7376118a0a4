"""What darts_pl takes from Lightning, jsonargparse and torch beyond their documented APIs, each checked to exist and
to behave as darts_pl uses it, so an upgrade that changes one fails here, by name, instead of somewhere inside a run.

Each test names the place in darts_pl that leans on the contract.
"""
from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
import torch.nn as nn
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from darts_pl.data.switching import PATTERN


def test_lightning_given_hyperparameters_is_set_while_the_cli_builds_the_model() -> None:
    """modules/search.py ``_built_by_cli``: LightningCLI hands save_hyperparameters the resolved config through it."""
    from lightning.pytorch.core.mixins import hparams_mixin

    assert hparams_mixin._given_hyperparameters.get() is None
    token = hparams_mixin._given_hyperparameters.set({"x": 1})
    try:
        assert hparams_mixin._given_hyperparameters.get() == {"x": 1}
    finally:
        hparams_mixin._given_hyperparameters.reset(token)


def test_lightning_cli_reads_the_checkpoint_path_in_parse_ckpt_path() -> None:
    """cli.py ``DartsCLI._parse_ckpt_path``: overridden to validate the checkpoint before Lightning reads it."""
    assert callable(getattr(LightningCLI, "_parse_ckpt_path", None))
    assert "already_saved" in SaveConfigCallback.__init__.__code__.co_names  # cli.py RunConfig.setup reads it


def test_the_argument_parser_takes_allow_abbrev_given() -> None:
    """cli.py ``DartsCLI.init_parser``: ``_allow_abbrev_given`` keeps jsonargparse from turning abbreviations on."""
    parser = LightningArgumentParser(exit_on_error=False)
    parser.allow_abbrev = False
    parser._allow_abbrev_given = True
    parser.add_argument("--max_epochs", type=int)
    with pytest.raises(Exception, match="max_epoch"):
        parser.parse_args(["--max_epoch", "3"])


def test_jsonargparse_logs_the_init_args_it_discards_in_the_format_we_parse() -> None:
    """data/switching.py ``PATTERN``: the debug message of a class_path change that discards init_args."""
    from jsonargparse import ArgumentParser

    from darts_pl.data import DigitsDataModule

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.getLogger("test_upstream_contracts.switch")
    log.setLevel(logging.DEBUG)
    log.addHandler(Keep())
    parser = ArgumentParser(exit_on_error=False, logger=log)
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    parser.parse_args(["--data", "darts_pl.data.ImageFolderDataModule", "--data.image_size", "64",
                       "--data", "darts_pl.data.DigitsDataModule"])
    matches = [PATTERN.search(message) for message in records]
    found = [m for m in matches if m]
    assert found, records
    assert found[0][1].endswith("ImageFolderDataModule") and found[0][2].endswith(DigitsDataModule.__name__)
    assert "image_size" in found[0][3]


def test_ddp_strategy_keeps_find_unused_parameters_in_ddp_kwargs() -> None:
    """modules/search.py ``LitSearch.check_fit`` reads it to refuse a sampled-op space under plain DDP; cli.py picks
    the registered ``*_find_unused_parameters_true`` strategies."""
    from lightning.pytorch.strategies import StrategyRegistry

    for name in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        assert f"{name}_find_unused_parameters_true" in StrategyRegistry.available_strategies()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", logger=False)
    assert trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True
    plain = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    assert not plain.strategy._ddp_kwargs.get("find_unused_parameters")


def test_torch_optimizer_errors_start_with_invalid() -> None:
    """cli.py ``_environment_reason``: an optimizer setting out of range is recognised by torch's message."""
    with pytest.raises(ValueError, match=r"^Invalid learning rate"):
        torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=-1.0)


def test_torch_private_helpers_darts_pl_calls() -> None:
    """distributed.py (flat all-reduce), finite.py (fused norms), ops.py (the depthwise and max-pool backwards)."""
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    tensors = [torch.ones(2), torch.zeros(3)]
    flat = _flatten_dense_tensors(tensors)
    assert flat.shape == (5,) and [t.shape for t in _unflatten_dense_tensors(flat, tensors)] == [(2,), (3,)]
    assert [float(n) for n in torch._foreach_norm([torch.tensor([3.0, 4.0])])] == [5.0]
    x, w = torch.randn(1, 2, 5, 5), torch.randn(2, 1, 3, 3)
    grad_w = torch.ops.aten.convolution_backward(torch.ones(1, 2, 5, 5), x, w, None, [1, 1], [1, 1], [1, 1], False,
                                                 [0, 0], 2, [False, True, False])[1]
    assert grad_w.shape == w.shape
    y, indices = torch.nn.functional.max_pool2d(x, 3, 1, 1, return_indices=True)
    grad = torch.ops.aten.max_pool2d_with_indices_backward(torch.ones_like(y), x, [3, 3], [1, 1], [1, 1], [1, 1],
                                                           False, indices)
    assert grad.shape == x.shape


def test_modules_save_extra_state_only_when_they_define_it() -> None:
    """parts/base.py ``Part.get_extra_state``: a part's state travels as ``<name>._extra_state`` in the state dict,
    and a module that does not define it adds no key (checkpoints.py ``upgrade_checkpoint`` relies on both)."""
    from darts_pl.parts import GumbelSoftmax

    holder = nn.Module()
    holder.relaxation = GumbelSoftmax(tau=2.0)
    holder.plain = nn.Identity()
    keys = set(holder.state_dict())
    assert "relaxation._extra_state" in keys and "relaxation.noise._extra_state" in keys
    assert not any(key.startswith("plain.") for key in keys)
