"""Cost of one curvature evaluation (``darts_pl.callbacks.CurvatureMonitor``) against one search iteration.

    python -m benchmarks.bench_curvature --batch 64 --iters 3
    python -m benchmarks.bench_curvature --space s3 --batch 64 --spectrum --json curvature_cost.json
    python -m benchmarks.bench_curvature --device cuda --batch 64 --num-batches 1 4

Cases, timed interleaved in one process (round-robin, after a warm-up), on synthetic CIFAR-sized data and the
search supernet of ``configs/search_cifar.yaml`` (8 cells, 16 channels; ``--space s1..s4`` takes the op sets of
``configs/spaces/<space>.yaml``):

    iteration             one first-order search iteration (alpha step + weight step), as bench_search's ``first``
    lanczos/<k> batches   one evaluation by Lanczos (at most --max-products products, --tol), over k fixed batches
    power/<k> batches     the same by power iteration
    spectrum/1 batches    the explicit Hessian (one product per architecture entry) and eigvalsh (--spectrum)

For each: the median seconds, the products with the Hessian the evaluation used, seconds per product, and the
evaluation's cost in search iterations (``x iteration``): with an evaluation every ``n`` epochs of ``I`` iterations,
the monitor adds ``x iteration / (n · I)`` to the search's time. One batch keeps the first-order graph between products
(one forward, then one double-backward per product); several batches recompute it for every product.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def build_space(args: argparse.Namespace) -> Any:
    from darts_pl.search import CNNSearchSpace

    extra = {}
    if args.space != "darts":
        overlay = yaml.safe_load((REPO / "configs" / "spaces" / f"{args.space}.yaml").read_text())
        extra = overlay["model"]["init_args"]["space"]["init_args"]
    torch.manual_seed(0)
    return CNNSearchSpace(channels=args.channels, num_cells=args.cells, **extra).to(args.device)


def make_batches(args: argparse.Namespace, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    shape = (args.batch, 3, args.image_size, args.image_size)
    return [(torch.randn(shape, generator=g).to(args.device), torch.randint(0, 10, (args.batch,), generator=g)
             .to(args.device)) for _ in range(count)]


def cases(args: argparse.Namespace, space: Any) -> dict[str, Callable[[], int]]:
    """Each case returns the number of Hessian products it used (0 for the search iteration)."""
    from darts_pl.curvature import hessian_eigen
    from darts_pl.strategies import FirstOrder

    weights, alphas = space.weight_parameters(), space.arch_parameters()
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    train, val = make_batches(args, 2, seed=0)

    def iteration() -> int:
        step = FirstOrder().arch_gradients(space, train, val, w_opt)
        for alpha, grad in zip(alphas, step.grads):
            alpha.grad = grad
        a_opt.step()
        w_opt.zero_grad(set_to_none=True)
        space(train).loss.backward(inputs=weights)
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()
        return 0

    def evaluation(method: str, count: int, spectrum: bool = False) -> Callable[[], int]:
        fixed = make_batches(args, count, seed=1)

        def run() -> int:
            found = hessian_eigen(space, fixed, method=method, iterations=args.max_products,  # type: ignore[arg-type]
                                  tol=args.tol, spectrum=spectrum, weight_decay=1e-3)
            return found.iterations
        return run

    out: dict[str, Callable[[], int]] = {"iteration": iteration}
    for method in args.methods:
        for count in args.num_batches:
            out[f"{method}/{count} batches"] = evaluation(method, count)
    if args.spectrum:
        out["spectrum/1 batches"] = evaluation("lanczos", 1, spectrum=True)
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    space = build_space(args)
    space.train()
    runs = cases(args, space)
    for fn in runs.values():
        for _ in range(args.warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    products: dict[str, int] = {}
    for round_ in range(args.iters):  # interleaved: slow drifts of the machine hit every case alike
        for name, fn in runs.items():
            sync(args.device)
            start = time.perf_counter()
            products[name] = fn()
            sync(args.device)
            times[name].append(time.perf_counter() - start)
        print(f"round {round_ + 1}/{args.iters}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()),
              file=sys.stderr, flush=True)
    base = statistics.median(times["iteration"])
    numel = sum(a.numel() for a in space.arch_parameters())
    rows = []
    for name, ts in times.items():
        median = statistics.median(ts)
        count = products[name]
        rows.append({"case": name, "median_s": median, "min_s": min(ts), "max_s": max(ts), "products": count,
                     "s_per_product": median / count if count else None, "x_iteration": median / base,
                     "arch_entries": numel})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'case':<20} {'median s':>9} {'min s':>8} {'max s':>8} {'products':>9} {'s/product':>10} "
            f"{'x iteration':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        per = f"{r['s_per_product']:.3f}" if r["s_per_product"] is not None else "-"
        lines.append(f"{r['case']:<20} {r['median_s']:>9.3f} {r['min_s']:>8.3f} {r['max_s']:>8.3f} "
                     f"{r['products']:>9} {per:>10} {r['x_iteration']:>12.2f}")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", choices=("darts", "s1", "s2", "s3", "s4"), default="darts",
                   help="the DARTS ops on every edge, or a RobustDARTS space's (configs/spaces/)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=8)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--iters", type=int, default=3, help="timed rounds")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--methods", nargs="*", choices=("lanczos", "power"), default=["lanczos", "power"])
    p.add_argument("--num-batches", nargs="*", type=int, default=[1, 2], help="fixed batches per evaluation")
    p.add_argument("--max-products", type=int, default=30, help="the monitor's `iterations`")
    p.add_argument("--tol", type=float, default=1e-4, help="the monitor's `tol`")
    p.add_argument("--spectrum", action="store_true", help="also the explicit Hessian (slow: one product per entry)")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(args)
    setting = (f"{args.space} space, batch {args.batch}, {args.cells} cells, {args.channels} channels, "
               f"{args.image_size}px, {args.device}, {torch.get_num_threads()} threads, {rows[0]['arch_entries']} "
               f"architecture entries, at most {args.max_products} products, tol {args.tol:g}")
    print(f"# {setting}\n{table(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"setting": setting, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
