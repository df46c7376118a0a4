"""Multi-process search on CPU (gloo): identical alphas and weights on every rank, sharded data, one
set of files."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from darts_pl.data import DigitsDataModule
from darts_pl.genotypes import load, to_dict
from darts_pl.modules import LitSearch
from darts_pl.search import CNNSearchSpace, GumbelSoftmax, SampledOp
from darts_pl.strategies import FirstOrder, SecondOrder

from .conftest import REPO

pytestmark = pytest.mark.ddp


class RecordRank(Callback):
    """Saves what each rank saw and holds: sample fingerprints of both loaders, final parameters."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: dict[str, set[int]] = {"train": set(), "val": set()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for stream in ("train", "val"):
            for row in batch[stream][0].flatten(1):
                self.seen[stream].add(hash(row.numpy().tobytes()))

    def on_train_end(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        torch.save({"params": {n: p.detach().clone() for n, p in pl_module.space.named_parameters()},
                    "genotype": to_dict(pl_module.space.genotype()), "seen": self.seen,
                    "world_size": trainer.world_size}, self.out / f"rank{rank}.pt")


@pytest.mark.parametrize("strategy", [FirstOrder(), SecondOrder(), "gdas", "pc_darts", "nb201", "reinmax", "snas",
                                      "lambda_darts"],
                         ids=["first", "second", "gdas", "pc_darts", "nb201", "reinmax", "snas", "lambda_darts"])
def test_ddp_ranks_hold_identical_alphas_and_weights(tmp_path: Path, strategy) -> None:
    """Also for GDAS and ReinMax: every rank draws the same sample from the relaxation's generator, so the ranks run
    the same ops, and DDP is told that the ops not sampled have no gradient; SNAS: the same concrete sample, and the
    resource constraint's costs read on every rank. PC-DARTS: the edge-normalisation tensors are architecture tensors
    like the alphas; NAS-Bench-201: one alpha shared by every cell. Λ-DARTS: the per-cell gradients and the finite
    difference of the weight step averaged over the ranks (5 cells: 3 normal cells to align)."""
    from darts_pl.parts import CellGradientAlignment, Concrete, ReinMax, ResourceConstraint
    from darts_pl.search import NB201SearchSpace, PartialChannel

    parts, loop, cells = {}, {}, 3
    if strategy == "gdas":
        parts, strategy = {"relaxation": GumbelSoftmax(seed=1), "edge": SampledOp()}, FirstOrder()
    elif strategy == "reinmax":
        parts, strategy = {"relaxation": ReinMax(tau=2.0, seed=1), "edge": SampledOp()}, FirstOrder()
    elif strategy == "snas":
        parts, strategy = {"relaxation": Concrete(tau=0.5, seed=1)}, FirstOrder()
        loop = {"regularizers": [ResourceConstraint(weight=1e-3, image_size=8)]}
    elif strategy == "lambda_darts":
        loop, strategy, cells = {"weight_terms": [CellGradientAlignment(weight=0.5)]}, FirstOrder(), 5
    elif strategy == "pc_darts":
        parts, strategy = {"edge": PartialChannel(k=2), "edge_normalization": True}, FirstOrder()
    if strategy == "nb201":
        space = NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1)
        strategy = FirstOrder()
    else:
        space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=cells, **parts)
    module = LitSearch(space, strategy, **loop)
    ddp = "ddp_spawn_find_unused_parameters_true" if module.space.unused_parameters else "ddp_spawn"
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=ddp, max_epochs=1, limit_train_batches=3,
                        limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[RecordRank(tmp_path)], default_root_dir=tmp_path)
    trainer.fit(module, DigitsDataModule(batch_size=16))
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["world_size"] == 2
    for name, tensor in r0["params"].items():
        assert torch.equal(tensor, r1["params"][name]), name
    assert r0["genotype"] == r1["genotype"]
    for stream in ("train", "val"):
        assert len(r0["seen"][stream]) == len(r1["seen"][stream]) == 48
        assert not r0["seen"][stream] & r1["seen"][stream], stream  # different shards
    assert not r0["seen"]["train"] & r0["seen"]["val"]  # the two halves stay apart


def test_cli_ddp_two_processes_writes_one_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "darts_pl.cli", "fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
           "--config", str(REPO / "configs" / "ddp.yaml"), "--trainer.devices", "2", "--trainer.accelerator", "cpu",
           "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
           "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root),
           "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(root.glob("*/version_*"))
    assert [r.name for r in runs] == ["version_0"]
    run = runs[0]
    assert load(run / "genotype.json")
    assert sorted(p.name for p in (run / "genotypes").glob("*.json")) == ["epoch_000.json", "epoch_001.json"]
    assert not list(run.rglob("*.tmp"))
    assert (run / "config.yaml").is_file()
    assert proc.stderr.count("Final genotype written") + proc.stdout.count("Final genotype written") == 1


class DrawPerEpoch(Callback):
    """Seeds each rank's global generator differently, then records one draw from it per epoch."""

    def __init__(self, out: Path, tag: str) -> None:
        self.out, self.tag = out, tag
        self.draws: dict[int, float] = {}

    def setup(self, trainer, pl_module, stage) -> None:
        torch.manual_seed(1000 + trainer.global_rank)  # a resumed run's restore comes after this

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # after the epoch's loader iterator drew its seed (a resumed run creates it before on_train_epoch_start)
        if batch_idx == 0:
            self.draws[trainer.current_epoch] = torch.rand(1).item()

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(self.draws, self.out / f"{self.tag}_rank{trainer.global_rank}.pt")


def test_resume_gives_every_rank_its_own_generators(tmp_path: Path) -> None:
    """An uninterrupted 2-epoch run against one resumed from its epoch-0 checkpoint: each rank draws in
    epoch 1 what it drew in the uninterrupted run (rank 1 does not get rank 0's generators)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(tag: str, ckpt_path: Path | None = None) -> None:
        space = CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3)
        trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2, limit_train_batches=1,
                            limit_val_batches=0, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[DrawPerEpoch(tmp_path, tag),
                                       ModelCheckpoint(dirpath=tmp_path / tag, filename="{epoch}", save_top_k=-1)],
                            default_root_dir=tmp_path)
        trainer.fit(LitSearch(space), DigitsDataModule(batch_size=16), ckpt_path=ckpt_path)

    fit("full")
    checkpoint = tmp_path / "full" / "epoch=0.ckpt"
    saved = torch.load(checkpoint, weights_only=True)["rng_states"]
    assert len(saved) == 2 and not torch.equal(saved[0]["torch"], saved[1]["torch"])
    fit("resumed", checkpoint)
    full = [torch.load(tmp_path / f"full_rank{r}.pt") for r in range(2)]
    resumed = [torch.load(tmp_path / f"resumed_rank{r}.pt") for r in range(2)]
    assert full[0][1] != full[1][1]  # the ranks' generators differ
    for rank in range(2):
        assert resumed[rank] == {1: full[rank][1]}, rank


def test_resume_on_another_number_of_processes_says_what_it_does() -> None:
    """Two ranks' generators resumed in one process: rank 0's come back, with a one-line warning; an older
    checkpoint's single set comes back silently."""
    import warnings

    from darts_pl.modules.resumable import ResumableRNG, collect_rng_states

    torch.manual_seed(1)
    rank0 = collect_rng_states()
    torch.manual_seed(2)
    rank1 = collect_rng_states()
    with pytest.warns(UserWarning, match=r"generators of 2 process\(es\) and this run has 1: rank 0 gets its own "
                                         r"back; random draws differ"):
        ResumableRNG().on_load_checkpoint({"rng_states": [rank0, rank1]})
    assert torch.equal(torch.get_rng_state(), rank0["torch"])
    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ResumableRNG().on_load_checkpoint({"rng_states": rank1})
    assert torch.equal(torch.get_rng_state(), rank1["torch"])


NAN_ON_ONE_RANK = r"""
import sys
import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from darts_pl.data import DigitsDataModule
from darts_pl.modules import LitSearch
from darts_pl.search import CNNSearchSpace

class NaNOnRankOne(Callback):
    # The classifier of rank 1 alone returns NaN on its third forward (batch 1's alpha step).
    def on_train_start(self, trainer, pl_module):
        calls = []
        def hook(module, args, output):
            calls.append(1)
            return output * float("nan") if trainer.global_rank == 1 and len(calls) == 3 else output
        pl_module.space.classifier.register_forward_hook(hook)

    def on_train_end(self, trainer, pl_module):
        print(f"rank {trainer.global_rank} skipped {pl_module.skipped_batches}", flush=True)

if __name__ == "__main__":
    mode = sys.argv[1]
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=4,
                        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[NaNOnRankOne()], default_root_dir=sys.argv[2])
    module = LitSearch(CNNSearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=3), nonfinite=mode)
    try:
        trainer.fit(module, DigitsDataModule(batch_size=16))
    except Exception as err:
        print("RAISED", type(err).__name__, str(err).strip().splitlines()[-1][:600])
    else:
        print("FINISHED", flush=True)
"""


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_a_nonfinite_value_on_one_rank_stops_or_skips_on_every_rank(tmp_path: Path, mode: str) -> None:
    """The verdict of each phase is all-reduced: a NaN on rank 1 alone makes both ranks stop (or both skip the
    batch) at the same point, instead of one rank raising while the other waits in a collective forever."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    script = tmp_path / "nan_on_one_rank.py"
    script.write_text(NAN_ON_ONE_RANK)
    done = subprocess.run([sys.executable, str(script), mode, str(tmp_path)], capture_output=True,
                          text=True, timeout=180, env=env, cwd=REPO)
    out = done.stdout.strip().splitlines()
    if mode == "stop":
        assert out and out[-1].startswith("RAISED") and "non-finite" in out[-1], done.stdout + done.stderr[-3000:]
        assert "in the alpha step" in out[-1]
    else:
        assert done.stdout.rstrip().endswith("FINISHED"), done.stdout + done.stderr[-3000:]
        # Two processes share the pipe: their lines may interleave, so read the reports, not the lines.
        assert sorted(re.findall(r"rank \d skipped \d+", done.stdout)) == ["rank 0 skipped 1", "rank 1 skipped 1"], \
            done.stdout
