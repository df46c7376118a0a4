"""Every part of a search is one kind of object: a ``Part`` with its own state in the model's ``state_dict``, declared
ranges checked at construction and for every value a schedule will set (before the fit), and one ``repr``."""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import lightning as L
import pytest
import torch

import darts_pl.parts as parts
from darts_pl.cli import main
from darts_pl.errors import ConfigurationError, NonFiniteError
from darts_pl.modules import LitSearch
from darts_pl.parts import (
    AdversarialPerturbation,
    BetaDecay,
    DirichletKL,
    GumbelSoftmax,
    LinearSchedule,
    Part,
    Range,
    SampledOp,
    SkipDropout,
    Threshold,
    ZeroOneLoss,
)
from darts_pl.strategies import SecondOrder

from .conftest import REPO, tiny_space


def test_every_part_is_a_part_and_prints_its_arguments() -> None:
    classes = [obj for _, obj in inspect.getmembers(parts, inspect.isclass) if issubclass(obj, torch.nn.Module)]
    assert all(issubclass(cls, Part) for cls in classes if cls is not parts.SeededNoise)
    assert repr(GumbelSoftmax(tau=2.0, seed=3)).startswith("GumbelSoftmax(\n  tau=2.0, seed=3\n  (noise): SeededNoise")
    assert repr(LinearSchedule("space.edge.beta", 1.0, 0.0)) == \
        "LinearSchedule(target='space.edge.beta', start=1.0, end=0.0, span='epochs')"
    assert repr(ZeroOneLoss()) == "ZeroOneLoss(weight=10.0, norm='l2')"


def test_range_reads_as_written() -> None:
    assert str(parts.POSITIVE) == "> 0" and str(parts.PROBABILITY) == "in [0, 1)"
    assert not parts.POSITIVE.contains(0.0) and parts.NON_NEGATIVE.contains(0.0)
    assert not Range(0, 1).contains(math.nan) and not Range(0, 1).contains(True)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: GumbelSoftmax(tau=0.0), r"GumbelSoftmax: tau=0\.0 is out of range; it must be > 0"),
    (lambda: Threshold(1.0), r"Threshold: threshold=1\.0 is out of range; it must be in \(0, 1\)"),
    (lambda: DirichletKL(prior=0.0), r"DirichletKL: prior=0\.0 is out of range; it must be > 0"),
    (lambda: AdversarialPerturbation(steps=0), r"AdversarialPerturbation: steps=0 must be an integer >= 1"),
    (lambda: SkipDropout(1.0), r"SkipDropout: p=1\.0 is out of range; it must be in \[0, 1\)"),
    (lambda: BetaDecay(weight=-1.0), r"BetaDecay: weight=-1\.0 is out of range; it must be >= 0"),
])
def test_values_out_of_range_are_configuration_errors(build, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_a_part_keeps_the_value_its_schedule_set_in_the_state_dict() -> None:
    space = tiny_space(relaxation=GumbelSoftmax(tau=10.0), edge=SampledOp())
    module = LitSearch(space, schedules=[LinearSchedule("space.relaxation.tau", 10.0, 0.1, span="epochs_minus_one")])
    module.schedules[0].apply(module, 3, 4)
    state = module.state_dict()
    assert state["space.relaxation._extra_state"] == {"tau": pytest.approx(0.1)}
    fresh = LitSearch(tiny_space(relaxation=GumbelSoftmax(tau=10.0), edge=SampledOp()),
                      schedules=[LinearSchedule("space.relaxation.tau", 10.0, 0.1, span="epochs_minus_one")])
    fresh.load_state_dict(state)
    assert fresh.space.relaxation.tau == pytest.approx(0.1)


def test_a_schedule_of_an_undeclared_attribute_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"GumbelSoftmax\.seed is not declared tunable.*tau"):
        LitSearch(tiny_space(relaxation=GumbelSoftmax(), edge=SampledOp()),
                  schedules=[LinearSchedule("space.relaxation.seed", 1.0, 2.0)])


@pytest.mark.parametrize(("overlay", "schedule", "message"), [
    ("gdas", LinearSchedule("space.relaxation.tau", 1.0, -1.0), r"sets 0 at epoch 2 of 4.*tau must be > 0"),
    ("pdarts", LinearSchedule("space.skip_dropout.p", 0.5, 1.5), r"sets 1 at epoch 2 of 4.*p must be in \[0, 1\)"),
    ("sdarts_rs", LinearSchedule("perturbation.epsilon", 0.1, -0.1), r"sets -0\.05 at epoch 3.*epsilon must be >= 0"),
])
def test_schedules_are_checked_for_every_epoch_before_the_fit(overlay: str, schedule: LinearSchedule,
                                                               message: str) -> None:
    space = {"gdas": lambda: tiny_space(relaxation=GumbelSoftmax(), edge=SampledOp()),
             "pdarts": lambda: tiny_space(skip_dropout=0.1),
             "sdarts_rs": tiny_space}[overlay]()
    perturbation = parts.RandomPerturbation() if overlay == "sdarts_rs" else None
    module = LitSearch(space, perturbation=perturbation, schedules=[schedule])
    with pytest.raises(ConfigurationError, match=message):
        module.check_fit(L.Trainer(max_epochs=4, logger=False))


def test_a_bad_schedule_from_the_command_line_is_one_line_and_leaves_no_run(tmp_path: Path, capsys) -> None:
    overlay = tmp_path / "to_zero.yaml"  # GDAS's temperature annealed through 0
    overlay.write_text("model:\n  init_args:\n    schedules:\n      - class_path: darts_pl.parts.LinearSchedule\n"
                       "        init_args: {target: space.relaxation.tau, start: 1.0, end: -1.0}\n")
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
              "--config", str(REPO / "configs" / "variants" / "gdas.yaml"), "--config", str(overlay),
              "--trainer.max_epochs", "3", "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("darts-pl: error:")]
    assert len(lines) == 1 and "tau must be > 0" in lines[0]
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]


def test_noise_is_declared_by_the_parts_and_refuses_second_order() -> None:
    assert not tiny_space().stochastic and not tiny_space(skip_dropout=0.0).stochastic
    assert tiny_space(skip_dropout=0.1).stochastic
    assert tiny_space(relaxation=GumbelSoftmax(), edge=SampledOp()).stochastic
    scheduled = tiny_space(op_wrappers=[SkipDropout(0.0)])
    LitSearch(scheduled, schedules=[LinearSchedule("space.skip_dropout.p", 0.0, 0.3)])
    assert scheduled.stochastic  # p is 0 now, but a schedule will raise it
    with pytest.raises(ConfigurationError, match=r"cannot be combined with parts that draw noise \(skip_dropout"):
        LitSearch(tiny_space(op_wrappers=[SkipDropout(0.0)]), SecondOrder(),
                  schedules=[LinearSchedule("space.skip_dropout.p", 0.0, 0.3)])


def test_a_sampled_edge_needs_a_sampling_relaxation_and_ddp_must_be_told() -> None:
    with pytest.raises(ConfigurationError, match="CNNSearchSpace: edge=SampledOp runs the sampled op"):
        tiny_space(edge=SampledOp())
    module = LitSearch(tiny_space(relaxation=GumbelSoftmax(), edge=SampledOp()))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    with pytest.raises(ConfigurationError, match="ddp_find_unused_parameters_true"):
        module.check_fit(trainer)
    module.check_fit(L.Trainer(accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", logger=False))


def test_gumbel_softmax_on_non_finite_alphas_stops_instead_of_drawing_forever() -> None:
    relaxation = GumbelSoftmax(tau=1.0)
    with pytest.raises(NonFiniteError, match=r"non-finite Gumbel-softmax probabilities in 100 draws.*NOT finite"):
        relaxation(torch.full((3, 4), math.nan))


def test_gdas_with_a_nan_alpha_stops_the_search_in_skip_mode_too(tmp_path: Path) -> None:
    from darts_pl.data import DigitsDataModule

    space = tiny_space(relaxation=GumbelSoftmax(), edge=SampledOp())
    with torch.no_grad():
        space.arch["normal"][0, 0] = math.nan
    module = LitSearch(space, nonfinite="skip", max_consecutive_skips=1)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(NonFiniteError, match="2 batches in a row failed"):
        trainer.fit(module, DigitsDataModule(batch_size=16))


def test_regularizers_take_cell_types_with_different_op_counts() -> None:
    normal = [["none", "skip_connect", "sep_conv_3x3"]] * 14
    reduce = [["max_pool_3x3", "skip_connect"]] * 14
    space = tiny_space(edge_primitives={"normal": normal, "reduce": reduce})
    assert space.arch["normal"].shape == (14, 3) and space.arch["reduce"].shape == (14, 2)
    for regularizer in (ZeroOneLoss(), DirichletKL(), BetaDecay()):
        (grad_n, grad_r) = torch.autograd.grad(regularizer(space), [space.arch["normal"], space.arch["reduce"]])
        assert grad_n.shape == (14, 3) and grad_r.shape == (14, 2)
    flat = torch.cat([torch.sigmoid(space.arch[c]).flatten() for c in ("normal", "reduce")])
    expected = -10.0 * (flat - 0.5).square().mean()  # one mean over every op of both cell types
    torch.testing.assert_close(ZeroOneLoss()(space), expected)
