"""``darts-pl-progressive``: P-DARTS's progressive search (Chen et al., "Progressive Differentiable Architecture
Search: Bridging the Depth Gap between Search and Evaluation", ICCV 2019), one ``darts-pl fit`` per stage.

    darts-pl-progressive --config configs/search_cifar.yaml --config configs/variants/pdarts.yaml
    darts-pl-progressive --config configs/search_cifar.yaml --config configs/variants/pdarts.yaml --ckpt_path last

Each stage searches a deeper supernet on fewer candidate ops per edge: the authors' CIFAR-10 recipe
(``train_search.py`` with ``--add_layers 6 --add_layers 12 --dropout_rate 0.1 0.4 0.7``) runs 5, 11 and 17
cells on 8, 5 and 3 ops per edge. After a stage, each edge keeps the ops with the highest final probabilities
(``none`` included, as the authors' ``get_min_k``); the next stage starts afresh (new weights and alphas) on
those ops (``CNNSearchSpace(edge_primitives=...)``). Every stage has dropout on its skip connections, from the
stage's rate, decayed by an :class:`~darts_pl.parts.ExponentialSchedule`; the last stage derives the cell
with at most ``max_skips`` skip connections in the normal cell (:class:`~darts_pl.search.MaxSkips`).

Everything after the driver's own options is passed to ``darts-pl fit`` for every stage (configs and overrides);
the driver adds, per stage, ``--config <root>/stage_N/stage.yaml`` (the stage's ``num_cells``,
``edge_primitives``, ``skip_dropout``, ``warmup_epochs``, ``schedules`` and, last, ``derivation``: these keys
belong to the driver) and ``--trainer.default_root_dir <root>/stage_N``. It writes, under ``--root``:

* ``stage_N/``: the stage's run (its own run directory, config, checkpoints, genotype, alpha history);
* ``stages.json``: the settings, and per finished stage its run directory, the op sets it searched, its final
  probabilities, its genotype and the op sets it passes on (``pruned``);
* ``genotype.json``: the last stage's genotype, the result.

``--ckpt_path last`` continues: finished stages (recorded in ``stages.json``) are not run again, the first
unfinished one continues from its newest checkpoint (``darts-pl fit --ckpt_path last``), the rest follow.
Stage results are read from the run's ``alpha_history.npz`` (``ArchitectureMonitor``) and ``genotype.json``
(``GenotypeCheckpoint``): the config needs both callbacks, as ``search_cifar.yaml`` and ``quickstart.yaml`` have.

Notes (deviations from the authors' code):
    * The authors clip the alpha gradient at norm 5 (``grad_clip``); ``LitSearch`` clips the weight gradient only.
    * Their weight learning rate follows ``scheduler.step()`` before each epoch (PyTorch 0.4 order), one epoch
      ahead of the cosine schedule; here the cosine starts at the initial rate.
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from darts_pl import cli, genotypes
from darts_pl.atomic import atomic_write
from darts_pl.callbacks.monitor import HISTORY_ARRAYS, AlphaHistory
from darts_pl.errors import ConfigurationError

FORMAT = "darts_pl.progressive/1"
RECORD = "stages.json"
CELLS = ("normal", "reduce")


def prune_edge_primitives(probs: Sequence[Sequence[float]], edge_primitives: Sequence[Sequence[str]],
                          primitives: Sequence[str], keep: int) -> list[list[str]]:
    """The ``keep`` ops of every edge with the highest probabilities, in their order on the edge.

    Ranks every op of the edge, ``none`` included, and drops the lowest first (ties: the earlier op on the edge
    goes first), as the authors' ``get_min_k`` does between stages.

    Args:
        probs: One cell type's final probabilities, ``(edges, len(primitives))`` (``space.edge_probs()``).
        edge_primitives: The ops each edge had in the stage, one row per edge.
        primitives: The column names of ``probs``.
        keep: How many ops each edge keeps.
    """
    if len(probs) != len(edge_primitives):
        raise ConfigurationError(f"prune_edge_primitives: {len(probs)} rows of probabilities for "
                                 f"{len(edge_primitives)} edges.")
    pruned = []
    for e, row in enumerate(edge_primitives):
        if not 1 <= keep <= len(row):
            raise ConfigurationError(f"prune_edge_primitives: keep={keep} ops, but edge {e} has {len(row)} "
                                     f"({list(row)}); keep between 1 and {len(row)}.")
        values = [float(probs[e][list(primitives).index(op)]) for op in row]
        dropped = set(sorted(range(len(row)), key=lambda j: (values[j], j))[:len(row) - keep])
        pruned.append([op for j, op in enumerate(row) if j not in dropped])
    return pruned


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="darts-pl-progressive", allow_abbrev=False,
        description="P-DARTS: a progressive search in stages, each a `darts-pl fit` run; arguments after these "
                    "options (--config ..., --trainer...., --model....) go to every stage's `darts-pl fit`.")
    parser.add_argument("--root", default="runs/pdarts", help="directory of the stages (stage_N/), stages.json and "
                        "genotype.json (default: %(default)s)")
    parser.add_argument("--num_cells", type=int, nargs="+", default=[5, 11, 17],
                        help="cells of each stage's supernet (default: %(default)s; authors: 5 + add_layers 0 6 12)")
    parser.add_argument("--keep_ops", type=int, nargs="*", default=[5, 3],
                        help="ops each edge keeps for stages 2, 3, ... (default: %(default)s: 8 -> 5 -> 3 ops)")
    parser.add_argument("--skip_dropout", type=float, nargs="+", default=[0.1, 0.4, 0.7],
                        help="skip-connection dropout rate of each stage (default: %(default)s, the authors' "
                             "command; the paper says 0.0 0.4 0.7 on CIFAR-10)")
    parser.add_argument("--skip_dropout_decay", type=float, default=0.2,
                        help="exponential decay per epoch of the rate after the warm-up (default: %(default)s)")
    parser.add_argument("--warmup_epochs", type=int, default=10,
                        help="epochs of weight steps only at the start of each stage (default: %(default)s)")
    parser.add_argument("--max_skips", type=int, default=2,
                        help="most skip connections in the final normal cell, M; -1: no limit (default: %(default)s)")
    parser.add_argument("--ckpt_path", choices=["last"], default=None,
                        help="'last': skip the finished stages and continue the first unfinished one")
    return parser


def _settings(options: argparse.Namespace) -> dict[str, Any]:
    stages = len(options.num_cells)
    if len(options.skip_dropout) != stages or len(options.keep_ops) != stages - 1:
        raise ConfigurationError(
            f"--num_cells has {stages} stages: give --skip_dropout {stages} rates and --keep_ops {stages - 1} counts "
            f"(ops kept for stages 2..{stages}); got --skip_dropout {options.skip_dropout}, --keep_ops "
            f"{options.keep_ops}.")
    if any(n < 3 for n in options.num_cells):
        raise ConfigurationError(f"--num_cells {options.num_cells}: every stage needs >= 3 cells (two reductions).")
    if any(k < 2 for k in options.keep_ops) or list(options.keep_ops) != sorted(options.keep_ops, reverse=True):
        raise ConfigurationError(f"--keep_ops {options.keep_ops}: counts must not grow and be >= 2 (a stage searches "
                                 "among at least two ops per edge; the last stage's derivation picks one).")
    if any(not 0.0 <= p < 1.0 for p in options.skip_dropout):
        raise ConfigurationError(f"--skip_dropout {options.skip_dropout}: rates must be in [0, 1).")
    if options.warmup_epochs < 0:
        raise ConfigurationError(f"--warmup_epochs {options.warmup_epochs} must be >= 0.")
    return {"num_cells": list(options.num_cells), "keep_ops": list(options.keep_ops),
            "skip_dropout": list(options.skip_dropout), "skip_dropout_decay": options.skip_dropout_decay,
            "warmup_epochs": options.warmup_epochs, "max_skips": options.max_skips}


def stage_overlay(settings: Mapping[str, Any], stage: int,
                  edge_primitives: Mapping[str, list[list[str]]] | None) -> dict[str, Any]:
    """The config overlay of stage ``stage`` (0-based): the keys the driver sets in every stage."""
    rate = settings["skip_dropout"][stage]
    space: dict[str, Any] = {"num_cells": settings["num_cells"][stage], "skip_dropout": rate}
    if edge_primitives is not None:
        space["edge_primitives"] = {cell: [list(row) for row in rows] for cell, rows in edge_primitives.items()}
    if stage == len(settings["num_cells"]) - 1 and settings["max_skips"] >= 0:
        space["derivation"] = {"class_path": "darts_pl.search.MaxSkips",
                               "init_args": {"max_skips": settings["max_skips"], "cells": ["normal"]}}
    schedule = {"class_path": "darts_pl.parts.ExponentialSchedule",
                "init_args": {"target": "space.skip_dropout.p", "start": rate,
                              "decay": settings["skip_dropout_decay"], "warmup_epochs": settings["warmup_epochs"]}}
    return {"model": {"init_args": {"warmup_epochs": settings["warmup_epochs"], "space": {"init_args": space},
                                    "schedules": [schedule]}}}


def run_fit(args: list[str]) -> None:
    """One stage: ``darts-pl`` with ``args`` (exits with its status on failure)."""
    argv, sys.argv = sys.argv, sys.argv[:1]  # the stage's arguments are ``args`` alone (LightningCLI warns otherwise)
    try:
        cli.main(args)
    finally:
        sys.argv = argv


def _check_keep_ops(settings: Mapping[str, Any], fit_args: list[str]) -> None:
    """Refuse, before any stage runs, to keep more ops per edge than the first stage searches (the config's
    ``primitives``, or its ``edge_primitives`` where a space was pruned by hand)."""
    if not settings["keep_ops"]:
        return
    space = cli.resolve_config(fit_args).model.init_args.get("space")
    space_args = space.get("init_args") if space is not None else None
    primitives = list(space_args.get("primitives") or []) if space_args is not None else []
    if not primitives:
        return
    edge_primitives = space_args.get("edge_primitives") or {}
    rows = [row for cell_rows in dict(edge_primitives).values() for row in cell_rows] or [primitives]
    fewest = min(len(row) for row in rows)
    if settings["keep_ops"][0] > fewest:
        given = " ".join(map(str, settings["keep_ops"]))
        where = "per edge in its edge_primitives" if edge_primitives else f"(primitives: {', '.join(primitives)})"
        raise ConfigurationError(f"--keep_ops {given}: stage 2 would keep {settings['keep_ops'][0]} ops per edge, but "
                                 f"stage 1 searches {fewest} ops {where}; give counts of at most {fewest}.")


def _stage_result(stage_dir: Path) -> Path:
    """The run directory of the stage's finished search: the newest ``genotype.json`` below ``stage_dir``."""
    found = sorted(stage_dir.rglob("genotype.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigurationError(f"{str(stage_dir)!r} holds no genotype.json after the stage's run; the stage "
                                 "configs need the callback darts_pl.callbacks.GenotypeCheckpoint.")
    run = found[-1].parent
    if not (run / HISTORY_ARRAYS).is_file():
        raise ConfigurationError(f"{str(run)!r} holds no {HISTORY_ARRAYS}; the stages prune by its final "
                                 "probabilities: add the callback darts_pl.callbacks.ArchitectureMonitor.")
    return run


def _configured_edge_primitives(run: Path) -> dict[str, list[list[str]]]:
    """The ``edge_primitives`` in a run's ``config.yaml`` (a space pruned by hand), or none."""
    path = run / "config.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else {}
    space = ((config or {}).get("model") or {}).get("init_args", {}).get("space") or {}
    return dict((space.get("init_args") or {}).get("edge_primitives") or {})


def _read_stage(stage: int, stage_dir: Path, run: Path) -> tuple[AlphaHistory, genotypes.AnyGenotype]:
    """A finished stage's alpha history and genotype, or one line naming the unreadable file."""
    path = run / HISTORY_ARRAYS
    try:
        history = AlphaHistory.load(run)
        path = run / "genotype.json"
        genotype = genotypes.load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigurationError(f"{str(path)!r} of stage {stage + 1} cannot be read ({reason}); remove the stage "
                                 f"directory {str(stage_dir)!r} to rerun that stage.") from None
    return history, genotype


def _finish_stage(settings: Mapping[str, Any], stage: int, stage_dir: Path,
                  given: Mapping[str, list[list[str]]] | None) -> dict[str, Any]:
    """Read a finished stage's result (``given``: the op sets the driver gave it) and prune its op sets for the
    next stage."""
    run = _stage_result(stage_dir)
    history, genotype = _read_stage(stage, stage_dir, run)
    primitives = history.primitives
    probs = {cell: history.probs[cell][-1].tolist() for cell in CELLS}  # (edges, len(primitives)), last epoch
    searched = {cell: [list(primitives) for _ in probs[cell]] for cell in CELLS}
    searched.update(given or _configured_edge_primitives(run))
    entry: dict[str, Any] = {
        "stage": stage + 1, "num_cells": settings["num_cells"][stage], "skip_dropout": settings["skip_dropout"][stage],
        "run_dir": str(run), "primitives": primitives, "edge_primitives": searched, "probs": probs,
        "genotype": genotypes.to_dict(genotype),
    }
    if stage < len(settings["keep_ops"]):
        keep = settings["keep_ops"][stage]
        entry["pruned"] = {cell: prune_edge_primitives(probs[cell], searched[cell], primitives, keep)
                           for cell in CELLS}
    return entry


def _load_record(root: Path, settings: Mapping[str, Any], resume: bool) -> dict[str, Any]:
    path = root / RECORD
    if not path.is_file():
        return {"format": FORMAT, "settings": dict(settings), "stages": []}
    if not resume:
        raise ConfigurationError(f"{str(path)!r} already records a progressive search; continue it with --ckpt_path "
                                 "last, or choose another --root.")
    record = _read_record(path, settings)
    if record.get("settings") != dict(settings):
        raise ConfigurationError(f"{str(path)!r} was planned with {record.get('settings')}; continue it with the same "
                                 f"stage options (got {dict(settings)}), or choose another --root.")
    return record


STAGE_FIELDS = ("stage", "run_dir", "primitives", "edge_primitives", "probs", "genotype")
"""What every recorded stage holds (and ``pruned``, the op sets of the next stage, for all but the last)."""


def _read_record(path: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``stages.json``, checked for what the driver reads from it; one line naming the file if it is damaged."""
    try:
        record = json.loads(path.read_text())
        problem = _record_problem(record, len(settings["keep_ops"]))
    except (OSError, ValueError) as err:  # unreadable, not JSON (a torn or empty file), a bad genotype
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if problem:
        raise ConfigurationError(f"{str(path)!r} is not a readable record of the stages ({problem}); remove it to "
                                 "run the stages again (with --ckpt_path last, stage 1 continues its own run), or "
                                 "choose another --root.")
    return record


def _record_problem(record: Any, pruned_stages: int) -> str | None:
    """What is missing from a record, or ``None``."""
    if not isinstance(record, dict):
        return f"it holds a JSON {type(record).__name__}, not an object"
    missing = [key for key in ("settings", "stages") if key not in record]
    if missing or not isinstance(record["stages"], list):
        return f"it has no {' or '.join(map(repr, missing))}" if missing else "its 'stages' is not a list"
    for index, stage in enumerate(record["stages"]):
        fields = STAGE_FIELDS + (("pruned",) if index < pruned_stages else ())
        absent = [field for field in fields if not isinstance(stage, dict) or field not in stage]
        if absent:
            return f"stage {index + 1} has no {', '.join(map(repr, absent))}"
        genotypes.from_dict(stage["genotype"])  # raises GenotypeError (a ValueError) for a damaged one
    return None


def _save_record(root: Path, record: Mapping[str, Any]) -> None:
    atomic_write(root / RECORD, json.dumps(record, indent=1) + "\n")


def run(options: argparse.Namespace, fit_args: list[str]) -> dict[str, Any]:
    """Run (or continue) every stage; returns the record written to ``stages.json``."""
    settings = _settings(options)
    if any(arg.split("=")[0] in ("--trainer.default_root_dir", "--ckpt_path") for arg in fit_args):
        raise ConfigurationError("darts-pl-progressive sets each stage's --trainer.default_root_dir (use --root) and "
                                 "its --ckpt_path (use the driver's --ckpt_path last).")
    _check_keep_ops(settings, fit_args)
    root = Path(options.root).absolute()
    record = _load_record(root, settings, options.ckpt_path == "last")
    done = len(record["stages"])
    for stage in range(done, len(settings["num_cells"])):
        stage_dir = root / f"stage_{stage + 1}"
        previous = record["stages"][stage - 1]["pruned"] if stage > 0 else None
        overlay = stage_dir / "stage.yaml"
        stage_dir.mkdir(parents=True, exist_ok=True)
        header = f"# darts-pl-progressive: stage {stage + 1} of {len(settings['num_cells'])} (written by the driver)\n"
        text = yaml.safe_dump(stage_overlay(settings, stage, previous), sort_keys=False, default_flow_style=None)
        atomic_write(overlay, header + text)
        args = ["fit", *fit_args, "--config", str(overlay), "--trainer.default_root_dir", str(stage_dir)]
        if stage == done and options.ckpt_path == "last":
            args += ["--ckpt_path", "last"]
        ops = len(previous["normal"][0]) if previous else "all"
        print(f"darts-pl-progressive: stage {stage + 1}/{len(settings['num_cells'])}: "
              f"{settings['num_cells'][stage]} cells, {ops} ops per edge, skip dropout "
              f"{settings['skip_dropout'][stage]} -> {stage_dir}", file=sys.stderr)
        run_fit(args)
        record["stages"].append(_finish_stage(settings, stage, stage_dir, previous))
        _save_record(root, record)
    final = genotypes.from_dict(record["stages"][-1]["genotype"])
    record["genotype"] = genotypes.to_dict(final)
    genotypes.save(final, root / "genotype.json")
    _save_record(root, record)
    print(f"darts-pl-progressive: final genotype written to {root / 'genotype.json'}", file=sys.stderr)
    return record


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``darts-pl-progressive``: bad options exit with status 2 and one line; a stage that fails
    exits with that run's status."""
    options, fit_args = _parser().parse_known_args(argv)
    try:
        run(options, fit_args)
    except KeyboardInterrupt:  # between stages (a stage's own run reports and exits by itself)
        print(f"darts-pl-progressive: stopped by SIGINT; the finished stages are recorded in "
              f"{str(Path(options.root).absolute() / RECORD)!r}: continue with --ckpt_path last.", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:  # re-raised below unless it is a configuration or data problem
        reason = cli._reason(err, fit_args)
        if reason is None:
            raise
        print(f"darts-pl-progressive: error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
