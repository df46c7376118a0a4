"""Step time and memory of the DARTS search loop, darts_pl against an original-style implementation.

    python -m benchmarks.bench_search --batch 64 --iters 5
    python -m benchmarks.bench_search --device cuda --precision bf16 --compile --json out.json

Cases, timed interleaved in one process (round-robin, after warm-up), on synthetic CIFAR-sized data:
    floor            one forward+backward of the supernet (darts_pl / reference)
    first, second    one search iteration: alpha step (first or second order) + weight step
    <variant>        (``--variants gdas drnas ...``) one iteration of the search that ``configs/search_cifar.yaml``
                     with ``configs/variants/<variant>.yaml`` builds: its relaxation, edge, regularizers,
                     weight-step perturbation and weight-step terms, schedules at their epoch-0 values (``--epoch``
                     for another epoch's), on the same supernet size and batch as ``first`` (DARTS first order),
                     against which its ``x first`` ratio is given

    python -m benchmarks.bench_search --batch 32 --kinds first --variants gdas fair_darts drnas beta_darts \
        sdarts_rs sdarts_adv darts_minus --no-reference
    python -m benchmarks.bench_search --batch 256 --memory-only --kinds --variants pc_darts --no-reference
    python -m benchmarks.bench_search --batch 64 --kinds first --variants reinmax snas lambda_darts gdas --epoch 25 \
        --no-reference        # Λ-DARTS's weight is 0 at epoch 0 (its passes are skipped then): time a later epoch
Peak memory: on CPU the max RSS of a fresh process running that case alone (with ``--live-memory``, of a
process whose allocator hands freed large blocks back at once: the peak of live memory, without the heap
fragmentation the default allocator adds); on CUDA ``torch.cuda.max_memory_allocated`` of the case.
The reference is ``../shared/bench/reference_darts.py``
when present (``--reference PATH``); darts_pl's iteration is the two phases of ``LitSearch.training_step``
(strategy, arch optimizer step, weight forward/backward into the weights only, clip, SGD step) without
the Trainer around them.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "reference_darts.py"
IMPLS = ("darts_pl", "reference")
KINDS = ("floor", "first", "second")
REPO = Path(__file__).resolve().parents[1]
VARIANTS = sorted(p.stem for p in (REPO / "configs" / "variants").glob("*.yaml"))


def load_reference(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("reference_darts", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def autocast(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    if args.precision == "bf16":
        return torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_batches(args: argparse.Namespace, channels_last: bool) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.image_size, args.image_size)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out = []
    for _ in range(2):
        x = torch.randn(shape, generator=g).to(args.device).contiguous(memory_format=memory_format)
        y = torch.randint(0, 10, (args.batch,), generator=g).to(args.device)
        out.append((x, y))
    return tuple(out)


def ours(args: argparse.Namespace) -> dict[str, Callable[[], None]]:
    from darts_pl.search import CNNSearchSpace
    from darts_pl.strategies import FirstOrder, SecondOrder

    torch.manual_seed(0)
    space = CNNSearchSpace(channels=args.channels, num_cells=args.cells, channels_last=args.channels_last)
    space.to(args.device)
    weights, alphas = space.weight_parameters(), space.arch_parameters()
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    train, val = make_batches(args, args.channels_last)
    forward = torch.compile(space) if args.compile else space

    def iteration(strategy: Any) -> Callable[[], None]:
        def run() -> None:
            with autocast(args):
                step = strategy.arch_gradients(forward, train, val, w_opt)
            for alpha, grad in zip(alphas, step.grads):
                alpha.grad = grad
            a_opt.step()
            w_opt.zero_grad(set_to_none=True)
            with autocast(args):
                loss = forward(train).loss
            loss.backward(inputs=weights)
            torch.nn.utils.clip_grad_norm_(weights, 5.0)
            w_opt.step()
        return run

    def floor() -> None:
        with autocast(args):
            loss = forward(train).loss
        loss.backward()
        space.zero_grad(set_to_none=True)

    return {"floor": floor, "first": iteration(FirstOrder()), "second": iteration(SecondOrder())}


def build_variant(args: argparse.Namespace, name: str) -> Any:
    """The ``LitSearch`` that ``darts-pl fit --config configs/search_cifar.yaml --config
    configs/variants/<name>.yaml`` builds (its model part), at the benchmark's supernet size."""
    from jsonargparse import ArgumentParser

    from darts_pl.modules import LitSearch

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_subclass_arguments(LitSearch, "model")
    parser.add_argument("--trainer", type=dict)
    parser.add_argument("--data", type=dict)
    parser.add_argument("--seed_everything", type=int | bool | None)
    cfg = parser.parse_args(["--config", str(REPO / "configs" / "search_cifar.yaml"),
                             "--config", str(REPO / "configs" / "variants" / f"{name}.yaml"),
                             "--model.init_args.space.init_args.channels", str(args.channels),
                             "--model.init_args.space.init_args.num_cells", str(args.cells),
                             "--model.init_args.space.init_args.channels_last", str(args.channels_last).lower()])
    return parser.instantiate(cfg).model


def variant(args: argparse.Namespace, name: str) -> Callable[[], None]:
    """One iteration of a variant's search: ``LitSearch._search_step`` without the Trainer (as ``first``)."""
    torch.manual_seed(0)
    module = build_variant(args, name).to(args.device)
    for schedule in module.schedules:
        schedule.apply(module, args.epoch, 50)
    space = module.space
    weights, alphas = space.weight_parameters(), space.arch_parameters()
    w_opt = module.weight_optimizer(weights)
    a_opt = module.arch_optimizer(alphas)
    train, val = make_batches(args, args.channels_last)

    def run() -> None:
        with autocast(args):
            step = module.strategy.arch_gradients(space, train, val, w_opt, module.grad_clip)
            grads = module._add_regularizers(step.grads)
        for alpha, grad in zip(alphas, grads):
            alpha.grad = grad
        a_opt.step()
        w_opt.zero_grad(set_to_none=True)
        with autocast(args):  # the forward, its backward and the weight-step terms' passes (Λ-DARTS)
            module._weight_gradients(train, weights, backward=lambda loss, inputs: loss.backward(inputs=inputs))
        torch.nn.utils.clip_grad_norm_(weights, module.grad_clip or float("inf"))
        w_opt.step()
    return run


def reference(args: argparse.Namespace) -> dict[str, Callable[[], None]]:
    ref = load_reference(Path(args.reference))
    torch.manual_seed(0)
    net = ref.SearchNet(C=args.channels, layers=args.cells).to(args.device)
    if args.reference_channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.alphas = [a.detach().to(args.device).requires_grad_() for a in net.alphas]
    step = ref.RefSearch(net)
    (xt, yt), (xv, yv) = make_batches(args, args.reference_channels_last)

    def wrap(fn: Callable[..., Any]) -> Callable[[], None]:
        def run() -> None:
            with autocast(args):
                fn(xt, yt, xv, yv)
        return run

    def floor() -> None:
        with autocast(args):
            loss = net.loss(xt, yt)
        loss.backward()
        net.zero_grad(set_to_none=True)

    return {"floor": floor, "first": wrap(step.first_order), "second": wrap(step.second_order)}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_cases(args: argparse.Namespace, impls: list[str]) -> dict[tuple[str, str], list[float]]:
    builders = {"darts_pl": ours, "reference": reference}
    wanted = args.kinds
    cases = {(impl, kind): fn for impl in impls for kind, fn in builders[impl](args).items() if kind in wanted}
    cases.update({("darts_pl", name): variant(args, name) for name in args.variants})
    for fn in cases.values():  # warm-up (allocator, autotuning, compile)
        for _ in range(args.warmup):
            fn()
    times: dict[tuple[str, str], list[float]] = {key: [] for key in cases}
    for round_ in range(args.iters):  # interleaved rounds: slow drifts of the machine hit every case alike
        for key, fn in cases.items():
            sync(args.device)
            start = time.perf_counter()
            fn()
            sync(args.device)
            times[key].append(time.perf_counter() - start)
        progress = ", ".join(f"{impl}/{kind} {ts[-1]:.2f}s" for (impl, kind), ts in times.items())
        print(f"round {round_ + 1}/{args.iters}: {progress}", file=sys.stderr, flush=True)
    return times


def peak_memory(args: argparse.Namespace, impl: str, kind: str) -> float:
    """Peak memory in GB of one case run alone (CPU: fresh process max RSS; CUDA: max allocated)."""
    if args.device.startswith("cuda"):
        fn = variant(args, kind) if kind in VARIANTS else {"darts_pl": ours, "reference": reference}[impl](args)[kind]
        fn()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 1e9
    cmd = [sys.executable, "-m", "benchmarks.bench_search", *args.argv, "--child", f"{impl}:{kind}"]
    env = dict(os.environ)
    if args.live_memory:  # glibc: blocks of 256 KiB or more are mapped on their own and unmapped when freed
        env["MALLOC_MMAP_THRESHOLD_"] = str(256 * 1024)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
                         env=env)
    return float(out.stdout.strip().splitlines()[-1])


def child(args: argparse.Namespace) -> None:
    impl, kind = args.child.split(":")
    fn = variant(args, kind) if kind in VARIANTS else {"darts_pl": ours, "reference": reference}[impl](args)[kind]
    for _ in range(2):
        fn()
    print(_peak_rss_gb())


def _peak_rss_gb() -> float:
    """This process's peak resident memory. ``ru_maxrss`` would also count the parent's peak before exec."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6  # kB -> GB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def summarize(times: dict[tuple[str, str], list[float]]) -> list[dict[str, Any]]:
    rows = []
    for (impl, kind), ts in times.items():
        floor = statistics.median(times[(impl, "floor")]) if (impl, "floor") in times else float("nan")
        first = statistics.median(times[(impl, "first")]) if (impl, "first") in times else float("nan")
        row = {"impl": impl, "case": kind, "median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
               "x_floor": statistics.median(ts) / floor, "x_first": statistics.median(ts) / first, "peak_gb": None,
               "vs_reference": None}
        if impl == "darts_pl" and ("reference", kind) in times:
            row["vs_reference"] = row["median_s"] / statistics.median(times[("reference", kind)])
        rows.append(row)
    return rows


def add_memory(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        row["peak_gb"] = peak_memory(args, row["impl"], row["case"])
    for row in rows:
        first = next((r for r in rows if r["impl"] == row["impl"] and r["case"] == "first"), None)
        if first:
            row["memory_x_first"] = row["peak_gb"] / first["peak_gb"]
        ref = next((r for r in rows if r["impl"] == "reference" and r["case"] == row["case"]), None)
        if row["impl"] == "darts_pl" and ref:
            row["memory_vs_reference"] = row["peak_gb"] / ref["peak_gb"]


def memory_only(args: argparse.Namespace, impls: list[str]) -> None:
    for impl in impls:
        for kind in [*args.kinds, *(args.variants if impl == "darts_pl" else [])]:
            print(f"{impl:<10} {kind:<7} peak {peak_memory(args, impl, kind):.2f} GB", flush=True)


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'impl':<10} {'case':<11} {'median s':>9} {'min s':>8} {'max s':>8} {'x floor':>8} {'x first':>8} "
            f"{'vs ref':>7} {'peak GB':>8} {'mem x first':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        vs = f"{r['vs_reference']:.2f}" if r.get("vs_reference") else "-"
        mem = f"{r['peak_gb']:.2f}" if r.get("peak_gb") is not None else "-"
        mem_first = f"{r['memory_x_first']:.2f}" if r.get("memory_x_first") is not None else "-"
        lines.append(f"{r['impl']:<10} {r['case']:<11} {r['median_s']:>9.3f} {r['min_s']:>8.3f} {r['max_s']:>8.3f} "
                     f"{r['x_floor']:>8.2f} {r['x_first']:>8.2f} {vs:>7} {mem:>8} {mem_first:>12}")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=8)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the passes under bf16 autocast, backward after it, as --trainer.precision bf16-mixed "
                        "(the second-order Hessian term leaves autocast and runs in float32)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="darts_pl's supernet in channels-last memory format (its default)")
    p.add_argument("--reference-channels-last", action="store_true",
                   help="also run the reference in channels-last (it is written for the default format)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--kinds", nargs="*", choices=KINDS, default=list(KINDS),
                   help="cases of plain DARTS; none with --variants measures only the variants")
    p.add_argument("--variants", nargs="*", choices=VARIANTS, default=[],
                   help="also time one iteration of each variant's search (configs/variants/<name>.yaml)")
    p.add_argument("--epoch", type=int, default=0,
                   help="the epoch (of 50) whose scheduled values the variants run at (default: %(default)s)")
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE))
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--memory-only", action="store_true", help="only the peak memory of each case")
    p.add_argument("--live-memory", action="store_true",
                   help="CPU: the peak of live memory rather than of the heap (the memory processes return every "
                        "freed block of 256 KiB or more to the system at once, so heap fragmentation is left out; "
                        "slow)")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = _without_option(argv, "--json")
    return args


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` less ``name VALUE`` / ``name=VALUE`` (the child process writes no JSON)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return
    impls = ["darts_pl"] if args.no_reference or not Path(args.reference).is_file() else list(IMPLS)
    if args.memory_only:
        memory_only(args, impls)
        return
    rows = summarize(time_cases(args, impls))
    print(table(rows), file=sys.stderr, flush=True)  # timings first; memory takes a fresh process per case
    if not args.no_memory:
        add_memory(args, rows)
    setting = (f"batch {args.batch}, {args.cells} cells, {args.channels} channels, {args.image_size}px, "
               f"{args.device}, {args.precision}, darts_pl channels_last={args.channels_last}, "
               f"reference channels_last={args.reference_channels_last}, compile={args.compile}, "
               f"threads={torch.get_num_threads()}, {args.iters} interleaved rounds after {args.warmup} warm-up")
    print(setting)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"setting": setting, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
