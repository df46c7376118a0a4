"""PC-DARTS: partial channel connections, edge normalisation, its ImageNet search network and data subsets.

Expected numbers were produced by running the authors' own code (yuhuixu1993/PC-DARTS, float64, CPU, train mode) on
the inputs built here: ``channel_shuffle`` and ``MixedOp`` of ``model_search.py`` (K=4), ``Network.forward`` of
``model_search.py`` (CIFAR stem, K=4) and ``model_search_imagenet.py`` (3-conv stem, K=2) with every weight filled
by :func:`fill` in parameter order, and ``Network.genotype()`` on the alphas and betas of :func:`fixed_arch`.
The script that prints them: tests/goldens/pc_darts.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_pl.errors import ConfigurationError
from darts_pl.genotypes import PRIMITIVES, Genotype
from darts_pl.modules import LitSearch
from darts_pl.parts.edges import channel_shuffle
from darts_pl.search import CNNSearchSpace, MixedOp, PartialChannel, WeightedSum

from .conftest import REPO, run_cli
from .conftest import run_dir as the_run_dir

F64 = torch.float64


def fill(params) -> None:
    """Parameter ``k`` (in order) of ``numel`` n := ``0.5 · sin(0.7 · arange(n) + k)``, as in the reference runs."""
    with torch.no_grad():
        for k, p in enumerate(params):
            p.copy_((torch.sin(torch.arange(p.numel(), dtype=F64) * 0.7 + k) * 0.5).reshape(p.shape))


def inputs(*shape: int) -> torch.Tensor:
    i = torch.arange(int(np.prod(shape)), dtype=F64)
    return (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i)).reshape(shape)


def fixed_arch() -> dict[str, torch.Tensor]:
    e = torch.arange(14, dtype=F64)[:, None]
    o = torch.arange(8, dtype=F64)[None, :]
    return {"normal": 2 * torch.sin(1.3 * e + 0.7 * o), "reduce": 2 * torch.cos(0.6 * e - 1.1 * o),
            "normal_edges": 3 * torch.cos(2.1 * e[:, 0]), "reduce_edges": 3 * torch.sin(0.8 * e[:, 0] + 0.5)}


def set_arch(space: CNNSearchSpace, arch: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for key, value in arch.items():
            if key in space.arch:
                space.arch[key].copy_(value)


# ----------------------------------------------------------------------------- channel shuffle
@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_shuffle_order_is_the_authors(channels_last: bool) -> None:
    x = torch.arange(2 * 12 * 2 * 2, dtype=F64).reshape(2, 12, 2, 2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # the authors' channel_shuffle(x, g)[0, :, 0, 0] for x[0, c, 0, 0] = c (12 channels), rescaled by 4 (H·W)
    out = channel_shuffle(x, 4)
    assert (out[0, :, 0, 0] / 4).tolist() == [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
    small = torch.arange(8, dtype=F64).reshape(1, 8, 1, 1)
    assert channel_shuffle(small, 4)[0, :, 0, 0].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert channel_shuffle(small, 2)[0, :, 0, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert torch.equal(out[:, :, 1, 1], x[:, [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11], 1, 1])  # every pixel alike
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# ----------------------------------------------------------------------------- the partial-channel edge
# The authors' MixedOp(8, stride) (K=4) on inputs(2, 8, 6, 6) with edge weights softmax(sin(0.9 · op + 0.3)):
# per-image, per-channel sums of its output, and sum(out · sin(0.11 · arange(out.numel()))).
AUTHORS_MIXED_OP = {
    1: ([[-0.411715681044, 2.794288138311, 0.571323663248, -1.693152355334, -0.969316102269, 0.474608051688,
          -1.991947982482, -1.507903544464],
         [0.483562094384, 1.341169269477, -0.438674955118, -2.593630127837, 1.26319889939, 2.388331303128,
          -0.293223245057, -1.285795949796]], -7.479409401189285),
    2: ([[-0.66549459995, 8.208456323003, 6.962985670449, 6.919604311762, -0.572899239499, 6.500112982476,
          6.878494435328, 6.613248276947],
         [0.66549459995, 7.925725289355, 6.57546189159, 7.415452104732, 0.572899239499, 7.838740784337,
          6.8357718901, 6.538944231839]], 15.861171685527417),
}


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_partial_channel_edge_equals_the_authors_mixed_op(stride: int, channels_last: bool) -> None:
    edge = PartialChannel(4)
    mixed = MixedOp(edge.op_channels(8), stride, PRIMITIVES).to(F64)
    fill(mixed.parameters())
    x = inputs(2, 8, 6, 6)
    if channels_last:
        mixed = mixed.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    weights = F.softmax(torch.sin(0.9 * torch.arange(8, dtype=F64) + 0.3), dim=-1)
    out = edge(mixed, x, weights.unbind(0), None)
    sums, checksum = AUTHORS_MIXED_OP[stride]
    assert out.shape == (2, 8, 6 // stride, 6 // stride)
    torch.testing.assert_close(out.sum(dim=(2, 3)), torch.tensor(sums, dtype=F64), rtol=0, atol=1e-10)
    pattern = torch.sin(torch.arange(out.numel(), dtype=F64) * 0.11).reshape(out.shape)
    assert (out * pattern).sum().item() == pytest.approx(checksum, abs=1e-10)


@pytest.mark.parametrize("stride", [1, 2])
def test_passed_channels_are_the_input_or_its_2x2_max_pool(stride: int) -> None:
    """With ``none`` as the only op, the mixed quarter is zero and the rest is the input's last 3/4 of channels,
    max-pooled 2×2 on stride-2 edges, in shuffled order."""
    edge = PartialChannel(4)
    mixed = MixedOp(edge.op_channels(8), stride, ["none"])
    x = torch.randn(2, 8, 6, 6)
    out = edge(mixed, x, [torch.tensor(1.0)], None)
    rest = x[:, 2:]
    if stride == 2:
        rest = rest.unflatten(2, (3, 2)).unflatten(4, (3, 2)).amax(dim=(3, 5))  # (B, 6, 3, 3): max of each 2x2 block
    assert torch.equal(out[:, 0::4], torch.zeros_like(out[:, 0::4]))  # group 0 of the shuffle: the mixed part
    # shuffled: output channel i·4 + g (g >= 1) is concatenated channel g·2 + i, i.e. passed channel (g-1)·2 + i
    unshuffled = torch.stack([out[:, i * 4 + g] for g in range(1, 4) for i in range(2)], dim=1)
    assert torch.equal(unshuffled, rest)


def test_ops_are_built_one_kth_wide_and_k_must_divide_the_channels() -> None:
    space = CNNSearchSpace(channels=8, num_cells=3, edge=PartialChannel(4), channels_last=False)
    darts = CNNSearchSpace(channels=8, num_cells=3, channels_last=False)
    for cell, cell_darts in zip(space.cells, darts.cells):
        c = cell.preprocess1.body[0].out_channels  # the cell's edge width
        for mixed, mixed_darts in zip(cell.edges, cell_darts.edges):
            assert [p.shape[0] for p in mixed.parameters()] == [p.shape[0] // 4 for p in mixed_darts.parameters()]
            assert {m.num_features for m in mixed.modules() if isinstance(m, nn.BatchNorm2d)} == {c // 4}
    assert WeightedSum().op_channels(12) == 12
    with pytest.raises(ConfigurationError, match=r"PartialChannel: k=4 does not divide the 6 channels.*channels 4"):
        CNNSearchSpace(channels=6, num_cells=3, edge=PartialChannel(4))
    with pytest.raises(ConfigurationError, match="PartialChannel: k=0 must be >= 1"):
        PartialChannel(0)


# ----------------------------------------------------------------------------- the whole search network
# The authors' Network(8, 10, 3).forward(inputs(2, 3, S, S)) after fill() and fixed_arch() (alphas and betas).
AUTHORS_LOGITS = {
    "cifar": [[-0.878315193649, 0.61217892561, 1.523966702437, 0.005185916078, -1.003940816983, 0.106798717632,
               0.442450808071, -0.984085711379, -1.022254216431, 0.854942934109],
              [-1.257587422363, 0.563186059783, 1.90956532421, 0.004386870309, -1.389436258883, 0.157376351497,
               0.821415217618, -1.083598588559, -1.388368641296, 1.001731750692]],
    "imagenet": [[0.281639932812, 0.817679397681, 0.424149645032, -0.362682381342, -0.408909889743, -0.142609858314,
                  -0.394790196843, -0.505893700451, 0.212243561995, 0.7988032002],
                 [0.712785827571, 1.634942184436, -0.112528464135, -1.110644534074, 0.224351721758, 0.523579942556,
                  -1.114076139858, -1.079202925343, 1.005560273357, 1.269672340172]],
}


@pytest.mark.parametrize(("stem", "k", "size"), [("cifar", 4, 16), ("imagenet", 2, 64)])
def test_search_network_equals_the_authors(stem: str, k: int, size: int) -> None:
    """Partial channels, channel shuffle, edge normalisation (per-node softmax of the betas scaling every edge), and
    for ImageNet the three-conv stem with a reduced first ``c_{k-2}``: the logits of the authors' networks."""
    space = CNNSearchSpace(channels=8, num_cells=3, edge=PartialChannel(k), edge_normalization=True, stem=stem).to(F64)
    fill(space.weight_parameters())
    set_arch(space, fixed_arch())
    logits = space.logits(inputs(2, 3, size, size))
    torch.testing.assert_close(logits, torch.tensor(AUTHORS_LOGITS[stem], dtype=F64), rtol=0, atol=1e-10)
    set_arch(space, {"normal_edges": torch.zeros(14), "reduce_edges": torch.zeros(14)})  # the betas matter
    assert (space.logits(inputs(2, 3, size, size)) - logits).abs().max() > 1e-3


def test_edge_weights_are_a_softmax_over_each_nodes_incoming_edges() -> None:
    space = CNNSearchSpace(channels=4, num_cells=3, edge_normalization=True)
    set_arch(space, fixed_arch())
    scales = space.edge_scales()
    assert set(scales) == {"normal", "reduce"}
    for cell in ("normal", "reduce"):
        beta = fixed_arch()[f"{cell}_edges"].float()
        expected = torch.cat([F.softmax(beta[a:b], dim=-1) for a, b in ((0, 2), (2, 5), (5, 9), (9, 14))])
        torch.testing.assert_close(scales[cell], expected)
    assert CNNSearchSpace(channels=4, num_cells=3).edge_scales() == {}


def test_edge_normalised_genotype_is_the_authors() -> None:
    # The authors' Network.genotype() on fixed_arch(): top-2 edges per node of softmax(alpha) × softmax_node(beta).
    expected = Genotype(
        normal=[("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 0),
                ("max_pool_3x3", 1), ("dil_conv_5x5", 2), ("dil_conv_5x5", 3), ("skip_connect", 0)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("dil_conv_3x3", 1), ("dil_conv_3x3", 0), ("max_pool_3x3", 0), ("dil_conv_5x5", 1),
                ("sep_conv_3x3", 3), ("sep_conv_3x3", 2), ("sep_conv_5x5", 0), ("sep_conv_5x5", 1)],
        reduce_concat=[2, 3, 4, 5])
    space = CNNSearchSpace(channels=4, num_cells=3, edge_normalization=True)
    set_arch(space, fixed_arch())
    assert space.genotype() == expected
    plain = CNNSearchSpace(channels=4, num_cells=3)  # the same alphas without betas pick other edges
    set_arch(plain, fixed_arch())
    assert plain.genotype().normal != expected.normal and plain.genotype().reduce != expected.reduce
    assert [op for op, _ in plain.genotype().normal][:2] == ["avg_pool_3x3", "max_pool_3x3"]


# ----------------------------------------------------------------------------- architecture tensors in the loop
def test_betas_are_architecture_tensors_and_learn() -> None:
    space = CNNSearchSpace(channels=4, num_cells=3, edge=PartialChannel(2), edge_normalization=True)
    names = [name for name, _ in space.named_arch_parameters()]
    assert names == ["arch.normal", "arch.reduce", "arch.normal_edges", "arch.reduce_edges"]
    assert space.cell_types == ["normal", "reduce"]  # monitors and relaxations read the op tensors only
    assert {p.shape for p in space.arch.values()} == {torch.Size([14, 8]), torch.Size([14])}
    arch_ids = {id(p) for p in space.arch_parameters()}
    assert not arch_ids & {id(p) for p in space.weight_parameters()}
    assert len(space.weight_parameters()) + len(arch_ids) == len(list(space.parameters()))
    model = LitSearch(space)
    weight_opt, arch_opt = model.configure_optimizers()
    assert {id(p) for group in arch_opt.param_groups for p in group["params"]} == arch_ids
    assert not arch_ids & {id(p) for group in weight_opt.param_groups for p in group["params"]}
    assert {f"space.{n}" for n in names} <= set(model._ddp_params_and_buffers_to_ignore)
    loss = space((torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))).loss
    grads = torch.autograd.grad(loss, space.arch_parameters())
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def run(root: Path, *extra: str) -> int:
    args = ["fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
            "--config", str(REPO / "configs" / "variants" / "pc_darts.yaml"),
            "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
            "--trainer.enable_model_summary", "false", "--model.init_args.space.init_args.channels", "4",
            "--model.init_args.space.init_args.num_cells", "3", "--data.init_args.batch_size", "16",
            "--model.init_args.warmup_epochs", "1", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
            "--trainer.default_root_dir", str(root), *extra]
    return run_cli(*args)


def test_overlay_on_the_quickstart_warms_up_then_learns_the_betas(tmp_path: Path, capsys) -> None:
    """Epoch 0 takes weight steps only (warmup_epochs), epoch 1 alpha and beta steps too; the betas are saved."""
    assert run(tmp_path) == 0, capsys.readouterr().err[-3000:]
    run_dir = the_run_dir(tmp_path)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    keys = ["space.arch.normal", "space.arch.reduce", "space.arch.normal_edges", "space.arch.reduce_edges"]
    assert set(keys) <= set(last["state_dict"]) and last["global_step"] == 6  # 2 + 2 weight steps, 2 alpha steps
    arch_state = last["optimizer_states"][1]["state"]  # Adam's state, in arch_parameters() order
    assert len(arch_state) == 4 and all(int(s["step"]) == 2 for s in arch_state.values())  # 4 iterations, 2 alpha
    assert all(s["exp_avg"].abs().sum() > 0 for s in arch_state.values())  # the betas got gradients too
    assert last["hyper_parameters"]["space"]["init_args"]["edge"]["init_args"]["k"] == 4
    restored = LitSearch.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt").space  # the config rebuilds it
    assert isinstance(restored.edge, PartialChannel) and restored.edge_normalization
    assert torch.equal(restored.arch["reduce_edges"], last["state_dict"]["space.arch.reduce_edges"])
    assert (run_dir / "genotype.json").is_file() and (run_dir / "alpha_history.json").is_file()


# ----------------------------------------------------------------------------- ImageNet search subsets
def _image_folder(root: Path, classes: int, per_class: int) -> None:
    from PIL import Image

    for split, n in (("train", per_class), ("val", 1)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8, 3), (c * 40 + i) % 256, np.uint8)).save(folder / f"{i}.png")


def test_imagenet_search_subsets_are_per_class_and_disjoint(tmp_path: Path) -> None:
    from darts_pl.data import ImageNetDataModule

    _image_folder(tmp_path, classes=3, per_class=40)
    data = ImageNetDataModule(str(tmp_path), mode="search", batch_size=1, num_workers=0, train_subset=0.1,
                              val_subset=0.025, color_jitter=False, crop_size=8, resize_size=8)
    data.setup()
    train, val = data.search_indices()
    targets = data._train_aug.targets
    assert sorted(targets[i] for i in train) == [0] * 4 + [1] * 4 + [2] * 4  # 10% of each class's 40
    assert sorted(targets[i] for i in val) == [0, 1, 2]  # 2.5% of 40
    assert not set(train) & set(val)
    assert (train, val) == data.search_indices()  # seeded
    assert "ColorJitter" not in repr(data.transforms()[0])
    with pytest.raises(ConfigurationError, match=r"train_subset=0\.1 and val_subset=None; set both"):
        ImageNetDataModule(str(tmp_path), train_subset=0.1)
    with pytest.raises(ConfigurationError, match="summing to at most 1"):
        ImageNetDataModule(str(tmp_path), train_subset=0.9, val_subset=0.2)


def test_imagenet_search_config_is_the_authors_recipe() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--config", action="config")
    for name in ("trainer", "model", "data"):
        parser.add_argument(f"--{name}", type=dict)
    parser.add_argument("--seed_everything", type=int)
    cfg = parser.parse_args(["--config", str(REPO / "configs" / "search_imagenet_pc_darts.yaml")])
    model, data = cfg.model["init_args"], cfg.data["init_args"]
    space = model["space"]["init_args"]
    assert (space["stem"], space["edge"]["init_args"]["k"], space["edge_normalization"]) == ("imagenet", 2, True)
    assert (space["channels"], space["num_cells"]) == (16, 8)
    assert model["weight_optimizer"]["init_args"]["lr"] == 0.5 and model["arch_optimizer"]["init_args"]["lr"] == 6e-3
    assert model["warmup_epochs"] == 35 and cfg.trainer["max_epochs"] == 50
    assert model["weight_scheduler"]["init_args"] == {"T_max": 50, "eta_min": 0.0}
    assert (data["batch_size"], data["train_subset"], data["val_subset"]) == (1024, 0.1, 0.025)


def test_monitor_logs_the_edge_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from darts_pl.callbacks import ArchitectureMonitor
    from darts_pl.callbacks.monitor import relaxation_of

    space = CNNSearchSpace(channels=4, num_cells=3, edge_normalization=True)
    set_arch(space, fixed_arch())
    module = LitSearch(space)
    logged: dict[str, float] = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.__setitem__(name, value))
    probs = space.edge_probs()
    ArchitectureMonitor()._log_scalars(module, probs, space.primitives, space.genotype(), relaxation_of(space))
    assert len([key for key in logged if key.startswith("edge_weight/")]) == 28
    assert logged["edge_weight/reduce/edge_13"] == pytest.approx(space.edge_scales()["reduce"][13].item())
    assert logged["edge_weight/normal/edge_00"] + logged["edge_weight/normal/edge_01"] == pytest.approx(1.0)
    assert "alpha/normal/edge_13/dil_conv_5x5" in logged


def test_edge_normalisation_without_partial_channels() -> None:
    """Any edge takes the edge weights (``Edge.scaled``); ``PartialChannel(1)`` folds them into its op weights and
    passes no channel by, so the two spaces compute the same function."""
    x = inputs(2, 3, 16, 16)
    logits = []
    for edge in (WeightedSum(), PartialChannel(1)):
        space = CNNSearchSpace(channels=4, num_cells=3, edge=edge, edge_normalization=True).to(F64)
        fill(space.weight_parameters())
        set_arch(space, fixed_arch())
        logits.append(space.logits(x))
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-10)
