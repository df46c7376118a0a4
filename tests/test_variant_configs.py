"""Every variant's overlay runs on the offline quickstart with both orders where the method allows it, refuses the
order it does not, and a resumed stochastic search continues exactly as the uninterrupted one.

The overlays: configs/variants/gdas.yaml, fair_darts.yaml, drnas.yaml, beta_darts.yaml, sdarts_rs.yaml,
sdarts_adv.yaml, darts_minus.yaml, pdarts.yaml (its first stage; the stages: tests/test_pdarts.py), reinmax.yaml,
snas.yaml, lambda_darts.yaml, cost_flops.yaml (a cost regulariser, appended to any method's regularizers).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from darts_pl.genotypes import load

from .conftest import REPO, run_cli, tiny_space
from .conftest import run_dir as the_run_dir

VARIANTS = REPO / "configs" / "variants"
# samples or dropout masks: the unrolled finite difference is refused
STOCHASTIC = {"gdas", "drnas", "pdarts", "reinmax", "snas"}
ALL = ["gdas", "fair_darts", "drnas", "beta_darts", "sdarts_rs", "sdarts_adv", "darts_minus", "pc_darts", "pdarts",
       "reinmax", "snas", "lambda_darts", "cost_flops"]
SMALL = ["--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
         "--trainer.enable_model_summary", "false",
         "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
         "--data.init_args.batch_size", "16"]


def run(root: Path, variant: str, *extra: str, second_order: bool = False) -> int:
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--config", str(VARIANTS / f"{variant}.yaml")]
    if second_order:
        args += ["--config", str(REPO / "configs" / "second_order.yaml")]
    if variant in ("drnas", "pc_darts", "pdarts"):
        args += ["--model.init_args.warmup_epochs", "0"]  # their 10 / 15 / 10 warm-up epochs would take no alpha step
    return run_cli(*args, *SMALL, "--trainer.default_root_dir", str(root), *extra)


def test_every_overlay_is_tested() -> None:
    assert sorted(p.stem for p in VARIANTS.glob("*.yaml")) == sorted(ALL)


@pytest.mark.parametrize("order", ["first", "second"])
@pytest.mark.parametrize("variant", ALL)
def test_variant_runs_on_the_quickstart(tmp_path: Path, variant: str, order: str, capsys, recwarn) -> None:
    second = order == "second"
    code = run(tmp_path, variant, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
               second_order=second)
    err = capsys.readouterr().err
    if second and variant in STOCHASTIC:
        assert code == 2
        lines = [line for line in err.splitlines() if line.startswith("darts-pl: error:")]
        assert len(lines) == 1 and "SecondOrder" in lines[0] and "FirstOrder" in lines[0], err[-2000:]
        assert not list(tmp_path.rglob("*.ckpt"))
        return
    assert code == 0, err[-3000:]
    run_dir = the_run_dir(tmp_path)
    genotype = load(run_dir / "genotype.json")
    assert genotype.normal and genotype.reduce
    if variant == "fair_darts":  # two steps from sigmoid(0) = 0.5 leave every weight under the 0.85 threshold
        assert {op for op, _ in genotype.normal + genotype.reduce} == {"none"}
        assert any("keeps no op on any edge" in str(w.message) for w in recwarn)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    arch = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("space.arch.")}
    assert set(arch) >= {"space.arch.normal", "space.arch.reduce"}
    assert all(torch.isfinite(v).all() for v in arch.values())
    arch_state = ckpt["optimizer_states"][1]["state"]
    assert arch_state and all(int(s["step"]) == 2 for s in arch_state.values())  # two alpha steps were taken
    assert (run_dir / "alpha_history.json").is_file()


def final_state(run_dir: Path) -> dict[str, object]:
    """The architecture tensors and every part's own state (scheduled values, generators)."""
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("space.arch.") or k.endswith("_extra_state")}


def same(a: object, b: object) -> bool:
    if torch.is_tensor(a) and torch.is_tensor(b):
        return torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


SCHEDULED = {"gdas": "space.relaxation._extra_state", "sdarts_rs": "perturbation._extra_state",
             "reinmax": "space.relaxation._extra_state", "snas": "space.relaxation._extra_state",
             "lambda_darts": "weight_terms.0._extra_state"}
"""Where each resumed variant's scheduled value is kept (its part's state)."""


@pytest.mark.parametrize("variant", ["gdas", "sdarts_rs", "reinmax", "snas", "lambda_darts"])
def test_resumed_stochastic_search_equals_the_uninterrupted_one(tmp_path: Path, variant: str, capsys) -> None:
    """The sampling generator (GDAS, ReinMax, SNAS), the perturbation generator (SDARTS-RS) and the schedules' values
    (a temperature, Λ-DARTS's weight) come back from the checkpoint: a search stopped after epoch 0 and resumed ends
    with the uninterrupted run's alphas. Λ-DARTS runs on 5 cells (3 normal cells to align)."""
    common = ("--trainer.limit_train_batches", "3", "--trainer.deterministic", "true")
    if variant == "lambda_darts":
        common += ("--model.init_args.space.init_args.num_cells", "5")
    assert run(tmp_path / "a", variant, "--trainer.max_epochs", "3", *common) == 0, capsys.readouterr().err[-3000:]
    # stopped after epoch 0 (3 iterations, two optimizer steps each), as a kill after its checkpoint would
    assert run(tmp_path / "b", variant, "--trainer.max_epochs", "3", "--trainer.max_steps", "6", *common) == 0, \
        capsys.readouterr().err[-3000:]
    assert torch.load(the_run_dir(tmp_path / "b") / "checkpoints" / "last.ckpt",
                      weights_only=False)["epoch"] == 0
    assert run(tmp_path / "b", variant, "--trainer.max_epochs", "3", "--ckpt_path", "last", *common) == 0, \
        capsys.readouterr().err[-3000:]
    a = final_state(the_run_dir(tmp_path / "a"))
    b = final_state(the_run_dir(tmp_path / "b"))
    assert a.keys() == b.keys()
    scheduled = SCHEDULED[variant]
    assert a[scheduled] and a[scheduled] == b[scheduled]  # the value the schedule set, kept by its part
    for key in a:
        assert same(a[key], b[key]), key


QUICKSTART = {"drnas": 2, "pc_darts": 2, "pdarts": 3}  # warm-up epochs of their quickstart overlays


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(QUICKSTART))
def test_quickstart_overlay_takes_alpha_steps_in_the_quickstart_budget(tmp_path: Path, variant: str, capsys) -> None:
    """The method's own overlay keeps its authors' warm-up (10 / 15 / 10 epochs), more than the quickstart's 8 epochs;
    its quickstart overlay scales it, so the search takes alpha steps (counted in the checkpoint's Adam state)."""
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--config", str(VARIANTS / f"{variant}.yaml"),
            "--config", str(VARIANTS / "quickstart" / f"{variant}.yaml"), *SMALL, "--trainer.limit_train_batches", "2",
            "--trainer.default_root_dir", str(tmp_path)]
    assert run_cli(*args) == 0, capsys.readouterr().err[-3000:]
    run_dir = next(p.parent for p in tmp_path.rglob("genotype.json"))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 7  # the quickstart's 8 epochs
    steps = {int(state["step"]) for state in ckpt["optimizer_states"][1]["state"].values()}
    assert steps == {2 * (8 - QUICKSTART[variant])}  # one alpha step per batch after the warm-up


def test_the_authors_warm_up_in_the_quickstart_is_warned_about(tmp_path: Path) -> None:
    import lightning as L

    from darts_pl.modules import LitSearch

    with pytest.warns(UserWarning, match=r"warmup_epochs=10 >= trainer.max_epochs=8: this search takes no alpha step"):
        LitSearch(tiny_space(), warmup_epochs=10).check_fit(L.Trainer(max_epochs=8, logger=False))


@pytest.mark.slow
def test_fair_darts_quickstart_overlay_derives_a_trainable_cell(tmp_path: Path, capsys) -> None:
    """At the authors' alpha rate no sigmoid weight reaches the 0.85 threshold in the quickstart's 88 alpha steps, so
    every edge derives 'none'; the quickstart overlay's rate does, on the digits, in the quickstart's budget."""
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--config", str(VARIANTS / "fair_darts.yaml"),
            "--config", str(VARIANTS / "quickstart" / "fair_darts.yaml"), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--model.init_args.space.init_args.channels", "4",
            "--model.init_args.space.init_args.num_cells", "3", "--trainer.default_root_dir", str(tmp_path)]
    assert run_cli(*args) == 0, capsys.readouterr().err[-3000:]
    genotype = load(next(tmp_path.rglob("genotype.json")))
    assert not genotype.empty_cells()
    assert sum(op != "none" for op in genotype.cell_ops("normal")) >= 2


@pytest.mark.parametrize("parts", ["sdarts_rs+beta", "drnas", "sdarts_adv"])
def test_recurrent_space_runs_the_variants_defined_for_it(parts: str, tiny_ptb: Path, tmp_path: Path) -> None:
    """The RNN space takes the deterministic and Dirichlet relaxations, regularizers and weight-step perturbations."""
    from functools import partial

    import lightning as L

    from darts_pl.data import PTBDataModule
    from darts_pl.modules import LitSearch
    from darts_pl.search import Dirichlet, RNNSearchSpace
    from darts_pl.strategies import AdversarialPerturbation, BetaDecay, DirichletKL, FirstOrder, RandomPerturbation

    dm = PTBDataModule(str(tiny_ptb), mode="search", batch_size=4, eval_batch_size=2, bptt=8)
    relaxation, regularizers, perturbation = None, [], None
    if parts == "sdarts_rs+beta":
        regularizers, perturbation = [BetaDecay(weight=1.0)], RandomPerturbation(epsilon=0.3)
    elif parts == "drnas":
        relaxation, regularizers = Dirichlet(seed=0), [DirichletKL()]
    else:
        perturbation = AdversarialPerturbation(epsilon=0.3, steps=2)
    space = RNNSearchSpace(num_tokens=dm.num_tokens, emb_size=8, hidden_size=8, relaxation=relaxation)
    model = LitSearch(space, FirstOrder(), weight_optimizer=partial(torch.optim.SGD, lr=20.0),
                      arch_optimizer=partial(torch.optim.Adam, lr=3e-3), grad_clip=0.25,
                      regularizers=regularizers, perturbation=perturbation)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=tmp_path, accelerator="cpu", devices=1)
    before = space.arch["recurrent"].detach().clone()
    trainer.fit(model, dm)
    assert trainer.global_step == 4
    assert not torch.equal(space.arch["recurrent"], before)
    assert torch.isfinite(space.arch["recurrent"]).all()
    assert all(torch.isfinite(p).all() for p in space.weight_parameters())
    assert len(space.genotype().recurrent) == 8


def test_recurrent_space_refuses_gdas() -> None:
    from darts_pl.errors import ConfigurationError
    from darts_pl.search import GumbelSoftmax, RNNSearchSpace

    with pytest.raises(ConfigurationError, match="RNNSearchSpace: relaxation=GumbelSoftmax samples one op"):
        RNNSearchSpace(num_tokens=10, emb_size=8, hidden_size=8, relaxation=GumbelSoftmax())


def test_a_cnn_overlay_on_the_recurrent_config_names_the_reason(tiny_ptb: Path, tmp_path: Path, capsys) -> None:
    code = run_cli("fit", "--config", str(REPO / "configs" / "search_ptb.yaml"),
                   "--config", str(VARIANTS / "drnas.yaml"), "--data.data_dir", str(tiny_ptb),
                   "--trainer.default_root_dir", str(tmp_path))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("darts-pl: error:")]
    assert code == 2 and len(lines) == 1
    assert "convolutional ops" in lines[0] and "the recurrent space takes none, tanh" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("order", ["first", "second"])
def test_snas_quickstart_overlay_costs_the_digits_resolution(tmp_path: Path, order: str, capsys) -> None:
    """The resource constraint counts FLOPs and memory access at 8 px on the digits (its overlay: 32 px, CIFAR-10);
    second order stays refused (the concrete sample is noise)."""
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--config", str(VARIANTS / "snas.yaml"),
            "--config", str(VARIANTS / "quickstart" / "snas.yaml"), *SMALL, "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.default_root_dir", str(tmp_path)]
    if order == "second":
        args[5:5] = ["--config", str(REPO / "configs" / "second_order.yaml")]
    code = run_cli(*args)
    err = capsys.readouterr().err
    if order == "second":
        assert code == 2 and "relaxation Concrete" in err and not list(tmp_path.rglob("*.ckpt"))
        return
    assert code == 0, err[-3000:]
    ckpt = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=False)
    (constraint,) = ckpt["hyper_parameters"]["regularizers"]
    assert constraint["class_path"] == "darts_pl.parts.ResourceConstraint"
    assert constraint["init_args"]["image_size"] == 8
