"""The bilevel loop in a real Trainer, on tiny real data (sklearn digits)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from darts_pl.callbacks import GenotypeCheckpoint
from darts_pl.data import DigitsDataModule
from darts_pl.genotypes import load
from darts_pl.modules import LitSearch
from darts_pl.search import CNNSearchSpace
from darts_pl.strategies import FirstOrder, SecondOrder

from .conftest import trainer


def make_module(strategy=None, scheduler: bool = True) -> LitSearch:
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    sched = (lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.001)) if scheduler else None
    return LitSearch(space, strategy or FirstOrder(), weight_scheduler=sched)


class StepAudit(Callback):
    """Wraps both optimizers' step() to record which parameters each step changed, and checks that
    nothing changes between steps."""

    def __init__(self) -> None:
        self.changed: dict[str, set[int]] = {"weight": set(), "arch": set()}
        self.outside_steps = 0
        self.steps = {"weight": 0, "arch": 0}

    def on_train_start(self, trainer, pl_module) -> None:
        params = list(pl_module.parameters())
        last = {"snap": [p.detach().clone() for p in params]}

        def wrap(name, opt):
            original = opt.step

            def step(*args, **kwargs):
                before = [p.detach().clone() for p in params]
                self.outside_steps += sum(not torch.equal(a, b) for a, b in zip(before, last["snap"]))
                out = original(*args, **kwargs)
                after = [p.detach().clone() for p in params]
                self.changed[name] |= {i for i, (a, b) in enumerate(zip(before, after)) if not torch.equal(a, b)}
                last["snap"] = after
                self.steps[name] += 1
                return out
            opt.step = step

        weight_opt, arch_opt = trainer.optimizers
        wrap("weight", weight_opt)
        wrap("arch", arch_opt)
        self.index = {id(p): i for i, p in enumerate(params)}


@pytest.mark.parametrize("strategy", [FirstOrder(), SecondOrder(), SecondOrder(hessian="exact")],
                         ids=["first", "second", "second-exact"])
def test_fit_two_batches_each_parameter_set_changes_only_through_its_optimizer(tmp_path, strategy) -> None:
    module = make_module(strategy)
    audit = StepAudit()
    alphas0 = [a.detach().clone() for a in module.space.arch_parameters()]
    trainer(tmp_path, callbacks=[audit]).fit(module, DigitsDataModule(batch_size=16))
    assert audit.steps == {"weight": 2, "arch": 2}
    arch_idx = {audit.index[id(p)] for p in module.space.arch_parameters()}
    weight_idx = {audit.index[id(p)] for p in module.space.weight_parameters()}
    assert audit.changed["arch"] == arch_idx
    assert audit.changed["weight"] and audit.changed["weight"] <= weight_idx
    assert audit.outside_steps == 0
    assert not torch.equal(alphas0[0], module.space.arch["normal"])
    metrics = trainer_metrics = module.trainer.callback_metrics
    for key in ("train/loss", "train/acc", "arch/loss", "val/loss", "val/acc", "lr/weight", "lr/arch"):
        assert key in metrics, (key, sorted(trainer_metrics))


def test_warmup_epochs_skip_alpha_steps(tmp_path) -> None:
    module = make_module()
    module.warmup_epochs = 1
    before = module.space.arch["normal"].detach().clone()
    trainer(tmp_path).fit(module, DigitsDataModule(batch_size=16))
    assert torch.equal(before, module.space.arch["normal"])


def test_search_needs_search_batches(tmp_path) -> None:
    with pytest.raises(ValueError, match="mode search"):
        trainer(tmp_path).fit(make_module(), DigitsDataModule(batch_size=16, mode="train"))


def test_resume_restores_alphas_optimizers_and_scheduler(tmp_path) -> None:
    torch.manual_seed(0)
    first = make_module(SecondOrder())
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path, max_epochs=2, callbacks=[ckpt], enable_checkpointing=True).fit(
        first, DigitsDataModule(batch_size=16))
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)

    class Check(Callback):
        seen = False

        def on_train_start(self, trainer, pl_module) -> None:
            space = pl_module.space
            assert torch.equal(space.arch["normal"], first.space.arch["normal"])
            assert torch.equal(space.arch["reduce"], first.space.arch["reduce"])
            weight_opt = trainer.optimizers[0]
            assert weight_opt.param_groups[0]["lr"] == first.trainer.optimizers[0].param_groups[0]["lr"] < 0.025
            for ours, saved in zip(trainer.optimizers, state["optimizer_states"]):
                mine = ours.state_dict()
                assert mine["state"].keys() == saved["state"].keys()
                for k, v in saved["state"].items():
                    for name, tensor in v.items():
                        assert torch.equal(torch.as_tensor(mine["state"][k][name]), torch.as_tensor(tensor))
            sched = trainer.lr_scheduler_configs[0].scheduler
            assert sched.last_epoch == 2 == state["lr_schedulers"][0]["last_epoch"]
            assert trainer.current_epoch == 2
            Check.seen = True

    second = make_module(SecondOrder())
    trainer(tmp_path, max_epochs=3, callbacks=[Check()]).fit(
        second, DigitsDataModule(batch_size=16), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert Check.seen


def test_genotype_checkpoint_writes_each_epoch_and_final(tmp_path) -> None:
    module = make_module()
    callback = GenotypeCheckpoint(dirpath=str(tmp_path / "run"))
    trainer(tmp_path, max_epochs=2, callbacks=[callback]).fit(module, DigitsDataModule(batch_size=16))
    assert load(tmp_path / "run" / "genotypes" / "epoch_000.json")
    assert load(tmp_path / "run" / "genotypes" / "epoch_001.json")
    assert load(tmp_path / "run" / "genotype.json") == module.space.genotype()


def test_genotype_checkpoint_never_overwrites_an_earlier_result(tmp_path) -> None:
    run = tmp_path / "run"
    trainer(tmp_path, callbacks=[GenotypeCheckpoint(dirpath=str(run))]).fit(
        make_module(), DigitsDataModule(batch_size=16))
    before = (run / "genotype.json").read_text()
    with pytest.raises(ValueError, match="already holds the result of an earlier search"):
        trainer(tmp_path, callbacks=[GenotypeCheckpoint(dirpath=str(run))]).fit(
            make_module(), DigitsDataModule(batch_size=16))
    assert (run / "genotype.json").read_text() == before


# ----------------------------------------------------------------------------------------- self-describing checkpoints
def test_a_darts_pl_checkpoint_loads_from_its_path_alone_and_is_named_by_iteration(tmp_path) -> None:
    from darts_pl.cli import main
    from darts_pl.search import Sigmoid
    from darts_pl.strategies import ZeroOneLoss

    configs = Path(__file__).resolve().parents[1] / "configs"
    # FairDARTS on the quickstart: parts in every slot the config fills (relaxation, derivation, regularizers).
    main(["fit", "--config", str(configs / "quickstart.yaml"),
          "--config", str(configs / "variants" / "fair_darts.yaml"), "--config", str(configs / "debug.yaml"),
          "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path),
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3"])
    folder = next(tmp_path.rglob("checkpoints"))
    # 3 search iterations (debug.yaml), 6 optimizer steps: the name counts iterations.
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=000-iteration=3.ckpt", "last.ckpt"]
    saved = torch.load(folder / "last.ckpt", weights_only=True)  # plain data: the CLI reads it back the same way

    module = LitSearch.load_from_checkpoint(folder / "last.ckpt")
    assert isinstance(module.space, CNNSearchSpace) and isinstance(module.space.relaxation, Sigmoid)
    assert "none" not in module.space.primitives and module.space.stem[0].out_channels == 3 * 4
    assert [type(r) for r in module.regularizers] == [ZeroOneLoss] and module.regularizers[0].weight == 10.0
    assert isinstance(module.strategy, FirstOrder)
    state = module.state_dict()
    assert state.keys() == saved["state_dict"].keys()
    assert all(torch.equal(state[key], value) if torch.is_tensor(value) else state[key] == value
               for key, value in saved["state_dict"].items())  # parts' extra state (a weight, a threshold) too
    assert saved["state_dict"]["regularizers.0._extra_state"] == {"weight": 10.0}
    optimizer = module.weight_optimizer(module.space.weight_parameters())
    assert optimizer.defaults["lr"] == 0.005 and optimizer.defaults["momentum"] == 0.9


def test_a_checkpoint_of_a_module_built_in_python_asks_for_the_space(tmp_path) -> None:
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = make_module()
    trainer(tmp_path, callbacks=[ckpt], enable_checkpointing=True).fit(first, DigitsDataModule(batch_size=16))
    path = tmp_path / "ckpt" / "last.ckpt"
    with pytest.raises(ValueError, match=r"built in Python.*pass it, e\.g\. LitSearch\.load_from_checkpoint\(path, "
                                         r"space=CNNSearchSpace"):
        LitSearch.load_from_checkpoint(path)
    space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
    module = LitSearch.load_from_checkpoint(path, space=space)
    assert {"grad_clip": 5.0, "warmup_epochs": 0, "nonfinite": "stop"}.items() <= dict(module.hparams).items()
    assert not set(module.hparams) & {"space", "strategy", "weight_optimizer", "arch_optimizer", "regularizers"}
    assert torch.equal(module.space.arch["normal"], first.space.arch["normal"])
