"""P-DARTS: per-edge op sets in the CNN space, pruning between stages, the final cell with at most M skip
connections, the skip-connection dropout and its schedule, and the stage driver end to end on the quickstart.

Expected values come from the authors' code (chenxin061/pdarts, ``train_search.py``), run on the fixed inputs built
here (float32 softmax, CPU): ``get_min_k`` as ``main()`` applies it after stages 1 and 2 (pruning); the last
stage's ``get_min_k_no_zero`` drop, edge ranking and the ``delete_min_sk_prob`` / ``keep_1_on`` /
``keep_2_branches`` / ``check_sk_number`` loop, read with ``parse_network`` (the final normal cell for every M);
and the dropout rate ``main()`` sets per epoch (``dropout_rate · (epochs - epoch - 1) / epochs`` before
``eps_no_arch``, ``dropout_rate · exp(-(epoch - eps_no_arch) · scale_factor)`` after).
The script that prints them: tests/goldens/pdarts.py.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from darts_pl import progressive
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import PRIMITIVES, load
from darts_pl.modules import LitSearch
from darts_pl.progressive import prune_edge_primitives
from darts_pl.schedules import ExponentialSchedule
from darts_pl.search import CNNSearchSpace, MaxSkips, MixedOp, SkipDropout

from . import conftest
from .conftest import REPO
from .conftest import run_dir as the_run_dir

P = list(PRIMITIVES)


def per_node(gene: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """The two (op, input) pairs of each node, in input order (the authors list a node's edges by input)."""
    return [sorted(gene[i:i + 2], key=lambda t: (t[1], t[0])) for i in range(0, len(gene), 2)]


def tiny_space(**kwargs: object) -> CNNSearchSpace:
    return conftest.tiny_space(num_classes=3, **kwargs)


# ----------------------------------------------------------------------------------- per-edge op sets
ROWS3 = [["none", "skip_connect", "sep_conv_3x3"], ["max_pool_3x3", "skip_connect", "dil_conv_3x3"],
         ["skip_connect", "sep_conv_5x5", "dil_conv_5x5"]]


def test_edge_primitives_shape_the_alphas_and_build_only_the_listed_ops() -> None:
    normal = [ROWS3[e % 3] for e in range(14)]
    space = tiny_space(edge_primitives={"normal": normal})
    assert space.arch["normal"].shape == (14, 3)
    assert space.arch["reduce"].shape == (14, 8)  # left out: every op
    assert space.edge_primitives["normal"] == normal and space.edge_primitives["reduce"] == [P] * 14
    cell = next(c for c in space.cells if not c.reduction)
    for e, mixed in enumerate(cell.edges):
        row = normal[e]
        assert mixed.columns == [j for j, name in enumerate(row) if name != "none"]  # none is never built
        kinds = {type(op[0] if isinstance(op, nn.Sequential) else op).__name__ for op in mixed.ops}
        assert len(mixed.ops) == len([n for n in row if n != "none"])
        assert ("SepConv" in kinds) == ("sep_conv_3x3" in row or "sep_conv_5x5" in row)
        assert ("MaxPool" in kinds) == ("max_pool_3x3" in row)
    # every listed op's alpha gets a gradient through the forward; edge_probs has a column per primitive
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    space((x, y)).loss.backward()
    assert space.arch["normal"].grad is not None and (space.arch["normal"].grad != 0).all()
    probs = space.edge_probs()["normal"]
    assert probs.shape == (14, 8)
    torch.testing.assert_close(probs.sum(-1), torch.ones(14))
    for e, row in enumerate(normal):
        absent = [j for j, name in enumerate(P) if name not in row]
        assert (probs[e, absent] == 0).all()
        torch.testing.assert_close(probs[e, [P.index(n) for n in row]], torch.softmax(space.arch["normal"][e], -1))


def test_genotype_names_only_the_ops_of_each_edge() -> None:
    normal = [ROWS3[e % 3] for e in range(14)]
    reduce = [["avg_pool_3x3", "dil_conv_3x3"] for _ in range(14)]
    space = tiny_space(edge_primitives={"normal": normal, "reduce": reduce})
    with torch.no_grad():
        space.arch["normal"].copy_(torch.randn(14, 3))
        space.arch["reduce"].copy_(torch.randn(14, 2))
    genotype = space.genotype()
    starts = [0, 2, 5, 9]
    for cell, rows in (("normal", normal), ("reduce", reduce)):
        for pos, (op, j) in enumerate(getattr(genotype, cell)):
            assert op in rows[starts[pos // 2] + j] and op != "none", (cell, pos, op)


@pytest.mark.parametrize(("edge_primitives", "message"), [
    ({"normal": [["sep_conv_9x9", "skip_connect"]] * 14}, "unknown op 'sep_conv_9x9'"),
    ({"normal": [["skip_connect", "sep_conv_3x3"]] * 13}, "has 13 rows; a cell of 4 nodes has 14 edges"),
    ({"normal": [["skip_connect"]] * 13 + [[]]}, r"edge_primitives\['normal'\]\[13\] is \[\]"),
    ({"normal": [["skip_connect", "sep_conv_3x3"]] * 13 + [["skip_connect"]]}, "has 1 ops, edge 0 has 2"),
    ({"normal": [["skip_connect", "skip_connect"]] * 14}, "names an op twice"),
    ({"normal": [["none"]] * 14}, r"no op besides 'none'"),
    ({"middle": [["skip_connect"]] * 14}, r"cell types \['middle'\]"),
])
def test_bad_edge_primitives_name_the_setting_and_the_fix(edge_primitives: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        tiny_space(edge_primitives=edge_primitives)
    assert "edge_primitives" in str(info.value)


# ----------------------------------------------------------------------------------- pruning between stages
def alpha1(e: int, j: int) -> float:  # stage 1 (8 ops); edge 5 has ties
    return (0.5 if j == 1 else 0.0) if e == 5 else ((7 * e + 3 * j) % 11) / 10.0


def alpha2(e: int, j: int) -> float:  # stage 2 (5 ops); edge 9 has ties
    return (0.25 if j == 4 else 0.0) if e == 9 else ((5 * e + 2 * j) % 7) / 5.0


# The authors' switches after stage 1 (get_min_k, 3 dropped) and stage 2 (2 dropped) on these alphas: ops kept.
AUTHORS_STAGE1 = [[2, 3, 5, 6, 7], [0, 1, 3, 4, 7], [1, 2, 4, 5, 6], [0, 2, 3, 6, 7], [0, 1, 4, 5, 7], [1, 4, 5, 6, 7],
                  [0, 3, 4, 6, 7], [0, 1, 4, 5, 7], [1, 2, 3, 5, 6], [0, 3, 4, 6, 7], [0, 1, 2, 4, 5], [2, 3, 5, 6, 7],
                  [0, 1, 3, 4, 7], [1, 2, 4, 5, 6]]
AUTHORS_STAGE2 = [[3, 5, 6], [0, 4, 7], [1, 2, 6], [2, 3, 7], [0, 4, 5], [1, 4, 7], [3, 4, 7], [1, 4, 5], [1, 5, 6],
                  [4, 6, 7], [1, 2, 5], [2, 5, 6], [0, 1, 7], [2, 4, 6]]


def test_pruning_keeps_the_ops_the_authors_keep() -> None:
    space = tiny_space()
    with torch.no_grad():
        space.arch["normal"].copy_(torch.tensor([[alpha1(e, j) for j in range(8)] for e in range(14)]))
    rows1 = prune_edge_primitives(space.edge_probs()["normal"].tolist(), [P] * 14, P, keep=5)
    assert rows1 == [[P[j] for j in kept] for kept in AUTHORS_STAGE1]

    space = tiny_space(edge_primitives={"normal": rows1})
    with torch.no_grad():
        space.arch["normal"].copy_(torch.tensor([[alpha2(e, j) for j in range(5)] for e in range(14)]))
    rows2 = prune_edge_primitives(space.edge_probs()["normal"].tolist(), rows1, P, keep=3)
    assert rows2 == [[P[j] for j in kept] for kept in AUTHORS_STAGE2]
    with pytest.raises(ConfigurationError, match="keep=4 ops, but edge 0 has 3"):
        prune_edge_primitives(space.edge_probs()["normal"].tolist(), rows2, P, keep=4)


# ----------------------------------------------------------------------------------- at most M skip connections
NORMAL_OPS = [[0, 3, 4], [1, 3, 6], [3, 5, 7]]  # stage-3 ops of edge e: NORMAL_OPS[e % 3]
REDUCE_OPS = [[1, 3, 4], [0, 2, 3], [3, 6, 7]]


def alpha3(e: int, ops: list[list[int]]) -> list[float]:
    row = ops[e % 3]
    a = [0.1 * ((3 * e + 2 * j) % 5) for j in range(3)]
    a[row.index(3)] = 0.8 + 0.1 * ((5 * e) % 7)  # skip_connect strong
    if row[0] == 0:
        a[0] = 1.5  # a strong none, which derivation ignores
    return a


S, MP, AP, S3, S5, D3, D5 = ("skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5",
                             "dil_conv_3x3", "dil_conv_5x5")
# parse_network(...).normal after the authors' loop for max_sk = M (train_search.py, "Restricting skipconnect").
AUTHORS_NORMAL = {
    8: [(S, 0), (S, 1), (S, 0), (S, 2), (S, 0), (S, 3), (S, 1), (S, 2)],
    7: [(S3, 0), (S, 1), (S, 0), (S, 2), (S, 0), (S, 3), (S, 1), (S, 2)],
    6: [(S3, 0), (S, 1), (S, 0), (S, 2), (S, 0), (S, 3), (D3, 1), (S, 2)],
    5: [(S3, 0), (S, 1), (S, 0), (S, 2), (MP, 2), (S, 3), (D3, 1), (S, 2)],
    4: [(S3, 0), (S, 1), (S5, 0), (S, 2), (MP, 2), (S, 3), (D3, 1), (S, 2)],
    3: [(S3, 0), (MP, 1), (S5, 0), (S, 2), (MP, 2), (S, 3), (D3, 1), (S, 2)],
    2: [(S3, 0), (MP, 1), (S5, 0), (S, 2), (D5, 0), (MP, 2), (D3, 1), (S, 2)],
    1: [(S3, 0), (MP, 1), (S5, 0), (MP, 2), (D5, 0), (MP, 2), (D3, 1), (S, 2)],
    0: [(S3, 0), (MP, 1), (S5, 0), (MP, 2), (D5, 0), (MP, 2), (D3, 1), (MP, 4)],
}
AUTHORS_REDUCE = [(S, 0), (S, 1), (S, 0), (S, 1), (S, 0), (S, 3), (S, 2), (S, 3)]  # not restricted


def stage3_space(max_skips: int) -> CNNSearchSpace:
    rows = {cell: [[P[j] for j in ops[e % 3]] for e in range(14)]
            for cell, ops in (("normal", NORMAL_OPS), ("reduce", REDUCE_OPS))}
    space = tiny_space(edge_primitives=rows, derivation=MaxSkips(max_skips))
    with torch.no_grad():
        space.arch["normal"].copy_(torch.tensor([alpha3(e, NORMAL_OPS) for e in range(14)]))
        space.arch["reduce"].copy_(torch.tensor([alpha3(e, REDUCE_OPS) for e in range(14)]))
    return space


@pytest.mark.parametrize("m", sorted(AUTHORS_NORMAL))
def test_max_skips_derives_the_authors_cell(m: int) -> None:
    genotype = stage3_space(m).genotype()
    assert per_node(genotype.normal) == per_node(AUTHORS_NORMAL[m])
    assert per_node(genotype.reduce) == per_node(AUTHORS_REDUCE)  # the reduction cell keeps its 8 skips


def test_max_skips_keeps_a_skip_that_has_no_other_op() -> None:
    probs = [[0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0, 0.0] for _ in range(14)]  # only skip_connect on every edge
    gene = MaxSkips(2).select(probs, P, num_nodes=4, first_inputs=2, k=2)
    assert all(op == S for op, _ in gene)
    with pytest.raises(ConfigurationError, match="max_skips=-1"):
        MaxSkips(-1)


# ----------------------------------------------------------------------------------- skip-connection dropout
# The authors' rate for stage 2 (dropout_rate 0.4) of 25 epochs, eps_no_arch 10, scale_factor 0.2.
AUTHORS_RATE = {0: 0.38400000000000006, 1: 0.36800000000000005, 9: 0.24, 10: 0.4, 11: 0.3274923012311928,
                17: 0.09863878557664257, 24: 0.02432402505008718}


def test_skip_dropout_schedule_is_the_authors_rate() -> None:
    schedule = ExponentialSchedule("space.skip_dropout.p", start=0.4, decay=0.2, warmup_epochs=10)
    for epoch, rate in AUTHORS_RATE.items():
        assert schedule.value(epoch, 25) == pytest.approx(rate, rel=1e-12, abs=0)
    module = LitSearch(tiny_space(skip_dropout=0.4), schedules=[schedule])
    assert schedule.apply(module, 11, 25) == pytest.approx(AUTHORS_RATE[11])
    assert module.space.skip_dropout.p == pytest.approx(AUTHORS_RATE[11])
    wrappers = [m.wrappers[m.columns.index(P.index(S))] for m in module.space.cells[0].edges]  # a normal cell
    assert all(w == [module.space.skip_dropout] for w in wrappers)  # one part shared by every edge


def test_skip_dropout_drops_only_the_identity_skip_in_training() -> None:
    dropout = SkipDropout(0.5)
    mixed = MixedOp(4, 1, ["skip_connect"], wrappers=[dropout])
    reduce = MixedOp(4, 2, ["skip_connect"], wrappers=[dropout])
    x, one = torch.randn(2, 4, 8, 8), [torch.tensor(1.0)]
    y = mixed.weighted_sum(x, one)
    kept = y != 0
    assert 0.3 < kept.float().mean() < 0.7  # about half the elements dropped
    torch.testing.assert_close(y[kept], 2 * x[kept])  # the rest scaled by 1 / (1 - p)
    dropout.eval()  # a wrapper belongs to the space, which sets its mode with everything else
    torch.testing.assert_close(mixed.weighted_sum(x, one), x)
    dropout.p = 0.0
    dropout.train()
    torch.testing.assert_close(mixed.weighted_sum(x, one), x)
    dropout.p = 0.5
    out = reduce.weighted_sum(x, one)  # stride 2: factorized reduce, no dropout (the authors' Identity check)
    torch.testing.assert_close(reduce.weighted_sum(x, one), out)
    with pytest.raises(ConfigurationError, match=r"SkipDropout: p=1\.0 is out of range; it must be in \[0, 1\)"):
        SkipDropout(1.0)


# ----------------------------------------------------------------------------------- the stage driver
TINY = ["--config", str(REPO / "configs" / "quickstart.yaml"),
        "--config", str(REPO / "configs" / "variants" / "pdarts.yaml"),
        "--trainer.max_epochs", "2", "--model.init_args.weight_scheduler.init_args.T_max", "2",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2", "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--model.init_args.space.init_args.channels", "4", "--data.init_args.batch_size", "16"]
DRIVER = ["--num_cells", "3", "4", "5", "--warmup_epochs", "1"]


def run_dir(root: Path, stage: int) -> Path:
    return the_run_dir(root / f"stage_{stage}")


def test_driver_runs_three_stages_and_resumes_an_interrupted_one(tmp_path: Path, monkeypatch, capsys) -> None:
    root = tmp_path / "pdarts"
    calls: list[list[str]] = []
    real = progressive.run_fit

    def interrupted(args: list[str]) -> None:  # stage 2 stops after its first epoch's checkpoint, as a kill would
        calls.append(args)
        if "stage_2" in args[-1]:
            real([*args, "--trainer.max_steps", "2"])
            raise SystemExit(143)
        real(args)

    monkeypatch.setattr(progressive, "run_fit", interrupted)
    with pytest.raises(SystemExit) as stopped:
        progressive.main(["--root", str(root), *DRIVER, *TINY])
    assert stopped.value.code == 143
    assert [Path(a[a.index("--trainer.default_root_dir") + 1]).name for a in calls] == ["stage_1", "stage_2"]
    record = json.loads((root / "stages.json").read_text())
    assert [s["stage"] for s in record["stages"]] == [1]
    stage1_ckpt = run_dir(root, 1) / "checkpoints" / "last.ckpt"
    stage1_time = stage1_ckpt.stat().st_mtime_ns
    assert torch.load(run_dir(root, 2) / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0

    # Without --ckpt_path last the driver refuses to start over the recorded search.
    with pytest.raises(SystemExit) as refused:
        progressive.main(["--root", str(root), *DRIVER, *TINY])
    assert refused.value.code == 2 and "--ckpt_path last" in capsys.readouterr().err

    calls.clear()
    monkeypatch.setattr(progressive, "run_fit", lambda args: (calls.append(args), real(args)))
    progressive.main(["--root", str(root), *DRIVER, "--ckpt_path", "last", *TINY])
    assert [Path(a[a.index("--trainer.default_root_dir") + 1]).name for a in calls] == ["stage_2", "stage_3"]
    assert calls[0][-2:] == ["--ckpt_path", "last"] and "--ckpt_path" not in calls[1]
    assert stage1_ckpt.stat().st_mtime_ns == stage1_time  # stage 1 was not run again
    assert not list((root / "stage_2").glob("*/version_1"))  # stage 2 continued its own run

    record = json.loads((root / "stages.json").read_text())
    stages = record["stages"]
    assert [s["stage"] for s in stages] == [1, 2, 3] and [s["num_cells"] for s in stages] == [3, 4, 5]
    for s, (cells, width) in zip(stages, [(3, 8), (4, 5), (5, 3)]):
        ckpt = torch.load(Path(s["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=False)
        assert ckpt["epoch"] == 1  # both epochs of every stage, stage 2 included
        assert ckpt["state_dict"]["space.arch.normal"].shape == (14, width)
        assert ckpt["state_dict"]["space.arch.reduce"].shape == (14, width)
        assert ckpt["state_dict"]["space.skip_dropout._extra_state"]["p"] == pytest.approx(s["skip_dropout"])  # epoch 1
        assert len({k.split(".")[2] for k in ckpt["state_dict"] if k.startswith("space.cells.")}) == cells
        space = ckpt["hyper_parameters"]["space"]["init_args"]
        assert space["num_cells"] == cells and space["skip_dropout"] == s["skip_dropout"]
        assert (space["derivation"] is not None) == (s["stage"] == 3)  # MaxSkips in the last stage only
    for before, after in itertools.pairwise(stages):  # each stage searched what the previous one kept
        assert after["edge_primitives"] == before["pruned"]
        for cell in ("normal", "reduce"):
            keep = len(after["edge_primitives"][cell][0])
            searched = before["edge_primitives"][cell]
            assert before["pruned"][cell] == prune_edge_primitives(before["probs"][cell], searched, P, keep)
    history = np.load(Path(stages[2]["run_dir"]) / "alpha_history.npz")
    assert history["normal"].shape == (2, 14, 8)  # the monitors read every stage in all 8 columns

    final = load(root / "genotype.json")
    assert final == load(Path(stages[2]["run_dir"]) / "genotype.json")
    assert sum(op == "skip_connect" for op, _ in final.normal) <= 2
    starts = [0, 2, 5, 9]
    for cell in ("normal", "reduce"):
        for pos, (op, j) in enumerate(getattr(final, cell)):
            assert op in stages[2]["edge_primitives"][cell][starts[pos // 2] + j]


def test_driver_refuses_bad_stage_options(tmp_path: Path, capsys) -> None:
    for bad in (["--num_cells", "5", "11", "--skip_dropout", "0.1"], ["--keep_ops", "3", "5"],
                ["--skip_dropout", "0.1", "0.4", "1.0"], ["--trainer.default_root_dir", "x"]):
        with pytest.raises(SystemExit) as exit_:
            progressive.main(["--root", str(tmp_path), *bad, *TINY])
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("darts-pl-progressive")]
        assert exit_.value.code == 2 and len(lines) == 1, lines
    assert not (tmp_path / "stages.json").exists()
