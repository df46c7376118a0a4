"""Using a trained derived network outside darts_pl.

Two forms:

* ``save_network(network, "cell.pt")`` writes one file holding the genotype, the constructor arguments
  and the ``state_dict``; ``load_network("cell.pt")`` rebuilds the plain ``nn.Module`` (``NetworkCIFAR``
  or ``NetworkImageNet``) in eval mode in one call. The file holds only tensors, strings and numbers, so
  it loads with ``torch.load(..., weights_only=True)``; it needs darts_pl to rebuild the module.
* ``export_program(network, example)`` traces the network in eval mode with ``torch.export`` (batch size
  dynamic) into an ``ExportedProgram`` that maps images to logits; ``torch.export.save`` writes it as a
  ``.pt2`` file that runs without darts_pl (``torch.export.load(path).module()(x)``).

Example::

    from darts_pl.export import load_network, save_network
    model = LitClassifier.load_from_checkpoint("runs/train_cifar/.../last.ckpt")
    save_network(model, "darts_v2_cifar10.pt")
    network = load_network("darts_v2_cifar10.pt")
    logits, _ = network(images)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from darts_pl.atomic import atomic_open
from darts_pl.errors import ConfigurationError, DataNotFoundError
from darts_pl.networks.cnn import NetworkCIFAR, NetworkImageNet

FORMAT = "darts_pl.network"
VERSION = 1
NETWORK_CLASSES: dict[str, type[NetworkCIFAR] | type[NetworkImageNet]] = {
    "NetworkCIFAR": NetworkCIFAR,
    "NetworkImageNet": NetworkImageNet,
}


def _network(obj: nn.Module) -> NetworkCIFAR | NetworkImageNet:
    """The derived network itself, or the one a LightningModule (``LitClassifier``) holds as ``network``."""
    network = getattr(obj, "network", obj)
    if not isinstance(network, (NetworkCIFAR, NetworkImageNet)):
        raise ConfigurationError(f"Expected a NetworkCIFAR, a NetworkImageNet or a LitClassifier, got "
                                 f"{type(obj).__name__}.")
    return network


def save_network(network: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write the genotype, constructor arguments and weights of ``network`` to ``path`` (atomically)."""
    net = _network(network)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "class": type(net).__name__,
        "args": net.constructor_args(),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)
    return Path(path)


def load_network(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> nn.Module:
    """The network ``save_network`` wrote, with its weights, in eval mode."""
    try:
        payload: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataNotFoundError(f"Network file {str(path)!r} does not exist.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigurationError(f"{str(path)!r} is not a darts_pl network file (written by save_network); "
                                 "for a Lightning checkpoint use LitClassifier.load_from_checkpoint.")
    if payload.get("version") != VERSION or payload.get("class") not in NETWORK_CLASSES:
        raise ConfigurationError(f"{str(path)!r}: unsupported network file (version {payload.get('version')}, "
                                 f"class {payload.get('class')!r}); this darts_pl reads version {VERSION} of "
                                 f"{', '.join(NETWORK_CLASSES)}.")
    network = NETWORK_CLASSES[payload["class"]](**payload["args"])
    network.load_state_dict(payload["state_dict"])
    return network.to(map_location).eval()


class _Logits(nn.Module):
    """The network in eval mode as a plain images → logits function (no auxiliary output)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[0]


def export_program(network: nn.Module, example: torch.Tensor, dynamic_batch: bool = True,
                   path: str | os.PathLike[str] | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` the derived network (eval mode: no drop path, no auxiliary head) as images → logits.

    Args:
        network: A ``NetworkCIFAR``/``NetworkImageNet`` or a ``LitClassifier``.
        example: An input batch of the size the network is meant for (e.g. ``(2, 3, 32, 32)``).
        dynamic_batch: Let the batch dimension vary (an example batch of at least 2 is then needed).
        path: Also write the program there (``.pt2``), loadable with ``torch.export.load``.
    """
    net = _network(network)
    was_training = net.training
    net.eval()
    try:
        dynamic = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
        with torch.no_grad():
            program = torch.export.export(_Logits(net), (example,), dynamic_shapes=dynamic)
    finally:
        net.train(was_training)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, str(path))
    return program
