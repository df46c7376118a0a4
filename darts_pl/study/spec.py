"""What a study is: methods × axis values × seeds over one base config, and the record that ties a root to it.

A study file is YAML in the style of LightningCLI configs, parsed by jsonargparse into :class:`Study` (an unknown
or mistyped key is one line, exit status 2)::

    name: quickstart
    root: runs/studies/quickstart
    base: [configs/quickstart.yaml]              # --config files of every cell, in order
    args: [--trainer.max_epochs, "3"]             # darts-pl fit arguments of every cell
    methods:
      - name: darts
      - name: gdas
        overlays: [configs/variants/gdas.yaml]
        args: [--model.init_args.space.init_args.relaxation.init_args.seed, "{seed}"]
    seeds: [0, 1]
    axes:                                         # optional: more dimensions of the grid
      - name: channels
        values:
          - {name: c4, args: [--model.init_args.space.init_args.channels, "4"]}
          - {name: c8, args: [--model.init_args.space.init_args.channels, "8"]}

Every cell of the grid is one ``darts-pl fit`` run in ``<root>/<method>/<axis>=<value>/.../seed_<s>/``. Its
arguments come in the file's order, and later ones win as in any LightningCLI command: the base configs, the study's
``args``, the method's overlays and ``args``, each axis value's overlays and ``args``, then the runner's own
(``--seed_everything``, ``--trainer.default_root_dir``...). So a method's overlay wins over the study's ``args``:
give a setting every method must share after the overlays (an axis with one value) if an overlay sets it too.
``{seed}`` in any argument becomes the cell's seed (the noise generators of GDAS, DrNAS and SDARTS have seeds of
their own; ``--seed_everything`` does not reach them).

The grid (name, base, args, methods, seeds, axes) is what a root is for: the root records it (``study.yaml``, the
effective study; ``study.json``, its canonical form and hash), and a study whose grid differs is refused there.
Where and how the cells run (root, executor, parallel, slurm) may change between invocations.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from darts_pl.errors import ConfigurationError

FORMAT = "darts_pl.study/1"
RECORD = "study.json"
STUDY_COPY = "study.yaml"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
RESERVED = ("--trainer.default_root_dir", "--seed_everything", "--ckpt_path")
"""Arguments the runner sets for every cell."""
Executor = Literal["local", "submitit_local", "slurm"]


@dataclass
class Method:
    """One search method: what it puts after the base config.

    Args:
        name: Its directory and label (letters, digits, ``._+-``).
        overlays: Config files given as ``--config`` after the base configs, e.g. ``configs/variants/gdas.yaml``.
        args: Further ``darts-pl fit`` arguments after the overlays; ``{seed}`` becomes the cell's seed.
    """

    name: str
    overlays: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)


@dataclass
class AxisValue:
    """One value of an axis: a name and the overlays/arguments that set it (as :class:`Method`)."""

    name: str
    overlays: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)


@dataclass
class Axis:
    """A further dimension of the grid (a space, a dataset, a hyperparameter).

    Args:
        name: Its name; a cell's directory level is ``<name>=<value name>``.
        values: Its values, each applied after the method's overlays and arguments.
    """

    name: str
    values: list[AxisValue]


@dataclass
class Study:
    """A grid of ``darts-pl fit`` runs: every method × every combination of axis values × every seed.

    Args:
        root: Directory of the study: one subdirectory per cell, the record and the report.
        methods: The methods compared.
        base: Config files (``--config``) every cell starts from.
        args: ``darts-pl fit`` arguments of every cell, after the base configs.
        seeds: ``--seed_everything`` of the cells.
        axes: Further dimensions of the grid.
        name: The study's name (report title, W&B group); the root's directory name when omitted.
        executor: ``local``: ``darts-pl fit`` subprocesses on this machine, ``parallel`` at once; ``slurm``: one
            SLURM job per cell through submitit (a job array), ``slurm`` holding its options; ``submitit_local``:
            the same submitit path on this machine (to try a study file before a cluster).
        parallel: Cells run at once by ``local`` and ``submitit_local`` (each gets ``cores // parallel``
            threads unless ``OMP_NUM_THREADS`` is set).
        slurm: Parameters of ``submitit.AutoExecutor.update_parameters`` (``timeout_min``, ``gpus_per_node``,
            ``tasks_per_node``, ``cpus_per_task``, ``mem_gb``, ``slurm_partition``, ``slurm_array_parallelism``...).
    """

    root: str
    methods: list[Method]
    base: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    axes: list[Axis] = field(default_factory=list)
    name: str | None = None
    executor: Executor = "local"
    parallel: int = 1
    slurm: dict[str, Any] = field(default_factory=dict)

    def grid(self) -> dict[str, Any]:
        """The part that decides the results (canonical, JSON-able): what a root records and checks."""
        return {"name": self.title, "base": list(self.base), "args": list(self.args),
                "methods": [asdict(m) for m in self.methods], "seeds": list(self.seeds),
                "axes": [asdict(a) for a in self.axes]}

    @property
    def title(self) -> str:
        return self.name or Path(self.root).absolute().name

    def cells(self) -> Iterator[CellKey]:
        """Every cell, method by method, then axis values, then seeds (the order they run in)."""
        combos = itertools.product(*[[(axis.name, value) for value in axis.values] for axis in self.axes])
        combos = list(combos)
        for method in self.methods:
            for combo in combos:
                for seed in self.seeds:
                    yield CellKey(method, tuple(combo), seed)


@dataclass
class CellKey:
    """One cell of a study: a method, one value of every axis, a seed."""

    method: Method
    combo: tuple[tuple[str, AxisValue], ...]
    seed: int

    @property
    def axes(self) -> dict[str, str]:
        return {axis: value.name for axis, value in self.combo}

    @property
    def relative_dir(self) -> Path:
        """``<method>/<axis>=<value>/.../seed_<s>``."""
        return Path(self.method.name, *[f"{axis}={value.name}" for axis, value in self.combo], f"seed_{self.seed}")

    @property
    def label(self) -> str:
        return str(self.relative_dir)

    def fit_args(self, study: Study) -> list[str]:
        """The cell's ``darts-pl fit`` arguments from the study (the runner adds its own after these)."""
        args: list[str] = []
        for path in study.base:
            args += ["--config", str(Path(path).absolute())]
        args += study.args
        for part in (self.method, *[value for _, value in self.combo]):
            for path in part.overlays:
                args += ["--config", str(Path(path).absolute())]
            args += part.args
        return [arg.replace("{seed}", str(self.seed)) for arg in args]


def study_hash(grid: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of the canonical grid."""
    return hashlib.sha256(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:16]


def _check_name(what: str, name: str) -> None:
    if not NAME.match(name) or name.startswith("seed_") or "=" in name:
        raise ConfigurationError(f"{what}={name!r} cannot name a directory; use letters, digits and ._+- (not "
                                 "starting with 'seed_', no '=').")


def _check_unique(what: str, names: Sequence[str]) -> None:
    seen = [n for i, n in enumerate(names) if n in names[:i]]
    if seen:
        raise ConfigurationError(f"{what}: {seen[0]!r} is given twice; give every one its own name.")


def _check_args(what: str, args: Sequence[str]) -> None:
    for arg in args:
        if arg.split("=")[0] in RESERVED:
            raise ConfigurationError(f"{what}: {arg!r} is set by the study for every cell (the seed from seeds:, the "
                                     "directory from root:, --ckpt_path last on a rerun); remove it.")
        if arg == "fit":
            raise ConfigurationError(f"{what}: give the arguments after `darts-pl fit`, without 'fit'.")


def _check_files(what: str, paths: Sequence[str]) -> None:
    for path in paths:
        if not Path(path).is_file():
            raise ConfigurationError(f"{what}: config file {path!r} does not exist (relative paths are read from the "
                                     f"current directory, {str(Path.cwd())!r}); fix the path or run from the directory "
                                     "it is relative to.")


def validate(study: Study) -> Study:
    """Check names, arguments, files and sizes; raises ``ConfigurationError`` with one line."""
    if not study.methods:
        raise ConfigurationError("methods: the study has no method; list at least one (name, overlays, args).")
    if not study.seeds:
        raise ConfigurationError("seeds: the study has no seed; give at least one, e.g. seeds: [0, 1, 2].")
    if study.parallel < 1:
        raise ConfigurationError(f"parallel={study.parallel}: run at least one cell at a time (parallel >= 1).")
    _check_unique("seeds", [str(s) for s in study.seeds])
    _check_unique("methods", [m.name for m in study.methods])
    _check_unique("axes", [a.name for a in study.axes])
    _check_files("base", study.base)
    _check_args("args", study.args)
    for m in study.methods:
        _check_name("methods[].name", m.name)
        _check_files(f"methods[{m.name}].overlays", m.overlays)
        _check_args(f"methods[{m.name}].args", m.args)
    for axis in study.axes:
        _check_name("axes[].name", axis.name)
        if not axis.values:
            raise ConfigurationError(f"axes[{axis.name}].values is empty; give the axis at least one value.")
        _check_unique(f"axes[{axis.name}].values", [v.name for v in axis.values])
        for value in axis.values:
            _check_name(f"axes[{axis.name}].values[].name", value.name)
            _check_files(f"axes[{axis.name}].values[{value.name}].overlays", value.overlays)
            _check_args(f"axes[{axis.name}].values[{value.name}].args", value.args)
    return study


def config_files(study: Study) -> list[str]:
    """Every config file the grid names, once, in order."""
    parts = [*study.methods, *[v for a in study.axes for v in a.values]]
    return list(dict.fromkeys([*study.base, *[p for part in parts for p in part.overlays]]))


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """What changed from ``old`` to ``new`` (JSON-like values), as ``key: old -> new`` phrases; lists of named
    entries (methods, axes, values) are compared by name."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found = []
        for key in [*old, *[k for k in new if k not in old]]:
            path = f"{where}.{key}" if where else str(key)
            if key not in new:
                found.append(f"{path} removed")
            elif key not in old:
                found.append(f"{path} added ({json.dumps(new[key])})")
            else:
                found += differences(old[key], new[key], path)
        return found
    if _named(old) and _named(new):
        return differences({e["name"]: e for e in old}, {e["name"]: e for e in new}, where) or (
            [] if [e["name"] for e in old] == [e["name"] for e in new] else [f"{where}: order changed"])
    return [] if old == new else [f"{where}: {json.dumps(old)} -> {json.dumps(new)}"]


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(e, Mapping) and "name" in e for e in value)
