"""What the golden scripts share: the upstream checkout named on the command line, values computed by an expression
of the authors' training scripts (where a schedule is written inline in their ``main()`` and no function holds it),
stand-in modules for the inputs the tests substitute, and printing in the form the tests hold the values.

Not collected by pytest (no ``test_`` prefix) and never imported by the test suite.
"""
from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

F64 = torch.float64


def checkout(marker: str) -> Path:
    """The upstream checkout given as the only argument; it must hold ``marker`` (a file of that repository).

    Its root goes first on ``sys.path`` so the authors' modules import as they do in their repository.
    """
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python {sys.argv[0]} /path/to/upstream/checkout (its root holds {marker})")
    root = Path(sys.argv[1]).resolve()
    if not (root / marker).is_file():
        raise SystemExit(f"{root} has no {marker}: pass the root of the upstream checkout named in the docstring")
    return root


def on_path(folder: Path) -> None:
    """Put an upstream folder first on ``sys.path`` (their scripts import siblings by bare name)."""
    sys.path.insert(0, str(folder))


def call_argument(path: Path, func: str, position: int = 0) -> ast.expr:
    """The expression passed as argument ``position`` to the first call of ``func`` (as written, e.g.
    ``search_model.set_tau``) in an upstream file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == func:
            return node.args[position]
    raise SystemExit(f"{path} has no call of {func}: the upstream file differs from the commit named in the docstring")


def assigned_value(path: Path, target: str, contains: str = "") -> ast.expr:
    """The right-hand side of the first assignment to ``target`` (as written, e.g. ``model.p``) in an upstream file
    whose source text contains ``contains``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(ast.unparse(t) == target for t in node.targets):
            if contains in ast.unparse(node.value):
                return node.value
    raise SystemExit(f"{path} assigns no {target!r} containing {contains!r}: the file differs from the named commit")


def evaluate(expression: ast.expr, **names: Any) -> Any:
    """Evaluate an expression taken from the authors' source with the given names bound (``math``, ``float`` and
    ``int`` available)."""
    import math

    code = compile(ast.Expression(expression), "<upstream>", "eval")
    return eval(code, {"math": math, "__builtins__": {"float": float, "int": int}}, names)


def load_functions(path: Path, names: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Define the named top-level functions of an upstream file in ``namespace`` (which supplies their globals),
    without running the rest of the file (a training script that parses its command line and makes folders when
    imported)."""
    tree = ast.parse(path.read_text())
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    missing = set(names) - {node.name for node in found}
    if missing:
        raise SystemExit(f"{path} defines no {sorted(missing)}: the file differs from the named commit")
    exec(compile(ast.Module(body=found, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


class Fn(nn.Module):
    """A candidate op that is a plain function (the tests substitute such ops to make an edge's output exact)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def literal(value: Any, digits: int = 15) -> str:
    """A Python literal of ``value`` with floats at ``digits`` significant digits (0: the shortest repr that reads
    back exactly) and tensors as nested lists."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, float):
        text = repr(float(value)) if digits == 0 else f"{value:.{digits}g}"
        return text if any(c in text for c in ".einf") else text + ".0"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v, digits)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        inner = ", ".join(literal(v, digits) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, digits) for v in value) + "]"
    return repr(value)


def section(test: str) -> None:
    """Print the name of the test whose values follow (a comment line, so the output stays Python)."""
    print(f"\n# {test}")


def show(name: str, value: Any, digits: int = 15) -> None:
    """Print ``name = literal`` (one line: a reader diffs it against the test; ``exec`` reads it back)."""
    print(f"{name} = {literal(value, digits)}")


def fill_sin(params: Iterable[torch.Tensor]) -> None:
    """Parameter ``k`` (in order) of ``numel`` n := ``0.5 · sin(0.7 · arange(n) + k)`` (tests/test_pc_darts.py)."""
    with torch.no_grad():
        for k, p in enumerate(params):
            p.copy_((torch.sin(torch.arange(p.numel(), dtype=F64) * 0.7 + k) * 0.5).reshape(p.shape))


def fill_randn(params: Iterable[torch.Tensor], seed: int) -> None:
    """Every parameter in order := ``0.5 · N(0, 1)`` from one generator seeded ``seed`` (tests/test_nb201.py)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.5)
