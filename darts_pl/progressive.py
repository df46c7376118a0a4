"""``darts-pl-progressive``: a search in stages, each one ``darts-pl fit`` run, as a method's recipe declares them
(:mod:`darts_pl.recipes`): P-DARTS (Chen et al., "Progressive Differentiable Architecture Search: Bridging the Depth
Gap between Search and Evaluation", ICCV 2019) and DrNAS's progressive learning (Chen et al., "DrNAS: Dirichlet
Neural Architecture Search", ICLR 2021).

    darts-pl-progressive --config configs/search_cifar.yaml --config configs/variants/pdarts.yaml
    darts-pl-progressive --config configs/search_cifar.yaml --config configs/variants/drnas.yaml --recipe drnas
    darts-pl-progressive ... --ckpt_path last            # continue: finished stages are not run again

``--recipe`` names the recipe; without it, the config's ``model.init_args.method`` does when a recipe has that name
(``pdarts``, ``drnas``), and P-DARTS otherwise. Each recipe has options of its own (``--help`` with ``--recipe``
lists them; defaults are the authors' CIFAR-10 search).

P-DARTS: each stage searches a deeper supernet on fewer candidate ops per edge: the authors' CIFAR-10 recipe
(``train_search.py`` with ``--add_layers 6 --add_layers 12 --dropout_rate 0.1 0.4 0.7``) runs 5, 11 and 17
cells on 8, 5 and 3 ops per edge. After a stage, each edge keeps the ops with the highest final probabilities
(``none`` included, as the authors' ``get_min_k``); the next stage starts afresh (new weights and alphas) on
those ops (``CNNSearchSpace(edge_primitives=...)``). Every stage has dropout on its skip connections, from the
stage's rate, decayed by an :class:`~darts_pl.parts.ExponentialSchedule`; the last stage derives the cell
with at most ``max_skips`` skip connections in the normal cell (:class:`~darts_pl.search.MaxSkips`).

DrNAS: two stages on one supernet (20 cells, 36 channels), partial channels K = 6 then 4, 25 epochs each with 10
warm-up epochs, one cosine learning rate over the 50; after stage 1 each edge keeps its 4 ops with the highest
alphas, masked in stage 2 (``alpha_columns: primitives``), which starts from stage 1's last checkpoint with its ops
widened, its alphas, optimizers and schedule (``darts_pl.callbacks.WarmStart``).

Everything after the driver's own options is passed to ``darts-pl fit`` for every stage (configs and overrides);
the driver adds, per stage, ``--config <root>/stage_N/stage.yaml`` (the keys the recipe sets: P-DARTS's
``num_cells``, ``edge_primitives``, ``skip_dropout``, ``warmup_epochs``, ``schedules`` and, last, ``derivation``;
DrNAS's ``trainer.max_epochs``, ``channels``, ``num_cells``, ``edge``, ``edge_primitives``, ``alpha_columns``,
``warmup_epochs``, the weight scheduler's ``T_max`` and, from stage 2, a ``WarmStart`` callback: these keys belong to
the driver) and ``--trainer.default_root_dir <root>/stage_N``. It writes, under ``--root`` (``runs/<recipe>`` by
default):

* ``stage_N/``: the stage's run (its own run directory, config, checkpoints, genotype, alpha history);
* ``stages.json``: the recipe, its settings, and per finished stage its run directory and last checkpoint, the op
  sets it searched, its final probabilities, its genotype and the op sets it passes on (``pruned``);
* ``genotype.json``: the last stage's genotype, the result.

``--ckpt_path last`` continues: finished stages (recorded in ``stages.json``) are not run again, the first
unfinished one continues from its newest checkpoint (``darts-pl fit --ckpt_path last``), the rest follow.
Stage results are read from the run's ``alpha_history.npz`` (``ArchitectureMonitor``), ``genotype.json``
(``GenotypeCheckpoint``) and last checkpoint: the config needs both callbacks and a ``ModelCheckpoint``, as
``search_cifar.yaml`` and ``quickstart.yaml`` have.

Notes (deviations from the authors' code):
    * P-DARTS: the authors clip the alpha gradient at norm 5 (``grad_clip``); ``LitSearch`` clips the weight
      gradient only. Their weight learning rate follows ``scheduler.step()`` before each epoch (PyTorch 0.4 order),
      one epoch ahead of the cosine schedule; here the cosine starts at the initial rate.
    * DrNAS: the widening's channel picks come from a generator of their own (``--widen_seed``), where the authors'
      draw from the global generator in the state their 25 epochs left it; the Dirichlet samples continue from
      stage 1's sampler (the authors' global generator continues too).
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from darts_pl import cli, genotypes
from darts_pl.atomic import atomic_write
from darts_pl.callbacks.monitor import HISTORY_ARRAYS, AlphaHistory
from darts_pl.errors import ConfigurationError
from darts_pl.recipes import (
    CELLS,
    RECIPES,
    Recipe,
    Stage,
    last_checkpoint,
    prune_edge_primitives,
)

__all__ = ["RECIPES", "main", "prune_edge_primitives", "run", "run_fit"]

FORMAT = "darts_pl.progressive/1"
RECORD = "stages.json"
DRIVER = ("--trainer.default_root_dir", "--ckpt_path")
"""``darts-pl fit`` options the driver sets for every stage."""


def _parser(recipe: Recipe | None = None) -> argparse.ArgumentParser:
    """The driver's options, with ``recipe``'s (all recipes' names, to set them apart from ``darts-pl fit``'s, when
    none is given)."""
    parser = argparse.ArgumentParser(
        prog="darts-pl-progressive", allow_abbrev=False,
        description="A progressive search in stages (P-DARTS, DrNAS), each a `darts-pl fit` run; arguments after "
                    "these options (--config ..., --trainer...., --model....) go to every stage's `darts-pl fit`.")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                        help="the method's stages (default: the config's model.init_args.method if a recipe has that "
                             "name, else pdarts)")
    parser.add_argument("--root", default=None, help="directory of the stages (stage_N/), stages.json and "
                        "genotype.json (default: runs/<recipe>)")
    parser.add_argument("--ckpt_path", choices=["last"], default=None,
                        help="'last': skip the finished stages and continue the first unfinished one")
    if recipe is not None:
        recipe.add_arguments(parser.add_argument_group(f"recipe {recipe.name}"))  # type: ignore[arg-type]
    else:
        for name in _recipe_options():
            parser.add_argument(name, nargs="*", default=argparse.SUPPRESS)
    return parser


def _recipe_options(recipe: Recipe | None = None) -> list[str]:
    """The option names of ``recipe`` (of every recipe when ``None``)."""
    names: list[str] = []
    for item in [recipe] if recipe is not None else RECIPES.values():
        probe = argparse.ArgumentParser(add_help=False)
        item.add_arguments(probe)
        names += [opt for action in probe._actions for opt in action.option_strings if opt not in names]
    return names


def _recipe(argv: list[str]) -> tuple[Recipe, argparse.Namespace, list[str], Any]:
    """The recipe, the driver's options, the arguments for ``darts-pl fit`` and their resolved config."""
    first, fit_args = _parser().parse_known_args(argv)
    config = cli.resolve_config(fit_args)
    name = first.recipe
    if name is None:
        method = config.model.init_args.get("method") if config.get("model") is not None else None
        name = method if method in RECIPES else "pdarts"
    recipe = RECIPES[name]
    foreign = sorted(set(vars(first)) - {"recipe", "root", "ckpt_path"} - set(
        opt.lstrip("-") for opt in _recipe_options(recipe)))
    if foreign:
        owners = [r.name for r in RECIPES.values() if f"--{foreign[0]}" in _recipe_options(r)]
        raise ConfigurationError(f"--{foreign[0]} is an option of recipe {', '.join(owners)}, not of {name}; remove it "
                                 f"(or give --recipe {owners[0]}).")
    options, fit_args = _parser(recipe).parse_known_args(argv)
    if options.root is None:
        options.root = f"runs/{recipe.name}"
    return recipe, options, fit_args, config


def run_fit(args: list[str]) -> None:
    """One stage: ``darts-pl`` with ``args`` (exits with its status on failure)."""
    argv, sys.argv = sys.argv, sys.argv[:1]  # the stage's arguments are ``args`` alone (LightningCLI warns otherwise)
    try:
        cli.main(args)
    finally:
        sys.argv = argv


def _check_keep_ops(keep_ops: list[int], config: Any) -> None:
    """Refuse, before any stage runs, to keep more ops per edge than the first stage searches (the config's
    ``primitives``, or its ``edge_primitives`` where a space was pruned by hand)."""
    if not keep_ops:
        return
    space = config.model.init_args.get("space") if config.get("model") is not None else None
    space_args = space.get("init_args") if space is not None else None
    primitives = list(space_args.get("primitives") or []) if space_args is not None else []
    if not primitives:
        return
    edge_primitives = space_args.get("edge_primitives") or {}
    rows = [row for cell_rows in dict(edge_primitives).values() for row in cell_rows] or [primitives]
    fewest = min(len(row) for row in rows)
    if keep_ops[0] > fewest:
        given = " ".join(map(str, keep_ops))
        where = "per edge in its edge_primitives" if edge_primitives else f"(primitives: {', '.join(primitives)})"
        raise ConfigurationError(f"--keep_ops {given}: stage 2 would keep {keep_ops[0]} ops per edge, but "
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


def _finish_stage(stage: Stage, index: int, stage_dir: Path,
                  given: Mapping[str, list[list[str]]] | None) -> dict[str, Any]:
    """Read a finished stage's result (``given``: the op sets the driver gave it) and prune its op sets for the
    next stage."""
    run = _stage_result(stage_dir)
    history, genotype = _read_stage(index, stage_dir, run)
    primitives = history.primitives
    probs = {cell: history.probs[cell][-1].tolist() for cell in CELLS}  # (edges, len(primitives)), last epoch
    searched = {cell: [list(primitives) for _ in probs[cell]] for cell in CELLS}
    searched.update(given or _configured_edge_primitives(run))
    entry: dict[str, Any] = {
        "stage": index + 1, **stage.record, "run_dir": str(run), "checkpoint": str(last_checkpoint(run)),
        "primitives": primitives, "edge_primitives": searched, "probs": probs, "genotype": genotypes.to_dict(genotype),
    }
    if stage.pruning is not None:
        entry["pruned"] = stage.pruning.prune(run, probs, searched, primitives)
    return entry


def _load_record(root: Path, recipe: Recipe, settings: Mapping[str, Any], resume: bool) -> dict[str, Any]:
    path = root / RECORD
    if not path.is_file():
        return {"format": FORMAT, "recipe": recipe.name, "settings": dict(settings), "stages": []}
    if not resume:
        raise ConfigurationError(f"{str(path)!r} already records a progressive search; continue it with --ckpt_path "
                                 "last, or choose another --root.")
    record = _read_record(path, len(settings["keep_ops"]))
    planned = record.get("recipe", "pdarts")  # records of the P-DARTS-only driver name no recipe
    if planned != recipe.name:
        raise ConfigurationError(f"{str(path)!r} records a {planned} search; continue it with --recipe {planned}, or "
                                 "choose another --root.")
    if record.get("settings") != dict(settings):
        raise ConfigurationError(f"{str(path)!r} was planned with {record.get('settings')}; continue it with the same "
                                 f"stage options (got {dict(settings)}), or choose another --root.")
    return record


STAGE_FIELDS = ("stage", "run_dir", "primitives", "edge_primitives", "probs", "genotype")
"""What every recorded stage holds (and ``pruned``, the op sets of the next stage, for all but the last)."""


def _read_record(path: Path, pruned_stages: int) -> dict[str, Any]:
    """``stages.json``, checked for what the driver reads from it; one line naming the file if it is damaged."""
    try:
        record = json.loads(path.read_text())
        problem = _record_problem(record, pruned_stages)
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


def _stage_config(stages: list[Stage], index: int, record: Mapping[str, Any]) -> dict[str, Any]:
    """Stage ``index``'s overlay: its own keys, the op sets the previous stage passed on (in the form its pruning
    gives them), and the callback that starts it from the previous stage's end."""
    config = json.loads(json.dumps(stages[index].overrides))  # a deep copy
    if index == 0:
        return config
    previous, done = stages[index - 1], record["stages"][index - 1]
    if previous.pruning is not None:
        space = config.setdefault("model", {}).setdefault("init_args", {}).setdefault("space", {})
        space.setdefault("init_args", {}).update(previous.pruning.space(done["pruned"]))
    if stages[index].warm_start is not None:
        checkpoint = done.get("checkpoint") or str(last_checkpoint(Path(done["run_dir"])))
        config.setdefault("trainer", {})["callbacks+"] = [stages[index].warm_start.callback(checkpoint)]
    return config


def run(options: argparse.Namespace, fit_args: list[str], recipe: Recipe | None = None,
        config: Any = None) -> dict[str, Any]:
    """Run (or continue) every stage of ``recipe`` (P-DARTS when omitted); returns the record written to
    ``stages.json``."""
    recipe = recipe if recipe is not None else RECIPES["pdarts"]
    settings = recipe.settings(options)
    owned = [arg.split("=")[0] for arg in fit_args if arg.split("=")[0] in DRIVER + recipe.owned]
    if owned:
        raise ConfigurationError(f"darts-pl-progressive sets each stage's --trainer.default_root_dir (use --root) and "
                                 f"its --ckpt_path (use the driver's --ckpt_path last); recipe {recipe.name} also sets "
                                 f"{', '.join(recipe.owned) or 'nothing else'} (see its options). Remove {owned[0]}.")
    config = config if config is not None else cli.resolve_config(fit_args)
    _check_keep_ops(settings["keep_ops"], config)
    recipe.check(settings, config)
    root = Path(options.root if options.root is not None else f"runs/{recipe.name}").absolute()
    record = _load_record(root, recipe, settings, options.ckpt_path == "last")
    stages = recipe.stages(settings)
    done = len(record["stages"])
    for index in range(done, len(stages)):
        stage_dir = root / f"stage_{index + 1}"
        previous = record["stages"][index - 1].get("pruned") if index > 0 else None
        overlay = stage_dir / "stage.yaml"
        stage_dir.mkdir(parents=True, exist_ok=True)
        header = f"# darts-pl-progressive: {recipe.name} stage {index + 1} of {len(stages)} (written by the driver)\n"
        text = yaml.safe_dump(_stage_config(stages, index, record), sort_keys=False, default_flow_style=None)
        atomic_write(overlay, header + text)
        args = ["fit", *fit_args, "--config", str(overlay), "--trainer.default_root_dir", str(stage_dir)]
        if index == done and options.ckpt_path == "last":
            args += ["--ckpt_path", "last"]
        ops = len(previous["normal"][0]) if previous else "all"
        start = ", from the previous stage's end" if stages[index].warm_start is not None else ""
        print(f"darts-pl-progressive: {recipe.name} stage {index + 1}/{len(stages)}: {stages[index].label}, {ops} ops "
              f"per edge{start} -> {stage_dir}", file=sys.stderr)
        run_fit(args)
        record["stages"].append(_finish_stage(stages[index], index, stage_dir, previous))
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
    argv = sys.argv[1:] if argv is None else list(argv)
    root: str | None = None
    try:
        recipe, options, fit_args, config = _recipe(argv)
        root = options.root
        run(options, fit_args, recipe, config)
    except KeyboardInterrupt:  # between stages (a stage's own run reports and exits by itself)
        where = f" in {str(Path(root).absolute() / RECORD)!r}" if root else ""
        print(f"darts-pl-progressive: stopped by SIGINT; the finished stages are recorded{where}: continue with "
              "--ckpt_path last.", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:  # re-raised below unless it is a configuration or data problem
        reason = cli._reason(err, argv)
        if reason is None:
            raise
        print(f"darts-pl-progressive: error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
