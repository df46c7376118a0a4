"""Derived CNNs: parameter counts against the paper, shapes, drop path, auxiliary heads, export."""
from __future__ import annotations

import pytest
import torch

from darts_pl.errors import ConfigurationError
from darts_pl.export import export_program, load_network, save_network
from darts_pl.genotypes import DARTS_V2, RNN_DARTS_V2, GenotypeError, to_dict
from darts_pl.networks import (
    AuxiliaryHeadCIFAR,
    AuxiliaryHeadImageNet,
    Cell,
    NetworkCIFAR,
    NetworkImageNet,
    count_parameters,
)
from darts_pl.networks.cnn import drop_path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)



# ----------------------------------------------------------------------------- the paper's sizes
def test_cifar_parameter_count_matches_paper() -> None:
    net = NetworkCIFAR(DARTS_V2, channels=36, num_cells=20, num_classes=10, auxiliary=True)
    n = count_parameters(net)
    assert n == 3_349_342  # the original code logs "param size = 3.349342MB" (tests/goldens/darts.py)
    assert round(n / 1e6, 1) == 3.3  # paper, Table 1
    assert count_parameters(net, auxiliary=True) == 3_825_768  # the auxiliary head is not counted
    assert count_parameters(NetworkCIFAR(DARTS_V2, 36, 20, auxiliary=False)) == n


def test_imagenet_parameter_count_matches_paper() -> None:
    net = NetworkImageNet(DARTS_V2, channels=48, num_cells=14, num_classes=1000, auxiliary=True)
    n = count_parameters(net)
    assert n == 4_718_752  # tests/goldens/darts.py
    assert round(n / 1e6, 1) == 4.7  # paper, Table 3
    assert count_parameters(net, auxiliary=True) == 5_979_528


def test_imagenet_auxiliary_head_has_no_bn_after_768_conv() -> None:
    bns = lambda head: [m.num_features for m in head.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # noqa: E731
    assert bns(AuxiliaryHeadImageNet(64, 10)) == [128]
    assert bns(AuxiliaryHeadCIFAR(64, 10)) == [128, 768]


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("auxiliary", [True, False])
def test_cifar_forward_backward_shapes(auxiliary: bool) -> None:
    net = NetworkCIFAR(DARTS_V2, channels=4, num_cells=3, num_classes=7, auxiliary=auxiliary)
    x = torch.randn(3, 3, 32, 32)
    net.train()
    logits, aux = net(x)
    assert logits.shape == (3, 7)
    assert (aux.shape == (3, 7)) if auxiliary else aux is None
    loss = logits.logsumexp(1).sum() + (aux.logsumexp(1).sum() if auxiliary else 0)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
    net.eval()
    with torch.no_grad():
        logits, aux = net(x)
    assert logits.shape == (3, 7) and aux is None  # the head only runs in training


@pytest.mark.parametrize("auxiliary", [True, False])
def test_imagenet_forward_shapes(auxiliary: bool) -> None:
    net = NetworkImageNet(DARTS_V2, channels=8, num_cells=3, num_classes=5, auxiliary=auxiliary).train()
    x = torch.randn(2, 3, 224, 224)
    logits, aux = net(x)
    assert logits.shape == (2, 5)
    assert (aux.shape == (2, 5)) if auxiliary else aux is None
    (logits.sum() + (aux.sum() if auxiliary else 0)).backward()
    assert all(p.grad is not None for p in net.parameters())
    with torch.no_grad():
        assert net.eval()(x[:1])[1] is None


def test_wrong_input_sizes_are_explained() -> None:
    with pytest.raises(ConfigurationError, match="224"):
        NetworkImageNet(DARTS_V2, channels=8, num_cells=3, num_classes=5).eval()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ConfigurationError, match=r"8×8.*auxiliary=False"):
        NetworkCIFAR(DARTS_V2, channels=4, num_cells=3, auxiliary=True, in_channels=1).train()(
            torch.randn(2, 1, 8, 8))


def test_cell_layout_follows_genotype() -> None:
    normal = Cell(DARTS_V2, 12, 12, 4, reduction=False, reduction_prev=False)
    reduce = Cell(DARTS_V2, 12, 16, 8, reduction=True, reduction_prev=False)
    after = Cell(DARTS_V2, 16, 32, 8, reduction=False, reduction_prev=True)
    # Drop path everywhere but on identities: DARTS_V2's normal cell has two stride-1 skips.
    assert normal.drops == [name != "skip_connect" for name, _ in DARTS_V2.normal]
    # In the reduction cell the skips read node 2 (stride 1, identity); max pools read the inputs (stride 2).
    assert reduce.drops == [name != "skip_connect" for name, _ in DARTS_V2.reduce]
    assert [op.stride for op, (name, i) in zip(reduce.ops, DARTS_V2.reduce) if name == "max_pool_3x3"] == [2] * 5
    assert type(after.preprocess0).__name__ == "FactorizedReduce"
    assert type(normal.preprocess0).__name__ == "ReLUConvBN"
    s0, s1 = torch.randn(2, 16, 16, 16), torch.randn(2, 32, 8, 8)
    assert after(s0, s1).shape == (2, 4 * 8, 8, 8)


# ----------------------------------------------------------------------------- drop path
def test_drop_path_zeroes_whole_examples_and_rescales() -> None:
    x = torch.ones(400, 2, 3, 3)
    y = drop_path(x, 0.25)
    per_example = y.flatten(1)
    kept = per_example[per_example != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.75))
    assert (per_example == per_example[:, :1]).all()  # one decision per example
    dropped = (per_example[:, 0] == 0).float().mean().item()
    assert 0.15 < dropped < 0.35
    assert drop_path(x, 0.0) is x


def test_drop_path_changes_outputs_only_in_training() -> None:
    net = NetworkCIFAR(DARTS_V2, channels=4, num_cells=3, num_classes=5)
    x = torch.randn(4, 3, 32, 32)
    net.drop_path_prob = 0.0
    net.train()
    reference = net(x)[0]
    assert torch.equal(net(x)[0], reference)  # deterministic without drop path
    net.drop_path_prob = 0.5
    assert not torch.allclose(net(x)[0], reference)
    net.eval()
    with torch.no_grad():
        net.drop_path_prob = 0.0
        plain = net(x)[0]
        net.drop_path_prob = 0.5
        assert torch.equal(net(x)[0], plain)


# ----------------------------------------------------------------------------- genotypes
def test_networks_take_names_mappings_and_refuse_bad_genotypes() -> None:
    by_name = NetworkCIFAR("DARTS_V2", channels=4, num_cells=3)
    by_mapping = NetworkCIFAR(to_dict(DARTS_V2), channels=4, num_cells=3)
    assert by_name.genotype == by_mapping.genotype == DARTS_V2
    with pytest.raises(GenotypeError, match="recurrent"):
        NetworkCIFAR(RNN_DARTS_V2, channels=4, num_cells=3)
    bad = to_dict(DARTS_V2)
    bad["normal"][3] = ["sep_conv_9x9", 1]
    with pytest.raises(GenotypeError, match="sep_conv_9x9"):
        NetworkCIFAR(bad, channels=4, num_cells=3)
    bad = to_dict(DARTS_V2)
    bad["reduce"][7] = ["max_pool_3x3", 6]  # node 3 may read 0..4
    with pytest.raises(GenotypeError, match="out of range"):
        NetworkCIFAR(bad, channels=4, num_cells=3)
    with pytest.raises(ConfigurationError, match="num_cells=2"):
        NetworkCIFAR(DARTS_V2, channels=4, num_cells=2)


# ----------------------------------------------------------------------------- export
def test_save_and_load_network_round_trip(tmp_path) -> None:
    net = NetworkCIFAR(DARTS_V2, channels=4, num_cells=3, num_classes=6, auxiliary=True, in_channels=1)
    net.train()
    net(torch.randn(4, 1, 32, 32))  # move the BatchNorm running statistics off their initial values
    path = save_network(net, tmp_path / "net.pt")
    loaded = load_network(path)
    assert type(loaded) is NetworkCIFAR and not loaded.training
    assert loaded.genotype == DARTS_V2 and loaded.auxiliary and loaded.in_channels == 1
    x = torch.randn(2, 1, 32, 32)
    net.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], net(x)[0])
    payload = torch.load(path, weights_only=True)  # only plain data inside
    assert payload["class"] == "NetworkCIFAR" and payload["args"]["genotype"] == to_dict(DARTS_V2)
    with pytest.raises(ConfigurationError, match="not a darts_pl network file"):
        torch.save({"state_dict": {}}, tmp_path / "other.pt")
        load_network(tmp_path / "other.pt")


def test_torch_export_matches_eval_network(tmp_path) -> None:
    net = NetworkCIFAR(DARTS_V2, channels=4, num_cells=3, num_classes=5, auxiliary=True)
    net.drop_path_prob = 0.3
    net.train()
    net(torch.randn(4, 3, 32, 32))
    program = export_program(net, torch.randn(2, 3, 32, 32), path=tmp_path / "net.pt2")
    assert net.training  # the mode is restored
    exported = torch.export.load(str(tmp_path / "net.pt2")).module()
    net.eval()
    x = torch.randn(3, 3, 32, 32)  # another batch size: the batch dimension is dynamic
    with torch.no_grad():
        expected = net(x)[0]
        torch.testing.assert_close(exported(x), expected)
        torch.testing.assert_close(program.module()(x), expected)


# ----------------------------------------------------------------------------- deterministic CUDA backward
@pytest.mark.parametrize("kind", ["cifar", "search"])
def test_global_pooling_is_a_mean_with_the_outputs_of_adaptive_avg_pool(kind: str) -> None:
    """AdaptiveAvgPool2d has no deterministic CUDA backward (``--trainer.deterministic true`` raises on a
    GPU); the mean over H, W is the same sum: the networks use it, with identical outputs. (The ImageNet
    network pools with the original's AvgPool2d(7), whose CUDA backward is deterministic.)"""
    import copy

    from darts_pl.search import CNNSearchSpace

    if kind == "cifar":
        net, x = NetworkCIFAR(DARTS_V2, channels=4, num_cells=3, auxiliary=True), torch.randn(2, 3, 32, 32)
    else:
        net, x = CNNSearchSpace(channels=4, num_cells=3), torch.randn(2, 3, 8, 8)
    imagenet = NetworkImageNet(DARTS_V2, channels=4, num_cells=3, auxiliary=True)
    for model in (net, imagenet):
        assert not [m for m in model.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d)]
    twin = copy.deepcopy(net)
    twin.global_pooling = torch.nn.AdaptiveAvgPool2d(1)
    run = (lambda m: m.logits(x)) if kind == "search" else (lambda m: m.eval()(x)[0])
    assert torch.equal(run(net), run(twin))
