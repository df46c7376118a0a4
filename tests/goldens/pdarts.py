"""P-DARTS expected values of tests/test_pdarts.py, from the authors' code.

Upstream: chenxin061/pdarts, commit b880e8733010403307fe6a9bf7f02612fbc424ca, file ``train_search.py``:
its functions ``get_min_k``, ``get_min_k_no_zero``, ``parse_network``, ``check_sk_number``, ``delete_min_sk_prob``,
``keep_1_on``, ``keep_2_branches``, ``logging_switches``, and the part of ``main()``'s stage loop that runs after a
stage's training (from ``print('------Dropping %d paths------' ...)`` to the end of "Restricting skipconnect"),
and the skip-dropout rate ``main()`` assigns to ``model.module.p`` each epoch.

Run: ``python tests/goldens/pdarts.py /path/to/pdarts`` (CPU; float32 softmax, as the test's alphas). Prints, for

- ``test_pruning_keeps_the_ops_the_authors_keep``: ``AUTHORS_STAGE1`` / ``AUTHORS_STAGE2``, the ops each normal edge
  keeps after stage 1 (``sp = 0``, ``get_min_k``, 3 dropped) and stage 2 (``sp = 1``, 2 dropped);
- ``test_max_skips_derives_the_authors_cell``: ``AUTHORS_NORMAL`` (``parse_network(...).normal`` for each
  ``max_sk`` M from 8 to 0, after the last stage ``sp = 2``: the ``get_min_k_no_zero`` drop, the edge ranking and
  the restriction loop) and ``AUTHORS_REDUCE`` (the reduction cell, never restricted);
- ``test_skip_dropout_schedule_is_the_authors_rate``: ``AUTHORS_RATE`` (stage 2, ``dropout_rate`` 0.4, 25 epochs,
  ``eps_no_arch`` 10, ``scale_factor`` 0.2).

How the test's inputs reach the authors' code: ``train_search.py`` parses its command line, makes an experiment
folder and copies scripts into it when imported, so its functions are defined from its source text alone
(``_upstream.load_functions``) and the post-training statements of its stage loop are executed as written, with
``model.module.arch_parameters()`` returning the test's alphas (one column per op still switched on), the test's
switches, and ``logging`` recording what the restriction loop logs (it logs the genotype of each M it restricts to;
an M it skips keeps the genotype before it). ``print`` is silenced. The test lists a node's two edges in its own
order; the authors' ``parse_network`` lists them by input: the test compares them sorted.
"""
from __future__ import annotations

import ast
import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _upstream import assigned_value, checkout, evaluate, load_functions, on_path, section, show

ROOT = checkout("train_search.py")
on_path(ROOT)

from genotypes import PRIMITIVES, Genotype  # noqa: E402

FUNCTIONS = ["get_min_k", "get_min_k_no_zero", "parse_network", "check_sk_number", "delete_min_sk_prob", "keep_1_on",
             "keep_2_branches", "logging_switches"]


class Log:
    """Stands in for ``logging``: records every ``info`` call."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, tuple]] = []

    def info(self, message: Any, *args: Any) -> None:
        self.records.append((message, args))


class Model:
    """What the block reads of ``model``: ``model.module.arch_parameters()``."""

    def __init__(self, normal: torch.Tensor, reduce: torch.Tensor) -> None:
        self.module = self
        self.alphas = [normal, reduce]

    def arch_parameters(self) -> list[torch.Tensor]:
        return self.alphas


def after_training() -> ast.Module:
    """The statements of ``main()``'s ``for sp in ...`` loop after the stage's training and ``utils.save``."""
    tree = ast.parse((ROOT / "train_search.py").read_text())
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    loop = next(node for node in ast.walk(main) if isinstance(node, ast.For) and ast.unparse(node.target) == "sp")
    start = next(i for i, node in enumerate(loop.body) if ast.unparse(node).startswith("utils.save(")) + 1
    return ast.Module(body=loop.body[start:], type_ignores=[])


def run_stage(sp: int, normal: torch.Tensor, reduce: torch.Tensor, switches_normal: list[list[bool]],
              switches_reduce: list[list[bool]]) -> dict[str, Any]:
    """Execute the authors' post-training block of stage ``sp`` (0-based); its variables afterwards."""
    namespace: dict[str, Any] = {"copy": copy, "np": np, "F": F, "PRIMITIVES": PRIMITIVES, "Genotype": Genotype,
                                 "logging": Log(), "print": lambda *args, **kwargs: None}
    load_functions(ROOT / "train_search.py", FUNCTIONS, namespace)
    namespace.update(sp=sp, num_to_keep=[5, 3, 1], num_to_drop=[3, 2, 2], sm_dim=-1, model=Model(normal, reduce),
                     switches_normal=copy.deepcopy(switches_normal), switches_reduce=copy.deepcopy(switches_reduce))
    exec(compile(after_training(), str(ROOT / "train_search.py"), "exec"), namespace)
    return namespace


def kept(switches: list[list[bool]]) -> list[list[int]]:
    return [[j for j, on in enumerate(row) if on] for row in switches]


def switches_for(ops: list[list[int]]) -> list[list[bool]]:
    return [[j in ops[e] for j in range(len(PRIMITIVES))] for e in range(14)]


def alpha1(e: int, j: int) -> float:  # tests/test_pdarts.py
    return (0.5 if j == 1 else 0.0) if e == 5 else ((7 * e + 3 * j) % 11) / 10.0


def alpha2(e: int, j: int) -> float:  # tests/test_pdarts.py
    return (0.25 if j == 4 else 0.0) if e == 9 else ((5 * e + 2 * j) % 7) / 5.0


def pruning() -> None:
    section("test_pruning_keeps_the_ops_the_authors_keep")
    all_on = [[True] * len(PRIMITIVES) for _ in range(14)]
    a1 = torch.tensor([[alpha1(e, j) for j in range(8)] for e in range(14)])
    stage1 = run_stage(0, a1, a1, all_on, all_on)["switches_normal"]
    show("AUTHORS_STAGE1", kept(stage1))
    a2 = torch.tensor([[alpha2(e, j) for j in range(5)] for e in range(14)])
    stage2 = run_stage(1, a2, a2, stage1, stage1)["switches_normal"]
    show("AUTHORS_STAGE2", kept(stage2))


NORMAL_OPS = [[0, 3, 4], [1, 3, 6], [3, 5, 7]]  # tests/test_pdarts.py: stage-3 ops of edge e, ops[e % 3]
REDUCE_OPS = [[1, 3, 4], [0, 2, 3], [3, 6, 7]]


def alpha3(e: int, ops: list[list[int]]) -> list[float]:  # tests/test_pdarts.py
    row = ops[e % 3]
    a = [0.1 * ((3 * e + 2 * j) % 5) for j in range(3)]
    a[row.index(3)] = 0.8 + 0.1 * ((5 * e) % 7)
    if row[0] == 0:
        a[0] = 1.5
    return a


def max_skips() -> None:
    section("test_max_skips_derives_the_authors_cell")
    normal = torch.tensor([alpha3(e, NORMAL_OPS) for e in range(14)])
    reduce = torch.tensor([alpha3(e, REDUCE_OPS) for e in range(14)])
    state = run_stage(2, normal, reduce, switches_for([NORMAL_OPS[e % 3] for e in range(14)]),
                      switches_for([REDUCE_OPS[e % 3] for e in range(14)]))
    records = state["logging"].records
    first = next(i for i, (message, _) in enumerate(records) if isinstance(message, Genotype))
    unrestricted = records[first][0]
    restricted, pending = {}, None
    for message, args in records[first + 1:]:
        if message == "Number of skip-connect: %d":
            pending = args[0]
        elif isinstance(message, Genotype):
            restricted[pending] = message
    current, normal_by_m = unrestricted, {}
    for m in range(8, -1, -1):
        current = restricted.get(m, current)
        normal_by_m[m] = current.normal
    show("AUTHORS_NORMAL", normal_by_m)
    show("AUTHORS_REDUCE", unrestricted.reduce)


def rate() -> None:
    section("test_skip_dropout_schedule_is_the_authors_rate")
    path = ROOT / "train_search.py"
    before = assigned_value(path, "model.module.p", contains="epochs - epoch")
    after = assigned_value(path, "model.module.p", contains="np.exp")
    print(f"# epoch < eps_no_arch: {ast.unparse(before)}\n# otherwise: {ast.unparse(after)}")
    # --dropout_rate 0.1 --dropout_rate 0.4 --dropout_rate 0.7 (their README's search command): strings, as appended
    names = {"drop_rate": ["0.1", "0.4", "0.7"], "sp": 1, "epochs": 25, "eps_no_arch": 10, "scale_factor": 0.2,
             "np": np}
    epochs = (0, 1, 9, 10, 11, 17, 24)
    show("AUTHORS_RATE", {e: evaluate(before if e < 10 else after, epoch=e, **names) for e in epochs}, 0)


if __name__ == "__main__":
    pruning()
    max_skips()
    rate()
