"""Λ-DARTS expected values of tests/test_samplers.py, from the authors' code.

Upstream: dr-faustus/Lambda-DARTS, commit c7ac3ba6c9462cad657f8042852dd99fcd9eeebb, files ``sota/cnn/model_search.py``
(``Network.forward`` with ``updateType='weight'`` and ``pert``, ``softmax_arch_parameters``, ``get_corr``,
``get_perturbations``, ``get_reg_grads``), ``sota/cnn/spaces.py`` (``spaces_dict['s5']``, the DARTS ops without
``none``) and ``sota/cnn/train_search.py`` (``train``: the weight step that calls them, reproduced below call by call,
and the ``lambda_`` of each epoch in ``main``).

Run: ``python tests/goldens/lambda_darts.py /path/to/Lambda-DARTS`` (float64, CPU). Prints, for

- ``test_cell_gradient_alignment_matches_the_authors_weight_step``: on their 5-cell, 4-channel supernet (3 normal
  cells) with the test's weights (``fill``), alphas and batch, for ``corr`` and ``signcorr`` with λ 0.25 and ε0 1e-3:
  the training loss, the mean gradient cosine of the normal cells (``get_corr``), ``epsilon``, the perturbation of
  normal cell 0 (row 3), and the weights' gradients after ``get_reg_grads`` and before it, each as three fixed
  projections of all the weights' gradients (``PROJECTIONS``) and the classifier bias's gradient;
- ``test_lambda_schedule_is_linear_to_the_last_epoch``: ``lambda_`` of epochs 0, 1, 25, 49 of 50.

How the test's inputs reach the authors' code: their weight step lives in ``train_search.py``'s ``train()``, which
parses the command line when imported; its calls on the model (``softmax_arch_parameters``, the forward with
``updateType='weight'``, ``backward``, ``get_perturbations``, the two ``autograd.grad`` passes with ``pert=u`` and
``pert=-u``, ``get_reg_grads``) are made here in its order. Stubbed: ``Tensor.cuda`` returns the tensor itself; the
network is built with float64 as the default dtype.
"""
from __future__ import annotations

import ast

import torch
import torch.nn as nn
from _upstream import F64, assigned_value, checkout, evaluate, fill_sin, on_path, section, show

ROOT = checkout("sota/cnn/model_search.py")
on_path(ROOT)
torch.Tensor.cuda = lambda self, *args, **kwargs: self  # stub: CPU only

from sota.cnn.model_search import Network  # noqa: E402
from sota.cnn.spaces import spaces_dict  # noqa: E402


def inputs() -> dict[str, torch.Tensor]:
    """tests/test_samplers.py ``lambda_inputs``."""
    e, k = torch.arange(14, dtype=F64)[:, None], torch.arange(7, dtype=F64)[None, :]
    i = torch.arange(2 * 3 * 8 * 8, dtype=F64)
    return {"alpha_n": 0.4 * torch.sin(1.2 * e + 0.8 * k), "alpha_r": 0.4 * torch.cos(0.7 * e - 0.5 * k),
            "x": (torch.sin(0.37 * i) + 0.5 * torch.cos(1.3 * i)).reshape(2, 3, 8, 8), "y": torch.tensor([3, 7])}


def projections(grads: list[torch.Tensor]) -> list[float]:
    """Three fixed projections of every weight's gradient, in parameter order (tests/test_samplers.py)."""
    flat = torch.cat([g.flatten() for g in grads])
    i = torch.arange(flat.numel(), dtype=F64)
    return [float(flat @ torch.sin(0.13 * i)), float(flat @ torch.cos(0.029 * i + 1.0)), float(flat.norm())]


def weight_step(v: dict[str, torch.Tensor], kind: str) -> dict[str, object]:
    torch.set_default_dtype(F64)
    try:
        net = Network(4, 10, 5, nn.CrossEntropyLoss(), spaces_dict["s5"], epsilon_0=1e-3, lambda_=0.25,
                      corr_type=kind)
    finally:
        torch.set_default_dtype(torch.float32)
    fill_sin(net.parameters())
    with torch.no_grad():
        net.alphas_normal.copy_(v["alpha_n"])
        net.alphas_reduce.copy_(v["alpha_r"])
    criterion = nn.CrossEntropyLoss()
    net.train()
    net.softmax_arch_parameters()  # train(): the weight step runs at softmax(alpha)
    loss = criterion(net(v["x"], updateType="weight"), v["y"])
    loss.backward()
    plain = [p.grad.detach().clone() for p in net.parameters()]
    corr = net.get_corr()
    u = net.get_perturbations()
    forward_grads = torch.autograd.grad(criterion(net(v["x"], pert=u, updateType="weight"), v["y"]),
                                        net.parameters())
    backward_grads = torch.autograd.grad(criterion(net(v["x"], pert=[-u_ for u_ in u], updateType="weight"),
                                                   v["y"]), net.parameters())
    net.get_reg_grads(forward_grads, backward_grads)
    full = [p.grad.detach().clone() for p in net.parameters()]
    return {"loss": float(loss.detach()), "corr": corr, "epsilon": net.epsilon,
            "pert_normal0_row3": u[0][3] / net.epsilon, "plain": projections(plain), "full": projections(full),
            "reg": projections([f - p for f, p in zip(full, plain)]), "classifier_bias": full[-1]}


def alignment(v: dict[str, torch.Tensor]) -> None:
    section("test_cell_gradient_alignment_matches_the_authors_weight_step")
    show("AUTHORS_STEP", {kind: weight_step(v, kind) for kind in ("corr", "signcorr")}, 13)


def schedule() -> None:
    section("test_lambda_schedule_is_linear_to_the_last_epoch")
    expression = assigned_value(ROOT / "sota/cnn/train_search.py", "model.lambda_", contains="epoch")
    print(f"# model.lambda_ = {ast.unparse(expression)}")

    class Args:
        lambda_, epochs = 0.125, 50

    show("LAMBDAS", [evaluate(expression, args=Args, epoch=e) for e in (0, 1, 25, 49)])


if __name__ == "__main__":
    alignment(inputs())
    schedule()
