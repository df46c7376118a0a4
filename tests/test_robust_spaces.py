"""RobustDARTS's search spaces S1-S4 (configs/spaces/s1.yaml ... s4.yaml) and its ``noise`` op.

The expected per-edge op lists are the authors' ``spaces_dict`` (automl/RobustDARTS 3dec3fe, ``src/spaces.py``; the
same lists in ruocwang/darts-pt, ``sota/cnn/spaces.py``), printed by ``tests/goldens/robust_darts_spaces.py``. The
noise op is checked against what the authors' ``NoiseOp(stride, 0., 1.)`` does: ``x.new(shape).normal_(0, 1)`` on the
(stride-subsampled) input's shape, the same in training and evaluation.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from darts_pl.cli import main
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import Genotype, load, resolve, save
from darts_pl.modules import LitSearch
from darts_pl.networks.cnn import NetworkCIFAR
from darts_pl.ops import NoiseOp, is_parameter_free, make_op
from darts_pl.search import CNNSearchSpace, MixedOp
from darts_pl.strategies import SecondOrder

from .conftest import REPO, run_dir

SPACES = REPO / "configs" / "spaces"

S1 = {
    "normal": [
        ["skip_connect", "dil_conv_3x3"], ["skip_connect", "dil_conv_5x5"],
        ["skip_connect", "dil_conv_5x5"], ["skip_connect", "sep_conv_3x3"],
        ["skip_connect", "dil_conv_3x3"], ["max_pool_3x3", "skip_connect"],
        ["skip_connect", "sep_conv_3x3"], ["skip_connect", "sep_conv_3x3"],
        ["skip_connect", "dil_conv_3x3"], ["skip_connect", "sep_conv_3x3"],
        ["max_pool_3x3", "skip_connect"], ["skip_connect", "dil_conv_3x3"],
        ["dil_conv_3x3", "dil_conv_5x5"], ["dil_conv_3x3", "dil_conv_5x5"],
    ],
    "reduce": [
        ["max_pool_3x3", "avg_pool_3x3"], ["max_pool_3x3", "dil_conv_3x3"],
        ["max_pool_3x3", "avg_pool_3x3"], ["max_pool_3x3", "avg_pool_3x3"],
        ["skip_connect", "dil_conv_5x5"], ["max_pool_3x3", "avg_pool_3x3"],
        ["max_pool_3x3", "sep_conv_3x3"], ["skip_connect", "dil_conv_3x3"],
        ["skip_connect", "dil_conv_5x5"], ["max_pool_3x3", "avg_pool_3x3"],
        ["max_pool_3x3", "avg_pool_3x3"], ["skip_connect", "dil_conv_5x5"],
        ["skip_connect", "dil_conv_5x5"], ["skip_connect", "dil_conv_5x5"],
    ],
}
EXPECTED = {
    "s1": S1,
    "s2": {cell: 14 * [["skip_connect", "sep_conv_3x3"]] for cell in ("normal", "reduce")},
    "s3": {cell: 14 * [["none", "skip_connect", "sep_conv_3x3"]] for cell in ("normal", "reduce")},
    "s4": {cell: 14 * [["noise", "sep_conv_3x3"]] for cell in ("normal", "reduce")},
}
"""Per space and cell type, the ops of each edge in alpha row order, as the authors' ``primitives_normal`` /
``primitives_reduct``."""


def space_args(name: str) -> dict:
    return yaml.safe_load((SPACES / f"{name}.yaml").read_text())["model"]["init_args"]["space"]["init_args"]


def tiny_space(name: str, **kwargs) -> CNNSearchSpace:
    return CNNSearchSpace(channels=4, num_cells=3, in_channels=1, **space_args(name), **kwargs)


def test_every_space_overlay_is_tested() -> None:
    assert sorted(p.stem for p in SPACES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_space_is_the_authors(name: str) -> None:
    space = tiny_space(name)
    assert space.edge_primitives == EXPECTED[name]
    for cell in ("normal", "reduce"):  # only each edge's ops are built, in the authors' column order
        assert space.arch[cell].shape == (14, len(EXPECTED[name][cell][0]))
        supernet_cell = next(c for c in space.cells if c.reduction == (cell == "reduce"))
        for mixed, ops in zip(supernet_cell.edges, EXPECTED[name][cell]):
            assert [ops[column] for column in mixed.columns] == [op for op in ops if op != "none"]
    assert set(space.primitives) == {op for rows in EXPECTED[name].values() for row in rows for op in row}


@pytest.mark.parametrize("stride", [1, 2])
def test_noise_op_draws_standard_normal_noise_of_the_output_shape(stride: int) -> None:
    op = make_op("noise", 4, stride, affine=True)
    assert isinstance(op, NoiseOp) and (op.mean, op.std) == (0.0, 1.0) and not list(op.parameters())
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    torch.manual_seed(3)
    y = op(x)
    torch.manual_seed(3)  # the authors' x.new(x[:, :, ::s, ::s].size()).normal_(0, 1): the same draws
    assert torch.equal(y, x.new_empty(x[:, :, ::stride, ::stride].shape).normal_(0.0, 1.0))
    assert y.dtype == x.dtype and not y.requires_grad
    op.eval()  # no evaluation mode: still new noise at every call
    a, b = op(x), op(x)
    assert a.shape == b.shape == y.shape and not torch.equal(a, b)
    big = op(torch.zeros(64, 8, 32, 32))
    assert abs(float(big.mean())) < 0.01 and abs(float(big.std()) - 1.0) < 0.01


def test_noise_in_the_mixed_op_is_weighted_and_gets_its_alpha_gradient() -> None:
    mixed = MixedOp(4, 1, ["noise", "sep_conv_3x3"]).double()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    w = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    torch.manual_seed(5)
    out = mixed.weighted_sum(x, w.unbind(0))
    torch.manual_seed(5)
    noise = torch.empty_like(x).normal_()
    sep = mixed.ops[1](x)
    torch.testing.assert_close(out, 0.3 * noise + 0.7 * sep, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(out.sum(), w)
    torch.testing.assert_close(grad[0], noise.sum(), rtol=1e-12, atol=1e-12)


def test_s4_supernet_is_stochastic_in_training_and_evaluation() -> None:
    space = tiny_space("s4").double()
    batch = (torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 3]))
    for mode in (True, False):
        space.train(mode)
        assert space(batch).loss != space(batch).loss


def test_derived_network_keeps_the_noise_and_genotype_files_take_it(tmp_path: Path) -> None:
    genotype = Genotype(normal=[("noise", 0), ("sep_conv_3x3", 1)] * 4, normal_concat=[2, 3, 4, 5],
                        reduce=[("noise", 0), ("noise", 1)] * 4, reduce_concat=[2, 3, 4, 5])
    assert load(save(genotype, tmp_path / "genotype.json")) == genotype
    assert resolve(str(tmp_path / "genotype.json")) == genotype
    net = NetworkCIFAR(genotype, channels=4, num_cells=3, num_classes=10).eval()
    assert sum(isinstance(m, NoiseOp) for m in net.modules()) == 4 + 2 * 8  # 4 per normal cell, 8 per reduction
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(net(x)[0], net(x)[0])  # the authors' evaluation network keeps drawing noise
    assert is_parameter_free("noise")
    assert genotype.cell_counts("normal") == {"num_skip_connect": 0, "num_parameter_free": 4}


def test_second_order_is_refused_with_the_noise_op() -> None:
    with pytest.raises(ConfigurationError, match=r"SecondOrder.*noise.*FirstOrder"):
        LitSearch(tiny_space("s4"), strategy=SecondOrder())
    LitSearch(tiny_space("s3"), strategy=SecondOrder())  # deterministic spaces take it


def test_an_op_a_variant_overlay_drops_is_named() -> None:
    args = space_args("s3")
    args["primitives"] = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3"]  # e.g. sdarts_rs.yaml's
    with pytest.raises(ConfigurationError, match=r"edge_primitives\['normal'\]\[0\]: unknown op 'none'"):
        CNNSearchSpace(channels=4, num_cells=3, **args)


SMALL = ["--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
         "--trainer.enable_model_summary", "false", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
         "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
         "--data.init_args.batch_size", "16"]


def fit(root: Path, *configs: str, extra: tuple[str, ...] = ()) -> int:
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml")]
    for config in configs:
        args += ["--config", str(REPO / "configs" / config)]
    try:
        main([*args, *SMALL, "--trainer.default_root_dir", str(root), *extra])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant"), [("s1", None), ("s2", None), ("s3", None), ("s4", None),
                                               ("s1", "gdas"), ("s2", "sdarts_rs"), ("s3", "gdas"),
                                               ("s4", "sdarts_rs"), ("s3", "sdarts_rs")])
def test_space_runs_on_the_quickstart(tmp_path: Path, name: str, variant: str | None, capsys) -> None:
    configs = ([f"variants/{variant}.yaml"] if variant else []) + [f"spaces/{name}.yaml"]
    code = fit(tmp_path, *configs)
    assert code == 0, capsys.readouterr().err[-3000:]
    run = run_dir(tmp_path)
    genotype = load(run / "genotype.json")
    for cell in ("normal", "reduce"):
        rows = EXPECTED[name][cell]
        starts = [0, 2, 5, 9]
        for pos, (op, j) in enumerate(getattr(genotype, cell)):
            assert op in rows[starts[pos // 2] + j] and op != "none"  # an op of that edge
    history = yaml.safe_load((run / "alpha_history.json").read_text())
    assert history["primitives"] == space_args(name)["primitives"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["state_dict"]["space.arch.normal"].shape == (14, len(EXPECTED[name]["normal"][0]))


@pytest.mark.slow
def test_s4_second_order_on_the_cli_is_one_line(tmp_path: Path, capsys) -> None:
    assert fit(tmp_path, "spaces/s4.yaml", "second_order.yaml") == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("darts-pl: error:")]
    assert len(lines) == 1 and "noise" in lines[0] and "FirstOrder" in lines[0]
    assert not list(tmp_path.rglob("*.ckpt"))
