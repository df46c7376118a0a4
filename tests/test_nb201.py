"""The NAS-Bench-201 space: the search cell and supernet against the authors' code, the derivation, the
benchmark's architecture string, the network trained from scratch, CIFAR-100, and searches from the configs.

Expected values come from the authors' code (D-X-Y/AutoDL-Projects, xautodl/models: ``NAS201SearchCell`` in
cell_searchs/search_cells.py, ``TinyNetworkDarts`` / ``TinyNetworkGDAS`` in search_model_darts.py /
search_model_gdas.py, ``TinyNetwork`` / ``InferCell`` in cell_infers/, ``Structure`` in cell_searchs/genotypes.py),
run once on the inputs built here, in float64: every weight filled, in the models' parameter order, with
``0.5 · N(0, 1)`` from a seeded generator (:func:`fill`); the authors' search convolutions also carry a bias
(``bias=not affine``), filled from another generator and cancelled by the BatchNorm after it.
The script that prints them: tests/goldens/nb201.py.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl import genotypes
from darts_pl.cli import main
from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import NB201_PRIMITIVES, GenotypeError, NB201Genotype, from_nb201_str, to_nb201_str
from darts_pl.networks import NB201Network
from darts_pl.parts import EdgeWeights
from darts_pl.search import (
    ArgmaxPerEdge,
    AuxiliarySkip,
    Dirichlet,
    GumbelSoftmax,
    JointTopK,
    NB201SearchCell,
    NB201SearchSpace,
    PartialChannel,
    SampledOp,
    Sigmoid,
    Softmax,
    TopK,
    WeightedSum,
)

from .conftest import REPO, run_dir

BENCHMARK_STRING = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
EVERY_OP = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def fill(params, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------------------- architecture string
@pytest.mark.parametrize("text", [BENCHMARK_STRING, ALL_3X3, ALL_NONE, EVERY_OP, "|skip_connect~0|"])
def test_arch_string_round_trips(text: str) -> None:
    genotype = from_nb201_str(text)
    assert to_nb201_str(genotype) == text == str(genotype) == genotype.tostr()
    assert genotypes.from_dict(genotypes.to_dict(genotype)) == genotype
    assert genotypes.resolve(text) == genotype


def test_arch_string_parses_as_the_authors_structure() -> None:
    # Structure.str2structure(BENCHMARK_STRING).nodes in the authors' genotypes.py
    assert from_nb201_str(BENCHMARK_STRING).nodes == [
        (("nor_conv_3x3", 0),),
        (("nor_conv_3x3", 0), ("avg_pool_3x3", 1)),
        (("skip_connect", 0), ("nor_conv_3x3", 1), ("skip_connect", 2)),
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("nor_conv_3x3~0|", "must look like"),
    ("|nor_conv_3x3~0|+nor_conv_3x3~0|", "node 2"),
    ("|nor_conv_3x3-0|", "is not 'op~input'"),
    ("|sep_conv_9x9~0|", "unknown op 'sep_conv_9x9'"),
    ("|nor_conv_3x3~1|", "input index 1 out of range"),
])
def test_bad_arch_strings_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(GenotypeError, match=message):
        from_nb201_str(text)


def test_genotype_json_holds_the_arch_string(tmp_path: Path) -> None:
    genotype = from_nb201_str(BENCHMARK_STRING)
    path = genotypes.save(genotype, tmp_path / "genotype.json")
    data = json.loads(path.read_text())
    assert data["nb201"] == BENCHMARK_STRING
    assert data["nodes"][2] == [["skip_connect", 0], ["nor_conv_3x3", 1], ["skip_connect", 2]]
    assert genotypes.load(path) == genotype
    assert genotypes.from_dict({"nb201": BENCHMARK_STRING}) == genotype
    with pytest.raises(GenotypeError, match="describe different cells"):
        genotypes.from_dict({"nb201": ALL_3X3, "nodes": data["nodes"]})


# ----------------------------------------------------------------------------------------- the search cell
def test_cell_matches_the_authors_nas201searchcell() -> None:
    """Softmax-weighted cell (C=3, 5×5 inputs, batch 2): the authors' NAS201SearchCell(3, 3, 1, 4, NAS_BENCH_201,
    affine=False, track_running_stats=True) with the same weights, input and alphas."""
    cell = NB201SearchCell(3, 4, NB201_PRIMITIVES, WeightedSum()).double()
    fill(cell.parameters(), 10)
    out = cell(randn(2, 3, 5, 5, seed=1), EdgeWeights(F.softmax(randn(6, 5, seed=2), dim=-1)), WeightedSum())
    assert out.sum().item() == pytest.approx(-2.53942940352, rel=1e-10)
    assert (out ** 2).sum().item() == pytest.approx(59.3649015932, rel=1e-10)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(
        [-0.0114744173594, 0.510510993756, -0.438211672852], dtype=torch.float64), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(out[1, 2, 4, :], torch.tensor(
        [0.00639767246208, 0.911863205843, 0.246593765692, -0.0973792707514, -0.538446357257], dtype=torch.float64),
        rtol=1e-9, atol=1e-11)


def test_node_sums_the_mixed_ops_of_every_earlier_node() -> None:
    """Node i = sum over j < i of edge j->i on node j: with one-hot weights on skip_connect / none the output is an
    exact multiple of the input."""
    cell = NB201SearchCell(2, 4, NB201_PRIMITIVES, WeightedSum())
    x = torch.randn(2, 2, 4, 4)
    none, skip = NB201_PRIMITIVES.index("none"), NB201_PRIMITIVES.index("skip_connect")

    def output(skips: set[str]) -> torch.Tensor:
        weights = torch.zeros(6, 5)
        for row, label in enumerate(["0->1", "0->2", "1->2", "0->3", "1->3", "2->3"]):
            weights[row, skip if label in skips else none] = 1.0
        return cell(x, EdgeWeights(weights), WeightedSum())

    torch.testing.assert_close(output({"0->3"}), x)
    torch.testing.assert_close(output({"0->1", "1->2", "2->3"}), x)
    # node1 = x, node2 = x + node1 = 2x, node3 = node1 + node2 = 3x (0->3 off)
    torch.testing.assert_close(output({"0->1", "0->2", "1->2", "1->3", "2->3"}), 3 * x)
    torch.testing.assert_close(output(set()), torch.zeros_like(x))


def test_pooling_has_no_batchnorm_and_stats_are_optional() -> None:
    cell = NB201SearchCell(4, 4, NB201_PRIMITIVES, WeightedSum(), track_running_stats=False)
    pool = cell.edges[0].ops[cell.edges[0].columns.index(NB201_PRIMITIVES.index("avg_pool_3x3"))]
    assert isinstance(pool, nn.AvgPool2d) and not pool.count_include_pad
    bns = [m for m in cell.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.running_mean is None and not m.affine for m in bns)
    space = NB201SearchSpace(channels=4, num_cells=1, track_running_stats=True)
    assert all(m.running_mean is not None for m in space.modules() if isinstance(m, nn.BatchNorm2d))


# ----------------------------------------------------------------------------------------- the supernet
def tiny_supernet(**kwargs) -> NB201SearchSpace:
    space = NB201SearchSpace(channels=4, num_cells=1, **kwargs).double()
    fill(space.weight_parameters(), 20)
    with torch.no_grad():
        space.arch["cell"].copy_(randn(6, 5, seed=2) * 0.5)
    return space


# The authors' TinyNetworkDarts / TinyNetworkGDAS(C=4, N=1, max_nodes=4, 10 classes, NB201 ops, affine=False,
# track_running_stats=True) on x = randn(2, 3, 8, 8; seed 1), targets [3, 7]; GDAS with tau 10, torch.manual_seed(5).
SUPERNET = {
    "darts": dict(
        loss=3.49866846796,
        logits=[0.249182004679, -0.491149029044, 0.496535879748, -0.484988476384, 1.13876071875, 0.913711048587,
                -1.85850414865, -0.956268011415, -0.681894997469, -1.86892267339, 0.510059171266, -0.931411094965,
                -0.0549537114732, -0.467878045494, 0.854364014713, 0.922617759056, -1.50251264746, -1.89520393505,
                -1.2583185032, -2.65377867555],
        alpha_grad=[-0.00624989891993, -0.0291193845019, 0.528821679359, -0.509184239965, 0.0157318440277,
                    0.0990636160171, -0.0732858941173, -0.216271708813, 0.0624867595616, 0.128007227352,
                    -0.0853916127715, 0.1459720752, -0.0297320049032, 0.123524811738, -0.154373269264,
                    -0.118286677094, 0.0722035763023, 0.478241563308, -0.392392482166, -0.0397659803506,
                    0.0358119578289, 0.00605150633081, -0.392878653204, 0.279278322442, 0.0717368666022,
                    0.0114856424267, -0.0791762872864, -0.221183008476, 0.317856553992, -0.0289829006557]),
    "gdas": dict(
        loss=3.82248450273,
        logits=[0.511830303396, -0.305489012492, 0.760948331228, -0.350622208529, 0.897153921097, 1.16005689161,
                -1.81860878858, -0.28746591333, -0.689556727361, -2.12168335989, 0.32245377841, -1.11911760951,
                -0.318287122268, -0.580221092841, 1.09808117723, 0.79387583831, -1.50811039199, -2.59535609737,
                -1.36244970957, -2.49694211605],
        alpha_grad=[0.00126393837547, 0.00145414514959, -0.00550142854762, 0.00141608853984, 0.00136725648271,
                    -0.00103116933429, -0.00108888044332, -0.00102327357367, -0.000910077846409, 0.00405340119769,
                    0.0018222481152, 0.00167567528625, 0.00142826689081, 0.00175576217871, -0.00668195247098,
                    -0.00108914348204, -0.00100576410621, 0.00400558840748, -0.000935012960336, -0.000975667858896,
                    -0.00038979880144, -0.000409324221891, 0.0016580894469, -0.000458558228159, -0.000400408195414,
                    -0.00215122189725, -0.00205577966175, 0.00778340785131, -0.00192836400944, -0.00164804228287]),
}


@pytest.mark.parametrize("method", ["darts", "gdas"])
def test_supernet_matches_the_authors(method: str) -> None:
    """Loss, logits and alpha gradient of the whole supernet (stem, 3 stages of one cell, two residual blocks,
    BN-ReLU, pooling, classifier) with one alpha tensor shared by every cell; GDAS draws the same Gumbel noise as
    the authors' forward after ``torch.manual_seed(5)`` and runs SampledOp(other_weights=True), their forward_gdas."""
    parts = {} if method == "darts" else {"relaxation": GumbelSoftmax(tau=10.0, seed=5),
                                          "edge": SampledOp(other_weights=True)}
    space = tiny_supernet(**parts)
    out = space((randn(2, 3, 8, 8, seed=1), torch.tensor([3, 7])))
    out.loss.backward()
    expected = SUPERNET[method]
    assert out.loss.item() == pytest.approx(expected["loss"], rel=1e-10)
    torch.testing.assert_close(out.preds.flatten(), torch.tensor(expected["logits"], dtype=torch.float64),
                               rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(space.arch["cell"].grad.flatten(),
                               torch.tensor(expected["alpha_grad"], dtype=torch.float64), rtol=1e-8, atol=1e-12)
    # the authors' genotype() on these alphas
    assert str(space.genotype()) == "|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|"


def test_derivation_is_the_argmax_of_every_edge_none_included() -> None:
    space = NB201SearchSpace(channels=2, num_cells=1)
    with torch.no_grad():  # the third row's none/skip tie goes to the lower index, as torch.argmax
        space.arch["cell"].copy_(torch.tensor([[2., 1, 0, 0, 0], [0, 3, 1, 0, 0], [0, 0, 0, 5, 0], [1, 1, 0, 0, 0],
                                               [0, 0, 0, 0, 4], [0, 0, 2, 0, 0]]))
    # TinyNetworkDarts.genotype().tostr() on these alphas
    expected = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    assert isinstance(space.derivation, ArgmaxPerEdge) and str(space.genotype()) == expected
    space.derivation = TopK()  # the DARTS rule: the strongest op other than none, on every edge
    assert str(space.genotype()) == "|skip_connect~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|" \
                                    "avg_pool_3x3~1|nor_conv_1x1~2|"
    with pytest.raises(ConfigurationError, match="ArgmaxPerEdge"):
        NB201SearchSpace(channels=2, num_cells=1, derivation=JointTopK())


def test_supernet_parameters_are_the_authors_without_their_cancelled_biases() -> None:
    space = NB201SearchSpace()  # C=16, N=5
    assert space.cell_types == ["cell"] and space.arch["cell"].shape == (6, 5)
    assert space.edge_labels() == ["0->1", "0->2", "1->2", "0->3", "1->3", "2->3"]
    # TinyNetworkDarts(16, 5, 4, 10, NAS_BENCH_201, False, True): 1,692,856 parameters = 30 alphas + 6,720 search-conv
    # biases (cancelled by the BN after them) + 1,686,106 others
    assert sum(p.numel() for p in space.weight_parameters()) == 1_686_106
    assert sum(p.numel() for p in space.arch_parameters()) == 30


@pytest.mark.parametrize(("relaxation", "edge"), [
    (Softmax(), WeightedSum()), (Sigmoid(), WeightedSum()), (Dirichlet(seed=0), WeightedSum()),
    (GumbelSoftmax(seed=0), SampledOp(other_weights=True)), (GumbelSoftmax(seed=0), SampledOp()),
    (Softmax(), AuxiliarySkip(beta=0.5)), (Softmax(), PartialChannel(k=2)),
], ids=["darts", "fair_darts", "drnas", "gdas_nb201", "gdas", "darts_minus", "pc_darts"])
def test_every_part_of_the_cnn_space_runs_here(relaxation, edge) -> None:
    space = NB201SearchSpace(in_channels=1, channels=4, num_cells=1, relaxation=relaxation, edge=edge)
    out = space((torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])))  # digits' size: 8x8 -> 4x4 -> 2x2
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.preds.shape == (4, 10)
    grad = space.arch["cell"].grad
    assert grad is not None and torch.isfinite(grad).all()
    if not isinstance(edge, SampledOp) or edge.other_weights:
        # every alpha gets a gradient (GDAS on NB201: through the other ops' weights); independent sigmoids give
        # `none`, which contributes zero, none
        columns = [j for j, op in enumerate(NB201_PRIMITIVES) if relaxation.normalized or op != "none"]
        assert (grad[:, columns] != 0).all()
    assert isinstance(space.genotype(), NB201Genotype)


def test_bad_settings_name_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="num_nodes=1"):
        NB201SearchSpace(num_nodes=1)
    with pytest.raises(ConfigurationError, match="GumbelSoftmax"):
        NB201SearchSpace(edge=SampledOp())
    with pytest.raises(ConfigurationError, match="sep_conv_9x9"):
        NB201SearchSpace(primitives=["none", "sep_conv_9x9"])


# ----------------------------------------------------------------------------------------- training from scratch
@pytest.mark.parametrize(("text", "counts"), [
    (ALL_3X3, (1_531_546, 1_537_396, 1_538_696)),
    (BENCHMARK_STRING, (802_426, 808_276, 809_576)),
    (ALL_NONE, (73_306, 79_156, 80_456)),
])
def test_parameter_counts_match_the_benchmark_network(text: str, counts: tuple[int, int, int]) -> None:
    """The authors' TinyNetwork(16, 5, Structure.str2structure(text), classes) for CIFAR-10/100, ImageNet16-120."""
    for num_classes, count in zip((10, 100, 120), counts):
        network = NB201Network(text, channels=16, num_cells=5, num_classes=num_classes)
        assert sum(p.numel() for p in network.parameters()) == count


def test_derived_network_matches_the_authors_tinynetwork() -> None:
    """TinyNetwork(4, 1, Structure.str2structure(EVERY_OP), 10) with the same weights, train-mode BN."""
    network = NB201Network(EVERY_OP, channels=4, num_cells=1).double()
    fill(network.parameters(), 30)
    logits, aux = network(randn(2, 3, 8, 8, seed=1))
    assert aux is None and sum(p.numel() for p in network.parameters()) == 11_446
    expected = [0.426730973542, 0.647601374218, 0.811157257481, -0.63092819945, -0.765424141357, -0.511845952341,
                -0.0356699650307, -0.0185147322315, -1.0534418059, -1.34268994714, 0.169293492204, 0.446336452677,
                0.859727397714, -0.116805650153, -0.700035892994, -0.618100667359, -0.323972292532, 0.395264612929,
                -0.892566966917, -1.38072809407]
    torch.testing.assert_close(logits.flatten(), torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-11)


def test_lit_classifier_trains_an_nb201_cell(tmp_path: Path) -> None:
    import lightning as L

    from darts_pl.data import DigitsDataModule
    from darts_pl.modules import LitClassifier

    args = dict(network="nb201", channels=4, num_cells=1, in_channels=1, auxiliary=False, drop_path_prob=0.0)
    model = LitClassifier(genotype=BENCHMARK_STRING, **args)
    assert model.hparams["genotype"]["nb201"] == BENCHMARK_STRING
    trainer = L.Trainer(default_root_dir=tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                        logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, DigitsDataModule(mode="train", batch_size=16))
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    with pytest.raises(GenotypeError, match="network='cifar'"):
        LitClassifier(genotype=BENCHMARK_STRING, **{**args, "network": "cifar"})
    with pytest.raises(GenotypeError, match="network='nb201'"):
        LitClassifier(genotype="DARTS_V2", **args)
    with pytest.raises(ConfigurationError, match="auxiliary false"):
        LitClassifier(genotype=BENCHMARK_STRING, **{**args, "auxiliary": True})
    with pytest.raises(ConfigurationError, match="drop_path_prob 0"):
        LitClassifier(genotype=BENCHMARK_STRING, **{**args, "drop_path_prob": 0.2})


# ----------------------------------------------------------------------------------------- CIFAR-100
def write_cifar100(root: Path, train_size: int = 12, test_size: int = 6, seed: int = 0) -> Path:
    """Tiny CIFAR-100 files in the real pickle format (``cifar-100-python/{train,test,meta}``)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train_size), ("test", test_size)):
        with open(folder / name, "wb") as handle:
            pickle.dump({"filenames": [f"{name}_{i}.png" for i in range(n)], "batch_label": name,
                         "fine_labels": [int(7 * i % 100) for i in range(n)], "coarse_labels": [0] * n,
                         "data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)}, handle, protocol=2)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({"fine_label_names": [f"class_{i}" for i in range(100)],
                     "coarse_label_names": [f"super_{i}" for i in range(20)]}, handle)
    return root


def test_cifar100_reads_the_real_pickle_format(tmp_path: Path, fake_cifar_checksums: None) -> None:
    from darts_pl.data import CIFAR100DataModule

    dm = CIFAR100DataModule(str(write_cifar100(tmp_path)), download=False, mode="search", batch_size=4)
    assert dm.num_classes == 100
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()["train"]))
    assert batch[0].shape == (4, 3, 32, 32)
    assert set(batch[1].tolist()) <= {7 * i % 100 for i in range(12)}
    with pytest.raises(Exception, match=r"CIFAR-100 is not available.*cifar-100-python"):
        CIFAR100DataModule(str(tmp_path / "missing"), download=False).prepare_data()


# ----------------------------------------------------------------------------------------- from the configs
SMALL = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "1",
         "--data.init_args.batch_size", "16"]
GDAS = ["--model.init_args.space.init_args.relaxation", "darts_pl.search.GumbelSoftmax",
        "--model.init_args.space.init_args.edge", "darts_pl.search.SampledOp",
        "--model.init_args.space.init_args.edge.other_weights", "true"]


@pytest.mark.parametrize("method", ["darts", "gdas"])
def test_quickstart_searches_two_batches(tmp_path: Path, method: str, capsys) -> None:
    args = ["fit", "--config", str(REPO / "configs" / "quickstart_nb201.yaml"), *SMALL,
            "--trainer.default_root_dir", str(tmp_path), *(GDAS if method == "gdas" else [])]
    try:
        main(args)
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err[-3000:]
    run = run_dir(tmp_path)
    data = json.loads((run / "genotype.json").read_text())
    genotype = genotypes.load(run / "genotype.json")
    assert isinstance(genotype, NB201Genotype) and data["nb201"] == str(genotype)
    assert (run / "genotype_cell.png").stat().st_size > 0 and (run / "genotypes" / "epoch_000_cell.png").is_file()
    meta = json.loads((run / "alpha_history.json").read_text())
    assert meta["cell_types"] == ["cell"] and meta["shapes"] == {"cell": [1, 6, 5]}
    assert meta["primitives"] == list(NB201_PRIMITIVES)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["state_dict"]["space.arch.cell"].shape == (6, 5)
    space = ckpt["hyper_parameters"]["space"]["init_args"]
    relaxation = space["relaxation"]  # the config's default (None: Softmax) or the GDAS parts
    assert relaxation["class_path"].endswith("GumbelSoftmax") if method == "gdas" else relaxation is None
    assert all(int(s["step"]) == 2 for s in ckpt["optimizer_states"][1]["state"].values())  # two alpha steps
    states = [v for k, v in ckpt["callbacks"].items() if k.startswith("GenotypeCheckpoint")]
    assert states and states[0]["last"]["nb201"] == data["nb201"]  # the epoch's genotype, resumable


def test_monitor_counts_the_skip_connections_of_the_cell() -> None:
    from darts_pl.viz import describe

    genotype = from_nb201_str(BENCHMARK_STRING)
    assert genotype.collapse_counts()["cell"] == {"num_skip_connect": 2, "num_parameter_free": 3}
    assert describe(genotype).splitlines()[-1] == "  node 3 <- skip_connect(0), nor_conv_3x3(1), skip_connect(2)"
