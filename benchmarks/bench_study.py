"""The study runner's own cost per cell, next to the cost of the cells' runs.

Runs a tiny digits study (DARTS and GDAS × ``--seeds`` seeds; each cell 2 epochs of 2 batches on a 3-cell,
4-channel supernet, so that the runner's share is as large as it gets) one cell after another, then reads what the
runner recorded: its wall time (``study_log.jsonl``: ``runner_s``), the wall time of every ``darts-pl fit`` child
(``study_cell.json``: ``wall_s``) and of the report's refreshes (``report_s``). The runner's overhead per cell is
``(runner_s - sum of the children's wall) / cells``: handing out the cell, the cell's job process, the record, and
one report refresh after every cell. The command's own start-up (imports, parsing the study) is printed apart.

    python -m benchmarks.bench_study                  # 2 methods x 2 seeds = 4 cells
    python -m benchmarks.bench_study --seeds 4 --keep runs/bench_study

Run it while nothing else heavy runs on the machine: on a shared CPU the numbers mean little otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--model.init_args.space.init_args.channels", "4", "--model.init_args.space.init_args.num_cells", "3",
             "--data.init_args.batch_size", "16"]


def bench(root: Path, seeds: int) -> dict[str, float]:
    study = {"name": "bench_study", "root": str(root), "base": [str(REPO / "configs" / "quickstart.yaml")],
             "args": TINY_ARGS, "seeds": list(range(seeds)),
             "methods": [{"name": "darts"}, {"name": "gdas", "overlays": [str(REPO / "configs/variants/gdas.yaml")]}]}
    path = root.parent / f"{root.name}.yaml"
    path.write_text(yaml.safe_dump(study))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "darts_pl.study", "--config", str(path)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    command_s = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the study failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    log = json.loads((root / "study_log.jsonl").read_text().splitlines()[-1])
    walls = [json.loads(p.read_text())["wall_s"] for p in sorted(root.rglob("study_cell.json"))]
    cells = len(walls)
    return {"cells": cells, "command_s": command_s, "runner_s": log["runner_s"], "children_s": sum(walls),
            "child_mean_s": statistics.fmean(walls), "report_s": log["report_s"],
            "overhead_per_cell_s": (log["runner_s"] - sum(walls)) / cells,
            "startup_s": command_s - log["runner_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per method (cells = 2 x seeds)")
    parser.add_argument("--keep", default=None, help="keep the study in this directory (default: a temporary one)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(options.keep or Path(scratch) / "study").absolute()
        if root.exists():
            raise SystemExit(f"{root} exists; give --keep a new directory.")
        root.parent.mkdir(parents=True, exist_ok=True)
        r = bench(root, options.seeds)
    share = 100 * r["overhead_per_cell_s"] / r["child_mean_s"]
    print(f"{r['cells']} cells: each run {r['child_mean_s']:.1f} s on average ({r['children_s']:.1f} s in all); the "
          f"runner's own {r['overhead_per_cell_s']:.2f} s per cell ({share:.1f}% of a run), of which report refreshes "
          f"{r['report_s'] / r['cells']:.2f} s; start-up of the command {r['startup_s']:.1f} s; whole command "
          f"{r['command_s']:.1f} s.")


if __name__ == "__main__":
    main()
