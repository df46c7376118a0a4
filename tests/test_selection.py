"""Selection by perturbation (DARTS-PT, ``darts_pl.selection``, ``darts-pl-select``).

The decisions are checked against the authors' projection code (ruocwang/darts-pt 4ec3149, ``sota/cnn/projection.py``
on ``DartsNetworkProj``; ``nasbench201/projection.py`` on ``TinyNetworkDartsProj``) run by
``tests/goldens/darts_pt_selection.py`` on the same fixed weights, alphas and batches in float64: for every decision,
the edge (or node) drawn by the random edge order, every candidate's accuracy and loss, and the choice
(``tests/fixtures/darts_pt_selection.json``). The run on a finished search is checked end to end on the quickstart,
and a selection killed between decisions continues to the uninterrupted run's result.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from darts_pl import genotypes
from darts_pl.cli import main as fit_main
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import NB201_PRIMITIVES
from darts_pl.search import CNNSearchSpace, EdgeWeights, GumbelSoftmax, NB201SearchSpace, PartialChannel, SampledOp
from darts_pl.search.projection import EdgeProjection
from darts_pl.selection import PerturbationSelection, Selector, check_space, evaluate, plan
from darts_pl.selection import main as select_main

from .conftest import REPO, run_dir

F64 = torch.float64
GOLDEN = json.loads((REPO / "tests" / "fixtures" / "darts_pt_selection.json").read_text())


def fill(params) -> None:
    """Parameter ``k`` (in order) of ``numel`` n := ``0.5 · sin(0.7 · arange(n) + k)``, as in the reference runs."""
    with torch.no_grad():
        for k, p in enumerate(params):
            p.copy_((torch.sin(torch.arange(p.numel(), dtype=F64) * 0.7 + k) * 0.5).reshape(p.shape))


def alphas(edges: int, ops: int, phase: float) -> torch.Tensor:
    e = torch.arange(edges, dtype=F64)[:, None]
    o = torch.arange(ops, dtype=F64)[None, :]
    return 0.8 * torch.sin(1.3 * e + 0.7 * o + phase)


def batches(num: int = 2, size: int = 16, side: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for b in range(num):
        i = torch.arange(size * 3 * side * side, dtype=F64) + 1000 * b
        x = (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i + b)).reshape(size, 3, side, side)
        y = (torch.arange(size) * 7 + 3 * b) % 10
        out.append((x, y))
    return out


def golden_space(name: str) -> torch.nn.Module:
    if name == "nb201":
        space = NB201SearchSpace(channels=4, num_cells=1, num_nodes=4, channels_last=False).double()
        fill(space.weight_parameters())
        with torch.no_grad():
            space.arch["cell"].copy_(alphas(6, 5, 0.4))
        return space
    args = yaml.safe_load((REPO / "configs" / "spaces" / f"{name}.yaml").read_text())["model"]["init_args"]
    space = CNNSearchSpace(channels=4, num_cells=3, channels_last=False, **args["space"]["init_args"]).double()
    fill(space.weight_parameters())
    with torch.no_grad():
        space.arch["normal"].copy_(alphas(14, space.arch["normal"].shape[1], 0.0))
        space.arch["reduce"].copy_(alphas(14, space.arch["reduce"].shape[1], 0.9))
    return space


def run_selector(space: torch.nn.Module, criterion: str) -> tuple[Selector, list[dict]]:
    selector = Selector(space, criterion, "random", GOLDEN["seed"])
    fixed = batches()
    records = [selector.decide(step, lambda: fixed) for step in plan(selector.rounds(), tune_epochs=0)]
    return selector, records


def evaluations(record: dict) -> list[list[float]]:
    if record["kind"] == "op":
        return [[c["acc"] * 100, c["loss"]] for c in record["candidates"]]
    return [[c["acc"] * 100, c["loss"]] for r in record["rounds"] for c in r["candidates"]]


@pytest.mark.parametrize("run", GOLDEN["runs"], ids=[f"{r['space']}-{r['criterion']}" for r in GOLDEN["runs"]])
def test_decisions_equal_the_authors(run: dict) -> None:
    space = golden_space(run["space"])
    selector, records = run_selector(space, run["criterion"])
    assert len(records) == len(run["decisions"])
    for ours, theirs in zip(records, run["decisions"]):
        assert (ours["kind"], ours["cell"]) == (theirs["kind"], theirs["cell"])
        if ours["kind"] == "op":
            assert ours["edge"] == theirs["edge"]  # the same random edge order
            assert ours["candidates"][theirs["choice"]]["op"] == ours["choice"]
        else:
            assert (ours["node"], sorted(ours["kept"])) == (theirs["node"], sorted(theirs["kept"]))
        torch.testing.assert_close(torch.tensor(evaluations(ours), dtype=F64),
                                   torch.tensor(theirs["evaluations"], dtype=F64), rtol=1e-9, atol=1e-9)
    genotype = selector.genotype()
    if run["space"] == "nb201":
        assert str(genotype) == run["genotype"]
    elif run["space"] == "s1":  # no `none` op: the authors' genotype() reads the same cell
        assert [list(e) for e in genotype.normal] == run["genotype"]["normal"]
        assert [list(e) for e in genotype.reduce] == run["genotype"]["reduce"]
    else:  # the same inputs; where an edge keeps `none`, their genotype() names another op (ours keeps `none`)
        for cell in ("normal", "reduce"):  # and ranks it last within its node (ours: inputs in order)
            ours_cell, theirs_cell = getattr(genotype, cell), [tuple(e) for e in run["genotype"][cell]]
            for node in range(4):
                ours_node, theirs_node = ours_cell[2 * node:2 * node + 2], theirs_cell[2 * node:2 * node + 2]
                assert sorted(j for _, j in ours_node) == sorted(j for _, j in theirs_node)
                assert {e for e in ours_node if e[0] != "none"} <= set(theirs_node)


def test_projection_applies_on_top_of_the_relaxation_and_blocks_decided_rows() -> None:
    space = golden_space("s3")
    projection = EdgeProjection({cell: tuple(space.arch[cell].shape) for cell in space.cell_types})
    projection.fix_op("normal", 3, 2)
    projection.remove_edge("reduce", 5)
    masked = projection.without_op("normal", 4, 1).without_edge("normal", 6)
    with space.projected(masked):
        weights = space.edge_weights()
    probs = torch.softmax(space.arch["normal"], -1)
    expected = probs.clone()
    expected[3] = torch.tensor([0.0, 0.0, 1.0])
    expected[4, 1] = 0.0
    expected[6] = 0.0
    torch.testing.assert_close(weights["normal"].weights, expected)
    assert torch.count_nonzero(weights["reduce"].weights[5]) == 0
    with space.projected(projection):  # the alpha gradient of a decided row is zero
        loss = space(batches(1)[0]).loss
    grad_normal, grad_reduce = torch.autograd.grad(loss, [space.arch["normal"], space.arch["reduce"]])
    assert torch.count_nonzero(grad_normal[3]) == 0 and torch.count_nonzero(grad_reduce[5]) == 0
    assert torch.count_nonzero(grad_normal[4]) > 0
    assert space._projection is None  # left when the block ends
    with space.fixed_edge_weights({c: EdgeWeights(torch.full((14, 3), 0.5, dtype=F64)) for c in space.cell_types}), \
            space.projected(projection):  # a weight-step hook's weights are projected too (SDARTS)
        assert space.edge_weights()["normal"].weights[3].tolist() == [0.0, 0.0, 1.0]


def test_evaluation_leaves_the_supernet_as_it_was() -> None:
    space = golden_space("s3").eval()
    before = {k: v.clone() for k, v in space.state_dict().items() if torch.is_tensor(v)}
    result = evaluate(space, batches())
    assert not space.training and 0.0 <= result.acc <= 1.0 and result.loss > 0
    after = space.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert evaluate(space, batches()) == result


def test_unsupported_spaces_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigurationError, match="sampled"):
        check_space(CNNSearchSpace(channels=4, num_cells=3, relaxation=GumbelSoftmax(), edge=SampledOp()))
    with pytest.raises(ConfigurationError, match="PartialChannel"):
        check_space(CNNSearchSpace(channels=8, num_cells=3, edge=PartialChannel(2)))
    from darts_pl.search import RNNSearchSpace

    with pytest.raises(ConfigurationError, match="RNNSearchSpace"):
        check_space(RNNSearchSpace(num_tokens=10, emb_size=8, hidden_size=8, num_nodes=2))
    for bad, match in (({"tune_epochs": -1}, "tune_epochs"), ({"num_batches": 0}, "num_batches"),
                       ({"lr_factor": 0.0}, "lr_factor"), ({"criterion": "top5"}, "criterion")):
        with pytest.raises(ConfigurationError, match=match):
            PerturbationSelection(**bad)


def test_nb201_keeps_every_edge_and_plans_one_round_per_edge() -> None:
    space = golden_space("nb201")
    selector = Selector(space, "loss", "fixed", 0)
    steps = plan(selector.rounds(), tune_epochs=2)
    assert [s.kind for s in steps] == ["op"] + ["tune", "tune", "op"] * 5
    assert list(NB201_PRIMITIVES) == space.primitives


# ----------------------------------------------------------------------------- on a finished search
SEARCH = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--trainer.enable_model_summary",
          "false", "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells",
          "3", "--data.init_args.batch_size", "16"]
SELECT = ["--tune_epochs", "1", "--tune_batches", "2", "--num_batches", "1"]


@pytest.fixture(scope="session")  # built once per worker, also when other modules run between its tests
def finished_search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny S3 search on the digits, finished: its run directory."""
    root = tmp_path_factory.mktemp("search")
    fit_main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), "--config",
              str(REPO / "configs" / "spaces" / "s3.yaml"), *SEARCH, "--trainer.default_root_dir", str(root)])
    return run_dir(root)


def copy_run(run: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dest))


def select(run: Path, *extra: str) -> int:
    try:
        select_main(["--ckpt_path", str(run / "checkpoints" / "last.ckpt"), *SELECT, *extra])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.mark.slow
def test_select_writes_its_genotype_and_every_decision(finished_search: Path, tmp_path: Path, capsys) -> None:
    run = copy_run(finished_search, tmp_path / "run")
    assert select(run) == 0, capsys.readouterr().err[-3000:]
    genotype = genotypes.load(run / "genotype_pt.json")
    assert len(genotype.normal) == len(genotype.reduce) == 8
    record = json.loads((run / "selection.json").read_text())
    assert record["finished"] and record["genotype"] == genotypes.to_dict(genotype)
    assert record["alpha_genotype"] == genotypes.to_dict(genotypes.load(run / "genotype.json"))
    assert record["settings"]["seed"] == 0  # the run's seed_everything
    ops = [d for d in record["decisions"] if d["kind"] == "op"]
    edges = [d for d in record["decisions"] if d["kind"] == "edge"]
    assert len(ops) == 28 and len(edges) == 6  # 14 op rounds and 3 topology rounds of two cells: 16 gaps
    assert record["steps"] == 34 + 16 and record["tuned_epochs"] == 16
    assert sorted((d["cell"], d["edge"]) for d in ops) == [(c, e) for c in ("normal", "reduce") for e in range(14)]
    for d in ops:
        assert [c["op"] for c in d["candidates"]] == ["none", "skip_connect", "sep_conv_3x3"]
        assert d["choice"] in {"none", "skip_connect", "sep_conv_3x3"}
    for d in edges:  # nodes 1, 2, 3 keep two inputs each, which the genotype lists
        assert len(d["kept"]) == 2 and len(d["rounds"]) == len(d["edges"]) - 2
        gene = getattr(genotype, d["cell"])[2 * d["node"]:2 * d["node"] + 2]
        assert [j for _, j in gene] == d["inputs"]
    assert "keeps" in capsys.readouterr().err
    from darts_pl.networks.cnn import NetworkCIFAR

    NetworkCIFAR(run / "genotype_pt.json", channels=4, num_cells=3, in_channels=1)(torch.randn(2, 1, 8, 8))


@pytest.mark.slow
def test_killed_selection_continues_to_the_uninterrupted_result(finished_search: Path, tmp_path: Path) -> None:
    """A selection killed (SIGKILL) part-way and run again ends with the uninterrupted run's decisions, genotype and
    fine-tuned supernet."""
    a, b = copy_run(finished_search, tmp_path / "a"), copy_run(finished_search, tmp_path / "b")
    command = [sys.executable, "-m", "darts_pl.selection", *SELECT]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, "--ckpt_path", str(a / "checkpoints" / "last.ckpt")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = subprocess.Popen([*command, "--ckpt_path", str(b / "checkpoints" / "last.ckpt")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while killed.poll() is None:
            record = b / "selection.json"
            if record.is_file() and json.loads(record.read_text())["steps_done"] >= 12:
                killed.send_signal(signal.SIGKILL)
                break
    finally:
        killed.wait(timeout=600)
    steps_done = json.loads((b / "selection.json").read_text())["steps_done"]
    assert killed.returncode == -signal.SIGKILL and 12 <= steps_done < 50, "the kill came after the end"
    resumed = subprocess.run([*command, "--ckpt_path", str(b / "checkpoints" / "last.ckpt")], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and "continuing" in resumed.stderr, resumed.stderr[-3000:]
    ra, rb = (json.loads((r / "selection.json").read_text()) for r in (a, b))
    assert ra["decisions"] == rb["decisions"] and ra["genotype"] == rb["genotype"]
    assert (a / "genotype_pt.json").read_text() == (b / "genotype_pt.json").read_text()
    sa, sb = (torch.load(r / "selection" / "state.pt", weights_only=False) for r in (a, b))
    for key, value in sa["space"].items():
        if torch.is_tensor(value):
            assert torch.equal(value, sb["space"][key]), key


@pytest.mark.slow
def test_bad_input_is_one_line(finished_search: Path, tmp_path: Path, capsys) -> None:
    run = copy_run(finished_search, tmp_path / "run")
    assert select(run, "--tune_epochs", "0") == 0
    capsys.readouterr()
    assert select(run, "--tune_epochs", "2") == 2  # another selection's state is there
    assert "remove" in capsys.readouterr().err
    (tmp_path / "empty.ckpt").write_bytes(b"")
    cases = [["--ckpt_path", str(tmp_path / "empty.ckpt")], ["--ckpt_path", str(tmp_path / "missing.ckpt")],
             ["--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--run_dir", str(tmp_path)],
             ["--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--criterion", "top5"]]
    for args in cases:
        with pytest.raises(SystemExit) as exit_:
            select_main(args)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("darts-pl-select: error:")]
        assert exit_.value.code == 2 and len(lines) == 1, err[-2000:]


@pytest.mark.slow
def test_select_on_a_nas_bench_201_search_with_sdarts(tmp_path: Path, capsys) -> None:
    """NAS-Bench-201 cells keep every edge (one op decision per edge); the weight steps of the fine-tuning train at
    SDARTS-RS's perturbed weights, with the decided edges projected on top."""
    fit_main(["fit", "--config", str(REPO / "configs" / "quickstart_nb201.yaml"), "--config",
              str(REPO / "configs" / "variants" / "sdarts_rs.yaml"), "--model.init_args.space.init_args.primitives",
              "[none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]", *SEARCH[:-4],
              "--model.init_args.space.init_args.num_cells", "1", "--trainer.default_root_dir", str(tmp_path)])
    run = run_dir(tmp_path)
    assert select(run, "--criterion", "loss") == 0, capsys.readouterr().err[-3000:]
    genotype = genotypes.load(run / "genotype_pt.json")
    record = json.loads((run / "selection.json").read_text())
    assert isinstance(genotype, genotypes.NB201Genotype) and record["steps"] == 6 + 5
    assert sorted(d["edge"] for d in record["decisions"]) == list(range(6))
    chosen = {d["edge"]: d["choice"] for d in record["decisions"]}
    assert [op for node in genotype.nodes for op, _ in node] == [chosen[e] for e in range(6)]
    for d in record["decisions"]:  # the op whose removal raises the loss most
        assert d["choice"] == max(d["candidates"], key=lambda c: c["loss"])["op"]
