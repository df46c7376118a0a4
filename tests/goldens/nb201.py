"""NAS-Bench-201 expected values of tests/test_nb201.py, from the authors' code.

Upstream: D-X-Y/AutoDL-Projects, commit f46486e21b71ae6459a700be720d7648b5429569, files
``xautodl/models/cell_searchs/genotypes.py`` (``Structure.str2structure``, ``tostr``),
``xautodl/models/cell_searchs/search_cells.py`` (``NAS201SearchCell``),
``xautodl/models/cell_searchs/search_model_darts.py`` (``TinyNetworkDarts``, its ``forward`` and ``genotype``),
``xautodl/models/cell_searchs/search_model_gdas.py`` (``TinyNetworkGDAS``, its ``forward``: Gumbel noise from the
global generator, ``NAS201SearchCell.forward_gdas``) and ``xautodl/models/cell_infers/tiny_network.py``
(``TinyNetwork`` with ``InferCell``).

Run: ``python tests/goldens/nb201.py /path/to/AutoDL-Projects`` (float64, CPU, train-mode BatchNorm). Prints, for

- ``test_arch_string_parses_as_the_authors_structure``: ``Structure.str2structure(BENCHMARK_STRING).nodes``;
- ``test_cell_matches_the_authors_nas201searchcell``: the sum, the sum of squares, ``out[0, :, 0, 0]`` and
  ``out[1, 2, 4, :]`` of ``NAS201SearchCell(3, 3, 1, 4, NAS_BENCH_201, False, True)``;
- ``test_supernet_matches_the_authors``: ``SUPERNET`` (loss, logits and alpha gradient of ``TinyNetworkDarts`` /
  ``TinyNetworkGDAS(4, 1, 4, 10, NAS_BENCH_201, False, True)``; GDAS with tau 10 after ``torch.manual_seed(5)``) and
  ``genotype().tostr()``;
- ``test_derivation_is_the_argmax_of_every_edge_none_included``: ``TinyNetworkDarts.genotype().tostr()`` on the
  test's alphas;
- ``test_supernet_parameters_are_the_authors_without_their_cancelled_biases``: the parameter counts of
  ``TinyNetworkDarts(16, 5, 4, 10, NAS_BENCH_201, False, True)`` (all, alphas, search-convolution biases, others);
- ``test_parameter_counts_match_the_benchmark_network``: ``TinyNetwork(16, 5, str2structure(text), classes)`` for
  10, 100 and 120 classes;
- ``test_derived_network_matches_the_authors_tinynetwork``: the logits and parameter count of
  ``TinyNetwork(4, 1, str2structure(EVERY_OP), 10)``.

How the test's inputs reach the authors' code: weights are filled as the test's ``fill`` (``0.5 · N(0, 1)`` from a
generator seeded as the test seeds it, in parameter order). The authors' search convolutions carry a bias
(``bias=not affine``) that the project's do not; those biases are left out of that order and filled from a generator
seeded 99. The train-mode BatchNorm after each of them subtracts the batch mean, so they cancel. The alphas of
``TinyNetworkDarts`` / ``TinyNetworkGDAS`` are a registered parameter; they are set to the test's and left out of
the weight order too.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from _upstream import F64, checkout, fill_randn, on_path, section, show

ROOT = checkout("xautodl/models/cell_searchs/search_model_darts.py")
on_path(ROOT)

from xautodl.models.cell_infers.tiny_network import TinyNetwork  # noqa: E402
from xautodl.models.cell_operations import SearchSpaceNames  # noqa: E402
from xautodl.models.cell_searchs import CellStructure, TinyNetworkDarts, TinyNetworkGDAS  # noqa: E402
from xautodl.models.cell_searchs.search_cells import NAS201SearchCell  # noqa: E402

NB201 = SearchSpaceNames["nas-bench-201"]
BENCHMARK_STRING = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
EVERY_OP = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def randn(*shape: int, seed: int) -> torch.Tensor:
    """tests/test_nb201.py ``randn``."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def search_conv_biases(net: nn.Module) -> list[nn.Parameter]:
    return [m.bias for m in net.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]


def fill_search(net: nn.Module, seed: int, skip: tuple[nn.Parameter, ...] = ()) -> None:
    """The test's fill on every weight but the authors' search-conv biases (filled apart) and ``skip``."""
    biases = search_conv_biases(net)
    apart = {id(p) for p in (*biases, *skip)}
    fill_randn([p for p in net.parameters() if id(p) not in apart], seed)
    fill_randn(biases, 99)


def structure() -> None:
    section("test_arch_string_parses_as_the_authors_structure")
    show("nodes", CellStructure.str2structure(BENCHMARK_STRING).nodes)


def cell() -> None:
    section("test_cell_matches_the_authors_nas201searchcell")
    search_cell = NAS201SearchCell(3, 3, 1, 4, NB201, False, True).double()
    fill_search(search_cell, 10)
    out = search_cell(randn(2, 3, 5, 5, seed=1), F.softmax(randn(6, 5, seed=2), dim=-1)).detach()
    show("sum", out.sum().item(), 12)
    show("sum_of_squares", (out ** 2).sum().item(), 12)
    show("out_0_c_0_0", out[0, :, 0, 0], 12)
    show("out_1_2_4_w", out[1, 2, 4, :], 12)


def supernet() -> None:
    section("test_supernet_matches_the_authors")
    expected, genotypes = {}, {}
    for method, cls in (("darts", TinyNetworkDarts), ("gdas", TinyNetworkGDAS)):
        net = cls(4, 1, 4, 10, NB201, False, True).double()
        fill_search(net, 20, skip=(net.arch_parameters,))
        with torch.no_grad():
            net.arch_parameters.copy_(randn(6, 5, seed=2) * 0.5)
        torch.manual_seed(5)  # GDAS: the Gumbel noise of its forward; DARTS draws none
        _, logits = net(randn(2, 3, 8, 8, seed=1))
        loss = F.cross_entropy(logits, torch.tensor([3, 7]))
        (grad,) = torch.autograd.grad(loss, net.arch_parameters)
        expected[method] = {"loss": loss.item(), "logits": logits.detach().flatten(), "alpha_grad": grad.flatten()}
        genotypes[method] = net.genotype().tostr()
    show("SUPERNET", expected, 12)
    show("genotype", genotypes)


def argmax_derivation() -> None:
    section("test_derivation_is_the_argmax_of_every_edge_none_included")
    net = TinyNetworkDarts(2, 1, 4, 10, NB201, False, True)
    with torch.no_grad():
        net.arch_parameters.copy_(torch.tensor([[2., 1, 0, 0, 0], [0, 3, 1, 0, 0], [0, 0, 0, 5, 0], [1, 1, 0, 0, 0],
                                                [0, 0, 0, 0, 4], [0, 0, 2, 0, 0]]))
    show("expected", net.genotype().tostr())


def parameter_counts() -> None:
    section("test_supernet_parameters_are_the_authors_without_their_cancelled_biases")
    net = TinyNetworkDarts(16, 5, 4, 10, NB201, False, True)
    total = sum(p.numel() for p in net.parameters())
    alphas = net.arch_parameters.numel()
    biases = sum(p.numel() for p in search_conv_biases(net))
    show("counts", {"all": total, "alphas": alphas, "search_conv_biases": biases, "others": total - alphas - biases})
    section("test_parameter_counts_match_the_benchmark_network")
    counts = {}
    for name, text in (("ALL_3X3", ALL_3X3), ("BENCHMARK_STRING", BENCHMARK_STRING), ("ALL_NONE", ALL_NONE)):
        genotype = CellStructure.str2structure(text)
        counts[name] = tuple(sum(p.numel() for p in TinyNetwork(16, 5, genotype, classes).parameters())
                             for classes in (10, 100, 120))
    show("counts", counts)


def derived_network() -> None:
    section("test_derived_network_matches_the_authors_tinynetwork")
    net = TinyNetwork(4, 1, CellStructure.str2structure(EVERY_OP), 10).double()
    fill_randn(net.parameters(), 30)
    _, logits = net(randn(2, 3, 8, 8, seed=1))
    show("parameters", sum(p.numel() for p in net.parameters()))
    show("expected", logits.detach().flatten(), 12)


if __name__ == "__main__":
    structure()
    cell()
    supernet()
    argmax_derivation()
    parameter_counts()
    derived_network()
