"""The oneDNN strided 1×1 backward-weights sweep: which convolutions corrupt the heap, with torch alone and with
darts_pl's convolutions (``darts_pl.ops.PointwiseConv2d``).

Every case runs in a process of its own (a heap corruption aborts the process that has it, at some later ``free``),
under glibc's malloc checks (``libc_malloc_debug.so`` with ``MALLOC_CHECK_=3``, where present) so that a write past a
buffer aborts at once instead of by the luck of the heap. ``ONEDNN_MAX_CPU_ISA=AVX2`` makes an AVX-512 machine run
the AVX2 kernels an AVX2-only machine runs.

    python -m tests.crash_sweep                 # the full table (about 50 minutes on 2 cores)
    python -m tests.crash_sweep --quick         # the cases the test suite runs

``tests/test_crash_sweep.py`` runs the quick grid; ``docs/upstream/onednn-strided-1x1-bwd-weights.md`` holds the full
table of the last run and the report for oneDNN / PyTorch.
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

MALLOC_DEBUG = Path("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so")


@dataclass(frozen=True)
class Case:
    """One convolution, trained for ``iters`` forward+backward passes of a fresh input."""

    conv: str  # "torch" (nn.Conv2d) or "darts_pl" (darts_pl.ops.conv2d)
    c_in: int
    c_out: int
    kernel: int
    stride: int
    batch: int
    size: int
    threads: int
    channels_last: bool = True
    isa: str = "AVX2"
    iters: int = 20

    def argv(self) -> list[str]:
        return [self.conv, *map(str, (self.c_in, self.c_out, self.kernel, self.stride, self.batch, self.size,
                                      int(self.channels_last), self.iters))]


CHILD = """
import sys, torch, torch.nn as nn
conv, c_in, c_out, k, s, b, size, cl, iters = sys.argv[1], *map(int, sys.argv[2:])
fmt = torch.channels_last if cl else torch.contiguous_format
if conv == "torch":
    module = nn.Conv2d(c_in, c_out, k, stride=s, padding=k // 2, bias=False)
else:
    from darts_pl.ops import conv2d
    module = conv2d(c_in, c_out, k, s, k // 2)
module = module.to(memory_format=fmt)
for _ in range(iters):
    x = torch.randn(b, c_in, size, size, requires_grad=True).contiguous(memory_format=fmt)
    module(x).sum().backward()
print("ok")
"""


def environment(case: Case) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(case.threads), ONEDNN_MAX_CPU_ISA=case.isa)
    env.pop("MKL_NUM_THREADS", None)
    if MALLOC_DEBUG.exists():
        env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), str(MALLOC_DEBUG)]))
        env["MALLOC_CHECK_"] = "3"
    return env


def run(case: Case, timeout: float = 120) -> int:
    """The case's exit status: 0, the negative signal that ended it (-6 abort, -11 segmentation fault), or 124 when
    it did not end within ``timeout`` seconds (20 passes of these sizes take well under a second)."""
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, *case.argv()], env=environment(case),
                              capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        return 124
    return done.returncode


def grid(conv: Sequence[str], c_in: Sequence[int], c_out: Sequence[int], kernel: Sequence[int],
         stride: Sequence[int], batch: Sequence[int], size: Sequence[int], threads: Sequence[int],
         channels_last: Sequence[bool] = (True,)) -> Iterator[Case]:
    for values in itertools.product(conv, c_in, c_out, kernel, stride, batch, size, threads, channels_last):
        yield Case(*values)


FULL = dict(conv=("torch", "darts_pl"), c_in=(1, 2, 3, 4, 6, 7, 8, 12, 16), c_out=(1, 8), kernel=(1, 3),
            stride=(1, 2), batch=(1, 8), size=(8, 32), threads=(1, 2))
"""The full sweep: 2 × 9 × 2 × 2 × 2 × 2 × 2 × 2 = 1,152 cases."""

QUICK = dict(conv=("darts_pl",), c_in=(2, 4, 7), c_out=(8,), kernel=(1,), stride=(2,), batch=(8,), size=(8, 32),
             threads=(1, 2))
"""Cases that corrupt the heap (one thread) or spin forever (two threads) with ``nn.Conv2d`` (see the report), run
with darts_pl's convolution."""


def sweep(cases: Sequence[Case], workers: int = 2) -> list[tuple[Case, int]]:
    with ThreadPoolExecutor(workers) as pool:
        return list(zip(cases, pool.map(run, cases)))


def table(results: Sequence[tuple[Case, int]]) -> str:
    """A markdown table: one row per (conv, kernel, stride, threads, batch, size), one column per c_in; a cell is
    ``ok`` when every c_out ran, else the exit statuses."""
    c_ins = sorted({case.c_in for case, _ in results})
    rows: dict[tuple, dict[int, list[int]]] = {}
    for case, code in results:
        key = (case.conv, case.kernel, case.stride, case.threads, case.batch, case.size)
        rows.setdefault(key, {}).setdefault(case.c_in, []).append(code)
    head = "| conv | k | stride | threads | batch | H=W | " + " | ".join(f"c_in {c}" for c in c_ins) + " |"
    lines = [head, "|" + "---|" * (6 + len(c_ins))]
    for key, cells in sorted(rows.items()):
        shown = ["ok" if all(c == 0 for c in cells.get(c, [0])) else ",".join(map(str, sorted(set(cells[c]))))
                 for c in c_ins]
        lines.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the cases the test suite runs")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    cases = list(grid(**(QUICK if args.quick else FULL)))
    import torch

    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"malloc checks {'on' if MALLOC_DEBUG.exists() else 'off'}, {len(cases)} cases", flush=True)
    print(table(sweep(cases, args.workers)))


if __name__ == "__main__":
    main()
