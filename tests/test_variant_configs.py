"""Every variant's overlay runs on the offline quickstart with both orders where the method allows it, refuses the
order it does not, and a resumed stochastic search continues exactly as the uninterrupted one.

The overlays: configs/variants/gdas.yaml, fair_darts.yaml, drnas.yaml, beta_darts.yaml, sdarts_rs.yaml,
sdarts_adv.yaml, darts_minus.yaml, pdarts.yaml (its first stage; the stages: tests/test_pdarts.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from darts_pl.cli import main
from darts_pl.genotypes import load

from .conftest import REPO
from .conftest import run_dir as the_run_dir

VARIANTS = REPO / "configs" / "variants"
STOCHASTIC = {"gdas", "drnas", "pdarts"}  # samples or dropout masks: the unrolled finite difference is refused
ALL = ["gdas", "fair_darts", "drnas", "beta_darts", "sdarts_rs", "sdarts_adv", "darts_minus", "pc_darts", "pdarts"]
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
    try:
        main([*args, *SMALL, "--trainer.default_root_dir", str(root), *extra])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


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


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("space.arch.")}
    state.update({f"schedule.{k}": torch.tensor(v) for k, v in ckpt.get("darts_pl.schedules", {}).items()})
    return state


@pytest.mark.parametrize("variant", ["gdas", "sdarts_rs"])
def test_resumed_stochastic_search_equals_the_uninterrupted_one(tmp_path: Path, variant: str, capsys) -> None:
    """The sampling generator (GDAS), the perturbation generator (SDARTS-RS) and the schedules' values come back
    from the checkpoint: a search stopped after epoch 0 and resumed ends with the uninterrupted run's alphas."""
    common = ("--trainer.limit_train_batches", "3", "--trainer.deterministic", "true")
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
    assert any(k.startswith("schedule.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


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
