"""Time one training iteration of a derived network at the paper's size.

One iteration = forward (with the auxiliary head), cross-entropy + 0.4 · auxiliary cross-entropy,
backward, gradient-norm clipping at 5, SGD step: what ``LitClassifier`` does per batch, without the
Trainer's bookkeeping. Random inputs (the data pipeline is not timed).

    python benchmarks/bench_train.py                      # NetworkCIFAR(DARTS_V2, 36, 20), batch 96, CPU
    python benchmarks/bench_train.py --network imagenet --batch-size 128 --device cuda

Run it while nothing else heavy runs on the machine: on a shared CPU the numbers mean little otherwise.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from darts_pl.networks import NetworkCIFAR, NetworkImageNet, count_parameters

SIZES = {"cifar": (NetworkCIFAR, 36, 20, 10, 32), "imagenet": (NetworkImageNet, 48, 14, 1000, 224)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(network: str, batch_size: int, repeats: int, warmup: int, device: torch.device,
          genotype: str = "DARTS_V2") -> dict[str, float]:
    cls, channels, num_cells, num_classes, size = SIZES[network]
    torch.manual_seed(0)
    net = cls(genotype, channels=channels, num_cells=num_cells, num_classes=num_classes, auxiliary=True).to(device)
    net.train()
    net.drop_path_prob = 0.2
    optimizer = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    x = torch.randn(batch_size, 3, size, size, device=device)
    y = torch.randint(num_classes, (batch_size,), device=device)

    def step() -> float:
        _sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits, logits_aux = net(x)
        loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(logits_aux, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        _sync(device)
        return time.perf_counter() - start

    for _ in range(warmup):
        step()
    times = [step() for _ in range(repeats)]
    return {"params": count_parameters(net), "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=sorted(SIZES), default="cifar")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = bench(args.network, args.batch_size, args.repeats, args.warmup, device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [
        ("network", f"{SIZES[args.network][0].__name__}(DARTS_V2, C={SIZES[args.network][1]}, "
                    f"{SIZES[args.network][2]} cells, auxiliary)"),
        ("parameters (no aux head)", f"{result['params']:,}"),
        ("device / threads", f"{device} / {torch.get_num_threads()}"),
        ("batch size", str(args.batch_size)),
        (f"iteration, median of {args.repeats}", f"{result['median_s']:.2f} s"),
        ("iteration, min / max", f"{result['min_s']:.2f} / {result['max_s']:.2f} s"),
        ("images / s", f"{args.batch_size / result['median_s']:.1f}"),
        ("load average at the end (1 min)", f"{load:.2f}"),
        ("torch", torch.__version__),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}} | value")
    print(f"{'-' * width}-|-{'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()
