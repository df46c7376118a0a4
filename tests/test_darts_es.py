"""DARTS-ES and DARTS-ADA: the rule against the authors' EVLocalAvg on fixed eigenvalue sequences, DARTS-ES stopping a
real fit with the named epoch's genotype as its result, DARTS-ADA rolling a real fit back and raising the weight
decay, and both resuming exactly."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from darts_pl import genotypes
from darts_pl.callbacks import CurvatureMonitor, DartsAda, DartsEarlyStop, GenotypeCheckpoint
from darts_pl.curvature import early_stop_check, load_curvature, local_averages
from darts_pl.data import DigitsDataModule
from darts_pl.errors import ConfigurationError
from darts_pl.modules import LitSearch

from .conftest import REPO, run_cli, run_dir, tiny_space, trainer

# tests/goldens/robust_darts_curvature.py: the eigenvalue sequences it feeds to the authors' EVLocalAvg, driven as
# their train_search.py drives it:
# (eigenvalue at epoch e, epochs, report_freq_hessian, window, delta, factor, es_start_epoch).
SEQUENCES = {
    "authors_settings": ([0.1 + 0.002 * e + (0.05 * (e - 24) if e > 24 else 0.0) for e in range(50)], 50, 2, 5, 4,
                         1.3, 10),
    "every_epoch": ([0.2 + 0.01 * np.sin(e) + (0.03 * (e - 14) if e > 14 else 0.0) for e in range(30)], 30, 1, 5, 4,
                    1.3, 10),
    "even_window": ([0.3 + 0.02 * np.cos(0.7 * e) + (0.08 * (e - 12) if e > 12 else 0.0) for e in range(30)], 30, 1,
                    4, 2, 1.2, 5),
    "window_three": ([1.0 + 0.1 * np.sin(1.3 * e) + (0.2 * (e - 9) if e > 9 else 0.0) for e in range(24)], 24, 3, 3,
                     2, 1.1, 4),
    "never": ([0.5 + 0.01 * np.sin(e) for e in range(40)], 40, 2, 5, 4, 1.3, 10),
}
# Every check at which their early_stop says stop: [epoch, stop_epoch, the epoch of stop_genotype]; their
# ev_local_avg at the end (with the window-shrinking averages their update appends at the last epoch).
AUTHORS_RULE = {
    "authors_settings": {
        "stops": [[28, 16, 16], [30, 18, 18], [32, 20, 20], [34, 22, 22], [36, 24, 24], [38, 26, 26], [40,
            28, 28], [42, 30, 30], [44, 32, 32], [46, 34, 34], [48, 36, 36]],
        "local_averages": [0.104, 0.106, 0.108, 0.112, 0.116, 0.12, 0.124, 0.128, 0.132, 0.136, 0.14, 0.164, 0.208,
            0.272, 0.356, 0.46, 0.564, 0.668, 0.772, 0.876, 0.98, 1.084, 1.188, 1.2816,
            1.331, 1.37866666666667]},
    "every_epoch": {
        "stops": [[18, 12, 12], [19, 13, 13], [20, 14, 14], [21, 15, 15], [22, 16, 16], [23, 17, 17], [24,
            18, 18], [25, 19, 19], [26, 20, 20]],
        "local_averages": [0.205835894705445, 0.204729721049234, 0.202270171848771, 0.200352323299445,
            0.198110550333431, 0.197605928677217, 0.199302405154344, 0.201640247115444,
            0.202470053442991, 0.201028904026288, 0.198641784992849, 0.197503402573256,
            0.198660380314162, 0.207048998216255, 0.220473171996026, 0.237623522848268,
            0.259281214281071, 0.287599753989008, 0.318125068810149, 0.350374186720551,
            0.382279279085729, 0.412088812770922, 0.439977901627583, 0.467887307625932,
            0.497739113249819, 0.529669567725209, 0.561903820110175, 0.592387709065762,
            0.608315515707448, 0.621878826108331]},
    "even_window": {
        "stops": [[15, 11, 11], [16, 12, 12], [17, 13, 13], [18, 14, 14], [19, 15, 15], [20, 16, 16], [21,
            17, 17]],
        "local_averages": [0.317648421872845, 0.312898728867898, 0.307149816127924, 0.297438704424581,
            0.288932210051705, 0.2856310702305, 0.289087862600612, 0.297676803696507,
            0.307358380314878, 0.313579195693298, 0.313413503156374, 0.30693923049324,
            0.317201329300667, 0.348779686668427, 0.405635132718257, 0.489246600307934,
            0.577915559799295, 0.667564864087324, 0.753656294590822, 0.833324956362768,
            0.906726682949117, 0.976964745437176, 1.04863033557329, 1.1256432565452,
            1.2094083782942, 1.29815490523009, 1.38776920906668, 1.47372953248196,
            1.55323264224112, 1.59233450651954]},
    "window_three": {
        "stops": [[15, 6, 6], [18, 9, 9], [21, 12, 12]],
        "local_averages": [0.965611692040801, 1.01035923953969, 0.984959786742387, 1.21147711379183,
            1.59837699793667, 2.19087926546328, 2.81486507373981, 3.29473057706036,
            3.59144164349658]},
    "never": {
        "stops": [],
        "local_averages": [0.500508316438392, 0.499682698583297, 0.501724875359884, 0.500636833138106,
            0.497745092448453, 0.501239912150459, 0.501222936513527, 0.497742245526737,
            0.500656178249971, 0.501711621467391, 0.497919250031988, 0.500020173566277,
            0.502063959636436, 0.498262005886795, 0.499382561867859, 0.502251883964113,
            0.498743209356267, 0.49879413493707, 0.502697788957824, 0.501993669494176,
            0.500894617038501]},
}
AUTHORS_FINAL = {
    "0.0003_10.0_0.03": {"levels": [0.0003, 0.003, 0.03, 0.3], "final": [False, False, True, False]},
    "0.0003_3.0_0.0243": {"levels": [0.0003, 0.0009, 0.0027, 0.0081, 0.0243, 0.0729],
                          "final": [False, False, False, False, True, False]},
    "0.001_10.0_0.1": {"levels": [0.001, 0.01, 0.1], "final": [False, False, True]},
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_rule_equals_the_authors_ev_local_avg(name: str) -> None:
    values, epochs, freq, window, delta, factor, start = SEQUENCES[name]
    golden = AUTHORS_RULE[name]
    seen_epochs, seen, stops = [], [], []
    for epoch in range(epochs):
        if epoch % freq == 0 or epoch == epochs - 1:
            seen_epochs.append(epoch)
            seen.append(float(values[epoch]))
            decision = early_stop_check(seen_epochs, seen, window=window, delta=delta, factor=factor,
                                        es_start_epoch=start)
            if epoch != epochs - 1 and decision is not None and decision.stop:
                stops.append([epoch, decision.named_epoch, decision.named_epoch])
    assert stops == golden["stops"]
    # their list starts once ceil(window / 2) values are in, and ends with the tail their last epoch appends
    ours = local_averages(seen[:-1], window)[math.ceil(window / 2) - 1:]
    assert ours == pytest.approx(golden["local_averages"][: len(ours)], rel=1e-12)
    assert len(golden["local_averages"]) == len(ours) + math.ceil(window / 2)


@pytest.mark.parametrize("setting", list(AUTHORS_FINAL))
def test_ada_end_condition_equals_the_authors(setting: str) -> None:
    """Up to the maximum, the weight decay goes through the authors' levels and is at its maximum exactly where their
    final_iteration says so (beyond it, theirs would multiply on: ours stops at the maximum)."""
    start, mul, maximum = map(float, setting.split("_"))
    ada = DartsAda(mul_factor=mul, max_weight_decay=maximum)
    golden = AUTHORS_FINAL[setting]
    level, levels, finals = start, [], []
    while not levels or not finals[-1]:
        levels.append(level)
        finals.append(ada.at_maximum(level))
        level = min(level * mul, maximum)
    assert levels == pytest.approx(golden["levels"][: len(levels)], rel=1e-12)
    assert finals == golden["final"][: len(finals)]


def test_bad_settings_are_one_line() -> None:
    for cls, kwargs, text in ((DartsEarlyStop, {"window": 0}, "window=0"),
                              (DartsEarlyStop, {"factor": -1}, "factor=-1"),
                              (DartsEarlyStop, {"es_start_epoch": -1}, "es_start_epoch=-1"),
                              (DartsAda, {"mul_factor": 1.0}, "mul_factor=1.0"),
                              (DartsAda, {"max_weight_decay": 0}, "max_weight_decay=0"),
                              (DartsAda, {"extra_rollback_epochs": -2}, "extra_rollback_epochs=-2")):
        with pytest.raises(ConfigurationError, match=text):
            cls(**kwargs)


# A rule that triggers at its first check, whatever the (positive) eigenvalues: window 3 and delta 1 name the epoch two
# before the check, es_start_epoch 1 makes epoch 3 the first check.
TRIGGER = {"window": 3, "delta": 1, "factor": 1e-3, "es_start_epoch": 1}


def fit(root: Path, callbacks: list[Callback], max_epochs: int, ckpt_path: str | None = None, **kwargs: Any) -> Any:
    torch.manual_seed(0)
    module = LitSearch(tiny_space())
    trainer_ = trainer(root, max_epochs=max_epochs, callbacks=callbacks, deterministic=True, **kwargs)
    trainer_.fit(module, DigitsDataModule(batch_size=16), ckpt_path=ckpt_path)
    return module


def test_darts_es_stops_and_returns_the_named_epochs_genotype(tmp_path: Path) -> None:
    """The fit ends after the triggering epoch (3), genotype.json is the genotype of the named epoch (1), and a run
    resumed from the last checkpoint ends at once with the same result."""
    def callbacks() -> list[Callback]:
        return [GenotypeCheckpoint(diagrams=False, verbose=False), DartsEarlyStop(**TRIGGER),
                CurvatureMonitor(iterations=8), ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)]

    fit(tmp_path, callbacks(), max_epochs=6, enable_checkpointing=True)
    saved = sorted(p.name for p in (tmp_path / "genotypes").glob("*.json"))
    assert saved == ["epoch_000.json", "epoch_001.json", "epoch_002.json", "epoch_003.json"]
    named = genotypes.load(tmp_path / "genotypes" / "epoch_001.json")
    assert genotypes.load(tmp_path / "genotype.json") == named
    assert genotypes.load(tmp_path / "genotype_darts_es.json") == named
    history = load_curvature(tmp_path)
    assert history.epochs.tolist() == [0, 1, 2, 3]
    (event,) = history.events
    assert (event["kind"], event["epoch"], event["named_epoch"], event["stopped"]) == ("early_stop", 3, 1, True)
    values = history.values.tolist()
    assert event["ratio"] == pytest.approx(np.mean(values[1:4]) / np.mean(values[0:3]))
    (tmp_path / "genotype.json").unlink()
    fit(tmp_path, callbacks(), max_epochs=6, enable_checkpointing=True, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert not (tmp_path / "genotypes" / "epoch_004.json").exists()
    assert genotypes.load(tmp_path / "genotype.json") == named


def test_simulated_darts_es_records_the_stop_and_searches_on(tmp_path: Path) -> None:
    fit(tmp_path, [GenotypeCheckpoint(diagrams=False, verbose=False), CurvatureMonitor(iterations=8),
                   DartsEarlyStop(**TRIGGER, simulate=True)], max_epochs=5)
    assert genotypes.load(tmp_path / "genotype.json") == genotypes.load(tmp_path / "genotypes" / "epoch_004.json")
    assert genotypes.load(tmp_path / "genotype_darts_es.json") == genotypes.load(tmp_path / "genotypes" /
                                                                                  "epoch_001.json")
    assert [(e["epoch"], e["named_epoch"], e["stopped"]) for e in load_curvature(tmp_path).events] == [(3, 1, False)]


class Probe(Callback):
    """What each epoch starts from: the epoch's number, the weight decay, the module's and the optimizers' states, the
    generator."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        weight_opt, arch_opt = trainer.optimizers
        self.starts.append({
            "epoch": trainer.current_epoch, "wd": weight_opt.param_groups[0]["weight_decay"],
            "lr": weight_opt.param_groups[0]["lr"], "rng": torch.get_rng_state(),
            "state": {n: t.detach().clone() for n, t in pl_module.state_dict().items() if torch.is_tensor(t)},
            "buffers": [s["momentum_buffer"].clone() for s in weight_opt.state.values()],
            "adam": [s["exp_avg"].clone() for s in arch_opt.state.values()]})


def ada(**kwargs: Any) -> DartsAda:
    return DartsAda(**TRIGGER, mul_factor=10.0, max_weight_decay=3e-3, **kwargs)


def test_darts_ada_rolls_back_and_raises_the_weight_decay(tmp_path: Path) -> None:
    """The trigger at epoch 3 names epoch 1: the next epoch is 2 again, started from exactly what the first epoch 2
    started from (weights, alphas, batch-norm statistics, momentum, Adam moments, learning rate, generator), with the
    weight decay 10x; the next trigger finds it at its maximum and changes nothing."""
    probe = Probe()
    rule = ada(keep_snapshots=False)
    fit(tmp_path, [GenotypeCheckpoint(diagrams=False, verbose=False), CurvatureMonitor(iterations=8), rule, probe],
        max_epochs=5)
    assert [s["epoch"] for s in probe.starts] == [0, 1, 2, 3, 2, 3, 4]
    assert [s["wd"] for s in probe.starts] == pytest.approx([3e-4] * 4 + [3e-3] * 3)
    first, again = probe.starts[2], probe.starts[4]
    for name, tensor in first["state"].items():
        assert torch.equal(tensor, again["state"][name]), name
    assert all(torch.equal(a, b) for a, b in zip(first["buffers"], again["buffers"]))
    assert all(torch.equal(a, b) for a, b in zip(first["adam"], again["adam"]))
    assert first["lr"] == again["lr"] and torch.equal(first["rng"], again["rng"])
    assert not torch.equal(probe.starts[3]["state"]["space.arch.normal"], again["state"]["space.arch.normal"])
    history = load_curvature(tmp_path)
    assert history.epochs.tolist() == [0, 1, 2, 3, 2, 3, 4]
    assert history.active.tolist() == [True, True, False, False, True, True, True]
    assert history.branches.tolist() == [0, 0, 0, 0, 1, 1, 1]
    kinds = [(e["kind"], e["epoch"], e["named_epoch"]) for e in history.events]
    assert kinds == [("early_stop", 3, 1), ("rollback", 3, 1)]
    assert history.events[1]["weight_decay"] == pytest.approx([3e-4, 3e-3])
    assert len(rule.rollbacks) == 1
    assert genotypes.load(tmp_path / "genotype_darts_es.json") == genotypes.load(tmp_path / "genotypes" /
                                                                                  "epoch_001.json")
    assert not (tmp_path / "rollback").exists()  # removed at the end of the fit


@pytest.mark.slow
def test_darts_ada_resumed_after_a_kill_ends_as_the_uninterrupted_run(tmp_path: Path) -> None:
    """Resumed from the checkpoint written at the triggering epoch's end (which holds the rolled-back search) and from
    the one of the epoch before: the same final weights, alphas, batch-norm statistics, eigenvalues and events as the
    uninterrupted run."""
    def run(root: Path, ckpt_path: str | None = None) -> tuple[dict[str, torch.Tensor], DartsAda]:
        rule = ada(keep_snapshots=True)
        save = ModelCheckpoint(dirpath=root / "ckpt", filename="{epoch}-{step}", save_top_k=-1)
        module = fit(root, [CurvatureMonitor(iterations=8), rule, save], max_epochs=5, ckpt_path=ckpt_path,
                     enable_checkpointing=True)
        return {n: t.detach().clone() for n, t in module.state_dict().items() if torch.is_tensor(t)}, rule

    full, full_rule = run(tmp_path / "full")
    expected = json.loads((tmp_path / "full" / "curvature.json").read_text())
    names = sorted(p.name for p in (tmp_path / "full" / "ckpt").glob("*.ckpt"))
    # the checkpoint of the triggering epoch (the 4th) holds the search rolled back to epoch 1
    assert names == ["epoch=0-step=4.ckpt", "epoch=1-step=16.ckpt", "epoch=1-step=8.ckpt", "epoch=2-step=12.ckpt",
                     "epoch=2-step=20.ckpt", "epoch=3-step=24.ckpt", "epoch=4-step=28.ckpt"]
    for checkpoint in ("epoch=1-step=16.ckpt", "epoch=2-step=12.ckpt"):
        root = tmp_path / checkpoint
        shutil.copytree(tmp_path / "full" / "rollback", root / "rollback")  # what a killed run leaves behind
        state, rule = run(root, str(tmp_path / "full" / "ckpt" / checkpoint))
        for name, tensor in full.items():
            assert torch.equal(tensor, state[name]), (checkpoint, name)
        got = json.loads((root / "curvature.json").read_text())
        assert [(r["epoch"], r["max_eig"], r["active"]) for r in got["records"]] == \
            [(r["epoch"], r["max_eig"], r["active"]) for r in expected["records"]], checkpoint
        assert got["events"] == expected["events"]
        assert rule.rollbacks == full_rule.rollbacks


@pytest.mark.slow
@pytest.mark.parametrize("overlay", ["curvature", "darts_es", "darts_ada"])
def test_collapse_overlays_run_on_the_quickstart(tmp_path: Path, overlay: str) -> None:
    root = tmp_path / "runs"
    status = run_cli("fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
                     "--config", str(REPO / "configs" / "collapse" / f"{overlay}.yaml"),
                     "--model.init_args.space.init_args.channels", "4",
                     "--model.init_args.space.init_args.num_cells", "3", "--trainer.max_epochs", "2",
                     "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                     "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root))
    assert status == 0
    run = run_dir(root)
    history = load_curvature(run)
    assert history.epochs.tolist() == [0, 1]  # every epoch, or every second one and the last
    assert (run / "genotype.json").is_file() and not (run / "rollback").exists()


def test_darts_es_writes_the_result_itself_without_genotype_checkpoint(tmp_path: Path) -> None:
    fit(tmp_path, [DartsEarlyStop(**TRIGGER, verbose=False), CurvatureMonitor(iterations=4, verbose=False)],
        max_epochs=6)
    assert genotypes.load(tmp_path / "genotype.json") == genotypes.load(tmp_path / "genotype_darts_es.json")
    assert load_curvature(tmp_path).epochs.tolist() == [0, 1, 2, 3]


class RankState(Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        monitor = next(cb for cb in trainer.callbacks if isinstance(cb, CurvatureMonitor))
        # parameters: the search's batch-norm statistics follow each rank's own shard (the loop calls the space
        # outside DDP's forward, which would broadcast them)
        torch.save({"state": {n: p.detach().clone() for n, p in pl_module.named_parameters()},
                    "wd": trainer.optimizers[0].param_groups[0]["weight_decay"], "records": monitor.records},
                   self.out / f"rank{trainer.global_rank}.pt")


@pytest.mark.slow
@pytest.mark.ddp
def test_darts_ada_under_ddp_rolls_every_rank_back_alike(tmp_path: Path) -> None:
    """Two gloo processes: every rank restores the snapshot rank 0 wrote (each its own generators), raises the weight
    decay, and ends with the same weights, alphas and eigenvalues."""
    module = LitSearch(tiny_space())
    trainer_ = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=5, limit_train_batches=2,
                         limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[CurvatureMonitor(iterations=4, verbose=False), ada(verbose=False),
                                    RankState(tmp_path)])
    trainer_.fit(module, DigitsDataModule(batch_size=16))
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert [r["epoch"] for r in r0["records"]] == [0, 1, 2, 3, 2, 3, 4]
    assert r0["records"] == r1["records"] and r0["wd"] == r1["wd"] == pytest.approx(3e-3)
    for name, tensor in r0["state"].items():
        assert torch.equal(tensor, r1["state"][name]), name
