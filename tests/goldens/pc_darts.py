"""PC-DARTS expected values of tests/test_pc_darts.py, from the authors' code.

Upstream: yuhuixu1993/PC-DARTS, commit b74702f86c70e330ce0db35762cfade9df026bb7, files ``model_search.py``
(``channel_shuffle``, ``MixedOp`` with K=4, ``Network.forward`` with the CIFAR stem, ``Network.genotype``) and
``model_search_imagenet.py`` (``Network.forward`` with the three-convolution stem, K=2).

Run: ``python tests/goldens/pc_darts.py /path/to/PC-DARTS`` (float64, CPU, train mode). Prints, for

- ``test_channel_shuffle_order_is_the_authors``: ``channel_shuffle(x, 4)[0, :, 0, 0] / 4`` for the test's
  2×12×2×2 ``arange`` and the orders for 8 channels with 4 and 2 groups;
- ``test_partial_channel_edge_equals_the_authors_mixed_op``: ``AUTHORS_MIXED_OP`` (per-image, per-channel sums of
  ``MixedOp(8, stride)`` on ``inputs(2, 8, 6, 6)``, and the checksum ``sum(out · sin(0.11 · arange))``);
- ``test_search_network_equals_the_authors``: ``AUTHORS_LOGITS`` (``Network(8, 10, 3)`` on ``inputs(2, 3, S, S)``,
  S = 16 for CIFAR, 64 for ImageNet);
- ``test_edge_normalised_genotype_is_the_authors``: ``Network.genotype()`` on ``fixed_arch()``.

Every weight is filled by ``fill`` in the order of ``parameters()`` (the authors' alphas and betas are plain tensors,
not parameters, and are set to ``fixed_arch()``). The networks are built with float64 as the default dtype, so
their alphas and betas are float64 too. Stubbed: ``Tensor.cuda`` returns the tensor itself.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from _upstream import F64, checkout, fill_sin, on_path, section, show

ROOT = checkout("model_search_imagenet.py")
on_path(ROOT)
torch.Tensor.cuda = lambda self, *args, **kwargs: self  # stub: CPU only

import model_search  # noqa: E402
import model_search_imagenet  # noqa: E402


def inputs(*shape: int) -> torch.Tensor:
    """tests/test_pc_darts.py ``inputs``."""
    i = torch.arange(int(np.prod(shape)), dtype=F64)
    return (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i)).reshape(shape)


def fixed_arch() -> dict[str, torch.Tensor]:
    """tests/test_pc_darts.py ``fixed_arch``."""
    e = torch.arange(14, dtype=F64)[:, None]
    o = torch.arange(8, dtype=F64)[None, :]
    return {"normal": 2 * torch.sin(1.3 * e + 0.7 * o), "reduce": 2 * torch.cos(0.6 * e - 1.1 * o),
            "normal_edges": 3 * torch.cos(2.1 * e[:, 0]), "reduce_edges": 3 * torch.sin(0.8 * e[:, 0] + 0.5)}


def build(cls: type, *args: object) -> nn.Module:
    torch.set_default_dtype(F64)
    try:
        return cls(*args)
    finally:
        torch.set_default_dtype(torch.float32)


def set_arch(net: nn.Module) -> None:
    arch = fixed_arch()
    with torch.no_grad():
        net.alphas_normal.copy_(arch["normal"])
        net.alphas_reduce.copy_(arch["reduce"])
        net.betas_normal.copy_(arch["normal_edges"])
        net.betas_reduce.copy_(arch["reduce_edges"])


def shuffle() -> None:
    section("test_channel_shuffle_order_is_the_authors")
    x = torch.arange(2 * 12 * 2 * 2, dtype=F64).reshape(2, 12, 2, 2)
    show("order_12", (model_search.channel_shuffle(x, 4)[0, :, 0, 0] / 4).int())
    small = torch.arange(8, dtype=F64).reshape(1, 8, 1, 1)
    show("order_8_groups_4", model_search.channel_shuffle(small, 4)[0, :, 0, 0].int())
    show("order_8_groups_2", model_search.channel_shuffle(small, 2)[0, :, 0, 0].int())


def mixed_op() -> None:
    section("test_partial_channel_edge_equals_the_authors_mixed_op")
    expected = {}
    for stride in (1, 2):
        mixed = build(model_search.MixedOp, 8, stride)
        fill_sin(mixed.parameters())
        weights = F.softmax(torch.sin(0.9 * torch.arange(8, dtype=F64) + 0.3), dim=-1)
        with torch.no_grad():
            out = mixed(inputs(2, 8, 6, 6), weights)
        pattern = torch.sin(torch.arange(out.numel(), dtype=F64) * 0.11).reshape(out.shape)
        expected[stride] = (out.sum(dim=(2, 3)), float((out * pattern).sum()))
    show("AUTHORS_MIXED_OP", expected, 13)


def logits() -> None:
    section("test_search_network_equals_the_authors")
    expected = {}
    for stem, module, size in (("cifar", model_search, 16), ("imagenet", model_search_imagenet, 64)):
        net = build(module.Network, 8, 10, 3, nn.CrossEntropyLoss())
        fill_sin(net.parameters())
        set_arch(net)
        with torch.no_grad():
            expected[stem] = net(inputs(2, 3, size, size))
    show("AUTHORS_LOGITS", expected, 13)


def genotype() -> None:
    section("test_edge_normalised_genotype_is_the_authors")
    net = build(model_search.Network, 4, 10, 3, nn.CrossEntropyLoss())
    set_arch(net)
    gene = net.genotype()
    show("normal", gene.normal)
    show("normal_concat", list(gene.normal_concat))
    show("reduce", gene.reduce)
    show("reduce_concat", list(gene.reduce_concat))


if __name__ == "__main__":
    shuffle()
    mixed_op()
    logits()
    genotype()
