"""``benchmarks/device_check.py``: the GPU check plans and validates every step here, and its runner reads
real results (one step run for real at toy size on the CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import device_check

REPO = Path(__file__).resolve().parents[1]
STEPS = ["tests", "bench-fp32", "bench-bf16", "bench-compile", "search-bf16-mixed", "search-fp32-2nd-order", "ddp"]


def test_dry_run_plans_and_validates_every_step_within_eight_minutes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.device_check", "--dry-run", "--out", str(tmp_path),
                           "--json", str(tmp_path / "check.json")], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "check.json").read_text())["rows"]
    assert [row["step"].split(" ")[0] for row in rows] == STEPS
    assert {row["status"] for row in rows} == {"ready"}
    assert sum(row["budget_s"] for row in rows) <= 8 * 60
    commands = {row["step"].split(" ")[0]: row["result"] for row in rows}
    assert "-p benchmarks.cuda_default" in commands["tests"]
    assert "--device cuda" in commands["bench-bf16"] and "--precision bf16" in commands["bench-bf16"]
    assert "--batch 64" in commands["bench-fp32"] and "--compile" in commands["bench-compile"]
    assert "--trainer.precision bf16-mixed" in commands["search-bf16-mixed"]
    assert "configs/second_order.yaml" in commands["search-fp32-2nd-order"]
    assert "configs/ddp.yaml" in commands["ddp"] and "--trainer.accelerator cuda" in commands["ddp"]
    lines = done.stdout.splitlines()  # one table: a header, the columns, a rule, one row per step, the total
    assert lines[0].startswith("darts_pl device check: cuda;") and len(lines) == 3 + len(STEPS) + 1


def test_dry_run_marks_a_command_the_config_parser_rejects(tmp_path: Path) -> None:
    size = device_check.sizes("cuda", 1)
    bad = device_check.search_step(size, tmp_path, "search-bf17", ("--trainer.precision", "bf17-mixed"), 45)
    outcome = device_check.dry_step(bad)
    assert outcome.status == "INVALID" and "bf17-mixed" in outcome.result


def test_cpu_mode_runs_a_search_step_and_reads_its_result(tmp_path: Path) -> None:
    code = device_check.main(["--device", "cpu", "--only", "search-bf16-mixed", "--out", str(tmp_path),
                              "--json", str(tmp_path / "check.json")])
    (row,) = json.loads((tmp_path / "check.json").read_text())["rows"]
    assert code == 0 and row["status"] == "ok", row
    # debug.yaml: 2 epochs of 3 iterations; the last losses are read back from the run's metrics.csv.
    assert row["result"].endswith("after 6 iterations; genotype.json written")
    assert row["result"].startswith("train/loss ") and "val/loss " in row["result"]
