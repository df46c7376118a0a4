"""The curvature of the alpha-val loss: the Hessian operator against an explicit Hessian (float64) and against the
authors' ``Analyzer`` (RobustDARTS), the eigen solvers, what an evaluation leaves untouched, the monitor in a fit, its
resume, DDP, and the one-line refusals."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from darts_pl.callbacks import CurvatureMonitor, DartsEarlyStop, GenotypeCheckpoint
from darts_pl.curvature import (
    ArchHessian,
    early_stop_check,
    hessian_eigen,
    lanczos,
    load_curvature,
    plot_curvature,
    power_iteration,
)
from darts_pl.data import DigitsDataModule
from darts_pl.errors import ConfigurationError
from darts_pl.modules import LitSearch
from darts_pl.parts import Dirichlet, GumbelSoftmax, Relaxation
from darts_pl.search import CNNSearchSpace, SampledOp
from darts_pl.search.base import LossOutput, SearchSpace, Stream

from .conftest import REPO, tiny_space, trainer

F64 = torch.float64


class SmoothCells(SearchSpace):
    """Two cell types of mixing weights in a network smooth in everything (softplus, tanh, linear): the Hessian in the
    architecture is exact and dense. The relaxation may draw noise (Dirichlet)."""

    has_edges = False

    def __init__(self, relaxation: Relaxation | None = None) -> None:
        super().__init__(relaxation=relaxation)
        self.inp = nn.Linear(6, 5)
        self.ops = nn.ModuleList(nn.Linear(5, 5) for _ in range(3))
        self.norm = nn.BatchNorm1d(5, affine=False)
        self.out = nn.Linear(5, 3)
        self.add_cells({"normal": nn.Parameter(0.3 * torch.randn(2, 3)),
                        "reduce": nn.Parameter(0.3 * torch.randn(1, 3))})

    @property
    def primitives(self) -> list[str]:
        return ["softplus", "tanh", "linear"]

    def forward(self, batch: Any, stream: Stream = "train", regularized: bool = False) -> LossOutput:
        x, y = batch
        h = self.norm(F.softplus(self.inp(x)))
        weights = self.edge_weights()
        for row in torch.cat([weights["normal"].weights, weights["reduce"].weights]):
            h = row[0] * F.softplus(self.ops[0](h)) + row[1] * torch.tanh(self.ops[1](h)) + row[2] * self.ops[2](h)
        logits = self.out(h)
        return LossOutput(F.cross_entropy(logits, y), logits.detach(), y)

    def genotype(self) -> Any:
        return None


def smooth_batches(num: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(16, 6, generator=g, dtype=F64), torch.randint(0, 3, (16,), generator=g)) for _ in range(num)]


def explicit_hessian(space: SearchSpace, batches: list, weight_decay: float = 0.0) -> torch.Tensor:
    """``torch.autograd.functional.hessian`` of the mean loss over ``batches`` in the flat architecture vector."""
    names = [name for name, _ in space.named_arch_parameters()]
    shapes = [p.shape for p in space.arch_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in space.arch_parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        tensors = dict(zip(names, (t.reshape(s) for t, s in zip(flat.split([s.numel() for s in shapes]), shapes))))
        buffers = {n: b.clone() for n, b in space.named_buffers()}  # BN updates its own copies
        total = sum(torch.func.functional_call(space, {**tensors, **buffers}, (b, "val")).loss for b in batches)
        return total / len(batches) + 0.5 * weight_decay * (flat**2).sum()

    return torch.autograd.functional.hessian(loss, flat0)


def test_operator_equals_the_explicit_hessian_and_the_solvers_find_its_top_eigenvalue() -> None:
    """Every cell type's tensors together, the mean over two batches, the L2 term: the dense operator equals
    autograd's Hessian to rounding, Lanczos and power iteration find eigvalsh's largest eigenvalue."""
    torch.manual_seed(0)
    space = SmoothCells().double()
    batches = smooth_batches()
    expected = explicit_hessian(space, batches, weight_decay=1e-3)
    values = torch.linalg.eigvalsh(expected)
    hessian = ArchHessian(space, batches, weight_decay=1e-3)
    with hessian.session():
        dense = hessian.dense()
    assert dense.shape == (9, 9)
    assert torch.allclose(dense, expected, rtol=1e-10, atol=1e-13)
    top = float(values[-1])
    for method, tol in (("lanczos", 1e-12), ("power", 1e-12)):
        found = hessian_eigen(space, batches, method=method, tol=tol, iterations=200, weight_decay=1e-3)
        assert found.converged and abs(found.max_eig - top) <= 1e-7 * abs(top), method
    spectrum = hessian_eigen(space, batches, spectrum=True, weight_decay=1e-3)
    assert torch.allclose(torch.tensor(spectrum.spectrum, dtype=F64), values, rtol=1e-9, atol=1e-12)
    assert abs(values[0]) > 1e-3 * abs(top)  # an indefinite Hessian: the comparison is not of a trivial matrix


def test_solvers_find_the_largest_eigenvalue_when_a_negative_one_dominates() -> None:
    """Power iteration finds the eigenvalue of largest magnitude (-5 here); its shifted second run finds the largest;
    Lanczos gets it directly."""
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(1), dtype=F64))
    matrix = q @ torch.diag(torch.tensor([-5.0, -1.0, 0.0, 0.5, 1.0, 2.0], dtype=F64)) @ q.T
    for solve in (lanczos, power_iteration):
        found = solve(lambda v: matrix @ v, 6, iterations=500, tol=1e-13)
        assert found.converged and abs(found.max_eig - 2.0) < 1e-8, solve.__name__


def golden_space(name: str) -> CNNSearchSpace:
    from .test_selection import alphas, fill

    args = yaml.safe_load((REPO / "configs" / "spaces" / f"{name}.yaml").read_text())["model"]["init_args"]
    space = CNNSearchSpace(channels=4, num_cells=3, channels_last=False, **args["space"]["init_args"]).double()
    fill(space.weight_parameters())
    with torch.no_grad():
        space.arch["normal"].copy_(alphas(14, space.arch["normal"].shape[1], 0.0))
        space.arch["reduce"].copy_(alphas(14, space.arch["reduce"].shape[1], 0.9))
    return space


# tests/goldens/robust_darts_curvature.py: Analyzer.compute_Hw on RobustDARTS's Network (float64, train mode, arch
# weight decay 1e-3) with the weights, alphas and batches of golden_space / test_selection.batches.
ANALYZER = {
    "s3": {"tensors": 212, "numel": 21110, "max": 4.43201355799227, "min": -5.81348016165988,
           "trace": -5.22281922394457, "frobenius": 10.7361022162,
           "row0": [-0.189178522084081, 0.136955765664503, 0.0532227564195777, 0.112951176412385, -0.167951808359131,
                    0.0550006319467463, 0.032013469481465, 0.0719861944343857],
           "diag": [-0.027848730039311, -0.00878469226044384, -0.0145877263618716, 0.00302941088517702,
                    0.00993198560818562, -0.0156091622521446, 0.0390810047462745, 0.00102232245942589],
           "mean_max": 4.21724655237625, "mean_trace": 1.73690943237038},
    "s1": {"tensors": 84, "numel": 10022, "max": 1.38498143656835, "min": -2.59430856936424,
           "trace": -3.83162131942094, "frobenius": 4.27571817392225,
           "row0": [-0.245527863387856, 0.246527863387856, -0.343434940266781, 0.343434940266781, 0.0860550871171858,
                    -0.0860550871171858, -0.0666193205665008, 0.0666193205665008],
           "diag": [-0.000974531508187944, -0.00097453150818788, -0.0374324540139787, -0.0374324540139786,
                    -0.03987577646281, -0.03987577646281, 0.0306979308108976, 0.0306979308108976],
           "mean_max": 1.98368913722606, "mean_trace": -1.16310938933485},
}


@pytest.mark.parametrize("name", ["s3", "s1"])
def test_hessian_equals_the_authors_analyzer(name: str) -> None:
    """The explicit Hessian of one batch (rows, diagonal, trace, norm, extreme eigenvalues) and the largest eigenvalue
    of the mean over two batches, against RobustDARTS's Analyzer on the same supernet (S3, S1), weights and alphas."""
    from .test_selection import batches

    golden = ANALYZER[name]
    space = golden_space(name)
    weights = space.weight_parameters()
    assert (len(weights), sum(w.numel() for w in weights)) == (golden["tensors"], golden["numel"])
    data = batches()
    hessian = ArchHessian(space, data[:1], weight_decay=1e-3)
    with hessian.session():
        dense = hessian.dense()
    values = torch.linalg.eigvalsh(dense)
    for got, want in ((float(values[-1]), golden["max"]), (float(values[0]), golden["min"]),
                      (float(dense.trace()), golden["trace"]), (float(dense.norm()), golden["frobenius"])):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert dense[0, :8].tolist() == pytest.approx(golden["row0"], rel=1e-9, abs=1e-12)
    assert dense.diagonal()[-8:].tolist() == pytest.approx(golden["diag"], rel=1e-9, abs=1e-12)
    top = hessian_eigen(space, data, tol=1e-10, iterations=space.arch["normal"].numel() * 2, weight_decay=1e-3)
    assert top.max_eig == pytest.approx(golden["mean_max"], rel=1e-8)


def test_evaluation_leaves_batchnorm_weights_and_generators_as_they_were() -> None:
    """Train mode (batch statistics) on the real supernet: running statistics, weights, the module's modes, the global
    generator and a stochastic part's generator are bit-identical afterwards."""
    space = tiny_space(relaxation=GumbelSoftmax(seed=3), edge=SampledOp())
    space.train()
    space.cells[0].edges[0].eval()  # a module in its own mode keeps it
    batch = (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    before = {name: t.detach().clone() for name, t in space.state_dict().items() if torch.is_tensor(t)}
    modes = [m.training for m in space.modules()]
    rng = torch.get_rng_state()
    noise = space.relaxation.noise.generator.get_state()
    first = hessian_eigen(space, [batch], samples=2, iterations=5)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(space.relaxation.noise.generator.get_state(), noise)
    assert [m.training for m in space.modules()] == modes
    after = {name: t for name, t in space.state_dict().items() if torch.is_tensor(t)}
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert any("running_mean" in name for name in before)
    # the same draws every time: the value is a function of the architecture
    assert hessian_eigen(space, [batch], samples=2, iterations=5).max_eig == first.max_eig


def test_samples_average_the_hessians_of_fixed_draws_exactly() -> None:
    """With samples=N the operator is the mean of the Hessians of N fixed draws (draw i seeded seed + i), each the
    exact Hessian of a deterministic function of the architecture."""
    torch.manual_seed(0)
    space = SmoothCells(relaxation=Dirichlet(seed=5)).double()
    assert space.stochastic
    batches = smooth_batches(1)

    def dense(samples: int, seed: int) -> torch.Tensor:
        hessian = ArchHessian(space, batches, samples=samples, seed=seed)
        with hessian.session():
            return hessian.dense()

    averaged = dense(3, seed=10)
    single = [dense(1, seed=10 + i) for i in range(3)]
    assert torch.allclose(averaged, sum(single) / 3, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(single[0], single[1], rtol=1e-3)  # the draws differ: the average is not one draw
    assert torch.equal(dense(3, seed=10), averaged)


def test_monitor_arguments_and_refusals_are_one_line(tmp_path: Path) -> None:
    for kwargs, text in (({"every_n_epochs": 0}, "every_n_epochs=0"), ({"method": "cg"}, "method='cg'"),
                         ({"samples": 0}, "samples=0"), ({"mode": "test"}, "mode='test'"), ({"tol": 0}, "tol=0")):
        with pytest.raises(ConfigurationError, match=text):
            CurvatureMonitor(**kwargs)
    data = DigitsDataModule(batch_size=16)
    gdas = LitSearch(tiny_space(relaxation=GumbelSoftmax(), edge=SampledOp()))
    with pytest.raises(ConfigurationError, match=r"draws noise in every forward \(relaxation GumbelSoftmax.*samples=N"):
        trainer(tmp_path, callbacks=[CurvatureMonitor()]).fit(gdas, data)
    with pytest.raises(ConfigurationError, match=r"224 entries .*max_spectrum_size=100"):
        trainer(tmp_path, callbacks=[CurvatureMonitor(spectrum=True, max_spectrum_size=100)]).fit(
            LitSearch(tiny_space()), data)
    with pytest.raises(ConfigurationError, match=r"DartsEarlyStop decides on the eigenvalues of .*CurvatureMonitor"):
        trainer(tmp_path, callbacks=[DartsEarlyStop()]).fit(LitSearch(tiny_space()), data)


class Final(Callback):
    """Keeps the final parameters and the values logged."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.params = {n: p.detach().clone() for n, p in pl_module.space.state_dict().items() if torch.is_tensor(p)}


def fit(root: Path, callbacks: list[Callback], max_epochs: int = 4, ckpt_path: str | None = None,
        **kwargs: Any) -> L.Trainer:
    torch.manual_seed(0)
    module = LitSearch(tiny_space())
    trainer_ = trainer(root, max_epochs=max_epochs, callbacks=callbacks, deterministic=True, **kwargs)
    trainer_.fit(module, DigitsDataModule(batch_size=16), ckpt_path=ckpt_path)
    return trainer_


def test_monitor_in_a_fit_logs_writes_and_changes_nothing(tmp_path: Path) -> None:
    """Every second epoch and the last: logged to the CSV logger at the epoch's step, written to curvature.json, the
    batch fixed; the search ends exactly where the same search without the monitor ends."""
    from lightning.pytorch.loggers import CSVLogger

    plain, watched = Final(), Final()
    fit(tmp_path / "plain", [plain])
    monitor = CurvatureMonitor(every_n_epochs=2, iterations=12)
    logger = CSVLogger(tmp_path / "logs", name="run")
    fit(tmp_path / "watched", [monitor, watched, GenotypeCheckpoint(diagrams=False, verbose=False)], logger=logger)
    for name, tensor in plain.params.items():
        assert torch.equal(tensor, watched.params[name]), name
    history = load_curvature(logger.log_dir)
    assert history.epochs.tolist() == [0, 2, 3]
    assert history.steps.tolist() == [1, 5, 7]  # the step of the epoch's last iteration (2 iterations an epoch)
    assert history.active.all() and (history.branches == 0).all()
    assert history.settings["batch_sizes"] == [16] and history.settings["weight_decay"] == [1e-3, 1e-3]
    rows = [line.split(",") for line in (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()]
    column = rows[0].index("arch/hessian_max_eig")
    logged = {int(r[rows[0].index("step")]): float(r[column]) for r in rows[1:] if r[column]}
    assert logged == pytest.approx(dict(zip(history.steps.tolist(), history.values.tolist())))
    assert len(monitor.batches) == 1 and torch.is_tensor(monitor.batches[0][0])
    plot_curvature(history)


@pytest.mark.slow
def test_resumed_run_logs_the_same_eigenvalues(tmp_path: Path) -> None:
    """A run stopped after epoch 1 and resumed from its checkpoint logs the uninterrupted run's eigenvalues (the fixed
    batch comes back from the checkpoint)."""
    save = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)
    full = CurvatureMonitor(iterations=12, dirpath=str(tmp_path / "full"))
    fit(tmp_path / "a", [full, save], max_epochs=4, enable_checkpointing=True)
    resumed = CurvatureMonitor(iterations=12, dirpath=str(tmp_path / "resumed"))
    fit(tmp_path / "b", [resumed], max_epochs=4, ckpt_path=str(tmp_path / "ckpt" / "epoch=1.ckpt"))
    a, b = (json.loads((tmp_path / d / "curvature.json").read_text())["records"] for d in ("full", "resumed"))
    keys = ("epoch", "step", "max_eig", "iterations")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    assert len(a) == 4


class RankRecord(Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        monitor = next(cb for cb in trainer.callbacks if isinstance(cb, CurvatureMonitor))
        torch.save({"records": monitor.records, "batches": monitor.state_dict()["batches"],
                    "space": {n: p.detach().clone() for n, p in pl_module.space.state_dict().items()
                              if torch.is_tensor(p)}},
                   self.out / f"rank{trainer.global_rank}.pt")


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_ranks_log_the_eigenvalue_of_the_global_batch(tmp_path: Path) -> None:
    """Two gloo processes, each with its own fixed batch: both ranks hold the same eigenvalue, and it is the one a
    single process computes for the mean over both ranks' batches."""
    module = LitSearch(tiny_space())
    trainer_ = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=2,
                         limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[CurvatureMonitor(iterations=40, tol=1e-8), RankRecord(tmp_path)])
    trainer_.fit(module, DigitsDataModule(batch_size=16))
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["records"][0]["max_eig"] == r1["records"][0]["max_eig"]
    assert not torch.equal(r0["batches"][0][0], r1["batches"][0][0])  # each rank its own shard
    space = tiny_space()
    space.load_state_dict({**space.state_dict(), **r0["space"]})
    expected = hessian_eigen(space, r0["batches"] + r1["batches"], iterations=40, tol=1e-8, weight_decay=1e-3)
    assert math.isclose(r0["records"][0]["max_eig"], expected.max_eig, rel_tol=1e-4)


def test_early_stop_check_names_the_centre_of_the_earlier_window() -> None:
    """The authors' settings: an eigenvalue every 2 epochs, window 5, delta 4 -- the first check at epoch 22 names
    epoch 10, and a stop at epoch e names e - 12."""
    epochs = list(range(0, 24, 2))
    flat = [1.0] * len(epochs)
    assert early_stop_check(epochs[:-1], flat[:-1]) is None  # epoch 20 would name 8 < es_start_epoch
    decision = early_stop_check(epochs, flat)
    assert (decision.epoch, decision.named_epoch, decision.stop) == (22, 10, False)
    rising = [*flat[:-1], 9.0]
    decision = early_stop_check(epochs, rising)
    assert decision.stop and decision.ratio == pytest.approx((4 + 9) / 5)


def test_recurrent_space_fixes_its_dropout_masks_per_draw() -> None:
    """The recurrent space draws dropout masks from torch's global generator in training mode: each evaluation seeds
    them, so the value is a function of the architecture (another seed, another mask); evaluation mode has no dropout.
    The carried hidden states and the global generator are untouched."""
    from darts_pl.search import RNNSearchSpace

    space = RNNSearchSpace(num_tokens=20, emb_size=8, hidden_size=8, num_nodes=3)
    batch = {"input": torch.randint(0, 20, (5, 4)), "target": torch.randint(0, 20, (5, 4))}
    space.train()
    space(batch, "val")
    space.commit("val")
    carried = space._committed["val"].clone()
    rng = torch.get_rng_state()
    first = hessian_eigen(space, [batch], tol=1e-10, iterations=60)
    assert hessian_eigen(space, [batch], tol=1e-10, iterations=60).max_eig == first.max_eig
    assert hessian_eigen(space, [batch], tol=1e-10, iterations=60, seed=1).max_eig != first.max_eig
    evaluated = hessian_eigen(space, [batch], tol=1e-10, iterations=60, mode="eval", seed=1)
    other = hessian_eigen(space, [batch], tol=1e-10, iterations=60, mode="eval", seed=2)  # another start vector
    assert evaluated.max_eig == pytest.approx(other.max_eig, rel=1e-5)
    assert torch.equal(torch.get_rng_state(), rng)
    assert "val" not in space._committed or torch.equal(space._committed["val"], carried)


def test_cost_benchmark_runs_and_counts_products(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import bench_curvature

    bench_curvature.main(["--space", "s3", "--batch", "4", "--cells", "3", "--channels", "4", "--image-size", "8",
                          "--iters", "1", "--warmup", "0", "--methods", "lanczos", "--num-batches", "1",
                          "--max-products", "5", "--spectrum", "--json", str(tmp_path / "cost.json")])
    rows = {r["case"]: r for r in json.loads((tmp_path / "cost.json").read_text())["rows"]}
    assert rows["iteration"]["x_iteration"] == 1.0
    assert 1 <= rows["lanczos/1 batches"]["products"] <= 5
    assert rows["spectrum/1 batches"]["products"] == rows["spectrum/1 batches"]["arch_entries"] == 84
    assert "x iteration" in capsys.readouterr().out
