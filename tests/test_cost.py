"""The cost regulariser: its per-op costs against the parameters and FLOPs counted on the derived networks (torch's own
FLOP counter), its gradient against the softmax Jacobian, the budget's hinge, the latency table and its errors, and a
search with the cost overlay against the same search without the penalty."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from darts_pl.errors import ConfigurationError
from darts_pl.networks import NB201Network, NetworkCIFAR
from darts_pl.parts import CostRegularizer
from darts_pl.search import NB201SearchSpace, RNNSearchSpace
from tests.conftest import run_cli, tiny_space

F64 = torch.float64
REPO = Path(__file__).resolve().parents[1]
IMAGE = (1, 8, 8)


def seen(space, shape=IMAGE):
    """The space after one forward on a batch of ``shape`` images (what a fit runs before its first alpha step)."""
    space((torch.zeros(2, *shape, dtype=next(space.parameters()).dtype), torch.zeros(2, dtype=torch.long)))
    return space


def one_hot_on(space, genotype) -> None:
    """Alphas of 100 on the ops ``genotype`` keeps and on ``none`` elsewhere: one-hot probabilities to float64."""
    none = space.primitives.index("none")
    with torch.no_grad():
        for cell, mask in space.selection_mask(genotype).items():
            alpha = torch.zeros(mask.shape, dtype=F64)
            alpha[:, none] = 100.0 * (~mask.any(1))
            alpha[mask] = 100.0
            space.arch[cell].copy_(alpha)


def edge_op_flops(network, pattern: str) -> int:
    """FLOPs (torch's counter: 2 per multiply-add) of the modules whose path matches ``pattern``, on one image."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network.eval()(torch.zeros(1, *IMAGE))
    return sum(sum(ops.values()) for name, ops in counter.get_flop_counts().items() if re.search(pattern, name))


def test_cnn_costs_are_those_of_the_derived_network() -> None:
    """At one-hot weights on a derived genotype the expected parameters and FLOPs are those of the ops on the edges of
    the network built from that genotype (same channels and cells; stem, preprocessing and classifier left out)."""
    space = seen(tiny_space(channels=4, num_cells=4).to(F64))
    with torch.no_grad():
        for alpha in space.arch.values():
            alpha.copy_(torch.randn(alpha.shape, dtype=F64))
    genotype = space.genotype()
    assert {op for op, _ in genotype.reduce} - {"max_pool_3x3", "avg_pool_3x3"}  # some counted op reduces
    one_hot_on(space, genotype)
    network = NetworkCIFAR(genotype, channels=4, num_cells=4, num_classes=10, in_channels=1)
    ops = [op for cell in network.cells for op in cell.ops]
    params, counted_params = CostRegularizer(metric="params"), sum(p.numel() for op in ops for p in op.parameters())
    assert float(params.expected(space).detach()) * 1e6 == pytest.approx(counted_params, rel=1e-12)
    assert params.derived(space, genotype) * 1e6 == pytest.approx(counted_params, rel=1e-12)
    flops = CostRegularizer(metric="flops")
    counted = edge_op_flops(network, r"cells\.\d+\.ops\.\d+$")
    assert counted > 0
    assert 2 * float(flops.expected(space).detach()) * 1e6 == pytest.approx(counted, rel=1e-12)
    assert 2 * flops.derived(space, genotype) * 1e6 == pytest.approx(counted, rel=1e-12)


def test_nb201_costs_are_those_of_the_derived_network() -> None:
    space = seen(NB201SearchSpace(num_classes=10, in_channels=1, channels=4, num_cells=1).to(F64))
    with torch.no_grad():
        space.arch["cell"].copy_(torch.randn(6, 5, dtype=F64))
    genotype = space.genotype()
    one_hot_on(space, genotype)
    network = NB201Network(genotype, channels=4, num_cells=1, num_classes=10, in_channels=1)
    layers = [layer for cell in network.cells if hasattr(cell, "layers") for layer in cell.layers]
    assert len(layers) == 3 * 6  # three stages of one cell
    params = CostRegularizer(metric="params")
    assert float(params.expected(space).detach()) * 1e6 == pytest.approx(
        sum(p.numel() for layer in layers for p in layer.parameters()), rel=1e-12)
    counted = edge_op_flops(network, r"cells\.\d+\.layers\.\d+$")
    assert 2 * CostRegularizer(metric="flops").derived(space, genotype) * 1e6 == pytest.approx(counted, rel=1e-12)


@pytest.mark.parametrize("metric", ["flops", "params"])
def test_gradient_is_the_softmax_jacobian_times_the_costs(metric: str) -> None:
    space = seen(tiny_space().to(F64))
    with torch.no_grad():
        for alpha in space.arch.values():
            alpha.copy_(torch.randn(alpha.shape, dtype=F64))
    regularizer = CostRegularizer(weight=0.5, metric=metric)
    grads = torch.autograd.grad(regularizer(space), list(space.arch.values()))
    for cell, grad in zip(space.arch, grads):
        p, c = space.arch[cell].detach().softmax(-1), regularizer.costs(space)[cell]
        analytic = 0.5 * p * (c - (p * c).sum(-1, keepdim=True))  # d/dalpha_k sum_j p_j c_j = p_k (c_k - E c)
        assert (c[:, 4:] > 0).all()  # the convolutions cost something on every edge
        torch.testing.assert_close(grad, analytic, rtol=1e-12, atol=1e-18)


def test_budget_is_a_hinge() -> None:
    space = seen(tiny_space().to(F64))
    expected = float(CostRegularizer().expected(space).detach())
    under = CostRegularizer(weight=1.0, budget=expected * 1.01)
    penalty = under(space)
    grads = torch.autograd.grad(penalty, list(space.arch.values()), allow_unused=True)
    assert float(penalty.detach()) == 0.0 and all(g is None or not g.any() for g in grads)
    over = CostRegularizer(weight=1.0, budget=expected * 0.99)
    assert float(over(space).detach()) == pytest.approx(expected * 0.01, rel=1e-9)
    plain = torch.autograd.grad(CostRegularizer(weight=1.0)(space), list(space.arch.values()))
    for g, h in zip(torch.autograd.grad(over(space), list(space.arch.values())), plain):
        assert g.abs().sum() > 0
        torch.testing.assert_close(g, h)  # above the budget: the expected cost's own gradient


def test_latency_table(tmp_path: Path) -> None:
    space = seen(tiny_space())  # 3 cells: a normal one (4 channels, 8 px), two reductions (8 channels, 16)
    latencies = {"max_pool_3x3": 0.5, "avg_pool_3x3": 0.25, "skip_connect": 0.125, "sep_conv_3x3": 2.0,
                 "sep_conv_5x5": 3.0, "dil_conv_3x3": 1.0, "dil_conv_5x5": 1.5}
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(latencies))
    costs = CostRegularizer(metric="latency", latency_table=str(flat)).costs(space)
    row = torch.tensor([0.0, *latencies.values()], dtype=F64)  # 'none' is free
    torch.testing.assert_close(costs["normal"], row.expand(14, 8))
    torch.testing.assert_close(costs["reduce"], 2 * row.expand(14, 8))
    # per edge input: the first reduction reads 8x8x8 at stride 2 from its inputs, then 8x4x4; the second 16x4x4, 16x2x2
    shaped = {op: {"4x8x8/1": ms, "8x8x8/2": 10 * ms, "8x4x4/1": 100 * ms, "16x4x4/2": 1000 * ms,
                   "16x2x2/1": 10000 * ms} for op, ms in latencies.items()}
    shaped["skip_connect"] = 0.125  # the two forms mix by op
    path = tmp_path / "shaped.json"
    path.write_text(json.dumps(shaped))
    reduce = CostRegularizer(metric="latency", latency_table=str(path)).costs(space)["reduce"]
    assert reduce[0, 4] == 2020.0 and reduce[4, 4] == 20200.0 and reduce[0, 3] == reduce[4, 3] == 2 * 0.125
    del shaped["max_pool_3x3"]["16x2x2/1"]
    path.write_text(json.dumps(shaped))
    with pytest.raises(ConfigurationError, match=r"no latency for 'max_pool_3x3' at the edge input '16x2x2/1'; add"):
        CostRegularizer(metric="latency", latency_table=str(path))(space)


def test_latency_table_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigurationError, match=r"latency_table='.*nope\.json' does not exist; give the path"):
        CostRegularizer(metric="latency", latency_table=str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text("{sep_conv_3x3: 1")
    with pytest.raises(ConfigurationError, match=r"bad\.json' is not valid JSON .*write it as"):
        CostRegularizer(metric="latency", latency_table=str(bad))
    bad.write_text(json.dumps({"sep_conv_3x3": -1}))
    with pytest.raises(ConfigurationError, match=r"entry of 'sep_conv_3x3' is -1; give a latency"):
        CostRegularizer(metric="latency", latency_table=str(bad))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"sep_conv_3x3": 1.0}))
    regularizer = CostRegularizer(metric="latency", latency_table=str(partial))
    with pytest.raises(ConfigurationError, match=r"latency_table='.*partial\.json' has no latency for the op "
                                                 r"'max_pool_3x3' of the space; add \"max_pool_3x3\""):
        regularizer(seen(tiny_space()))
    with pytest.raises(ConfigurationError, match="metric='latency' needs latency_table"):
        CostRegularizer(metric="latency")
    with pytest.raises(ConfigurationError, match="read only with metric='latency'"):
        CostRegularizer(metric="flops", latency_table=str(partial))
    with pytest.raises(ConfigurationError, match="metric='macs'; use 'flops', 'params' or 'latency'"):
        CostRegularizer(metric="macs")
    with pytest.raises(ConfigurationError, match=r"budget=-1\.0; give a cost >= 0 in MFLOPs"):
        CostRegularizer(budget=-1.0)


def test_refusals() -> None:
    with pytest.raises(ConfigurationError, match="CostRegularizer: RNNSearchSpace has no edges of candidate ops"):
        CostRegularizer()(RNNSearchSpace(num_tokens=10, emb_size=8, hidden_size=8))
    with pytest.raises(ConfigurationError, match="has seen no image batch"):
        CostRegularizer()(tiny_space())


def test_counting_leaves_the_space_as_it_was() -> None:
    space = seen(tiny_space())
    buffers = [b.clone() for b in space.buffers()]
    torch.manual_seed(5)
    CostRegularizer().costs(space)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), after)
    assert space.training and all(torch.equal(a, b) for a, b in zip(buffers, space.buffers()))
    assert space.input_shape == IMAGE


def test_costs_follow_edge_primitives() -> None:
    """A pruned space (two ops per edge) keeps one column per primitive; an op an edge lacks has probability 0."""
    rows = [["max_pool_3x3", "sep_conv_3x3"]] * 14
    space = seen(tiny_space(edge_primitives={"normal": rows}))
    regularizer = CostRegularizer(metric="params")
    probs = space.op_probs()["normal"]
    assert probs.shape == (14, 8) and (probs[:, [0, 2, 3, 5, 6, 7]] == 0).all()
    expected = sum((space.op_probs()[c] * regularizer.costs(space)[c].float()).sum() for c in ("normal", "reduce"))
    torch.testing.assert_close(regularizer.expected(space).float(), expected)


def fit(root: Path, *extra: str) -> list[dict[str, str]]:
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
            "--config", str(REPO / "configs" / "variants" / "cost_flops.yaml"),
            "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root),
            "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
            "--data.init_args.batch_size", "16", "--trainer.default_root_dir", str(root), *extra]
    assert run_cli(*args) == 0
    with open(next(root.rglob("metrics.csv"))) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_cost_overlay_logs_the_derived_cost_and_lowers_the_expected_one(tmp_path: Path) -> None:
    rows = fit(tmp_path / "cost")
    derived = [float(r["cost/derived_flops"]) for r in rows if r.get("cost/derived_flops")]
    expected = [float(r["cost/expected_flops"]) for r in rows if r.get("cost/expected_flops")]
    assert len(derived) == len(expected) == 2 and all(d > 0 for d in derived)  # every epoch
    metrics = sorted(tmp_path.rglob("epoch_*_metrics.json"))
    assert [json.loads(p.read_text())["cost/derived_flops"] for p in metrics] == pytest.approx(derived, rel=1e-6)
    free_overlay = tmp_path / "weight_0.yaml"  # the same regulariser, weight 0: logged, no penalty
    free_overlay.write_text("model:\n  init_args:\n    regularizers:\n"
                            "      - class_path: darts_pl.parts.CostRegularizer\n"
                            "        init_args:\n          weight: 0.0\n")
    free = fit(tmp_path / "free", "--config", str(free_overlay))
    expected_free = [float(r["cost/expected_flops"]) for r in free if r.get("cost/expected_flops")]
    assert expected[-1] < expected_free[-1]  # the penalty moved probability onto cheaper ops
