"""What ``darts-pl`` says about two config mistakes whose parser message does not point at the fix.

* An overlay given before its base config (``--config configs/variants/gdas.yaml --config
  configs/quickstart.yaml``): the overlay sets ``init_args`` of a part whose ``class_path`` only the later file
  gives, and jsonargparse reports an option "not accepted" by a class the user never named. Config files
  are applied in order, so the fix is the order.
* A mistyped class path (``darts_pl.search.GumbleSoftmax``): jsonargparse says the path is "not accessible or
  invalid". Like timm's ``create_act`` on a miss, the hint names the closest known class (``difflib``) and
  lists the known classes of the kind the setting expects: the subclasses of its annotated type among
  darts_pl's modules (or, for a setting of another library's type such as an optimizer, in the module named).
"""
from __future__ import annotations

import collections.abc
import difflib
import importlib
import inspect
import pkgutil
import re
import sys
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

TOP_LEVEL = {"model": ("lightning.pytorch", "LightningModule"), "data": ("lightning.pytorch", "LightningDataModule"),
             "trainer.callbacks": ("lightning.pytorch.callbacks", "Callback"),
             "trainer.logger": ("lightning.pytorch.loggers", "Logger")}
"""The types of the settings that are no constructor argument of a class path."""

_EXPECTED_PATH = re.compile(r'Parser key "([^"]+)": Expected a path but (\S+) either not accessible or invalid')
_OWNER = re.compile(r"Parser key \"([^\"]+)\": Problem with given class_path '([^']+)'")
_DETAIL = re.compile(r"(module '[^']+' has no attribute '[^']+'|No module named '[^']+')")


# ----------------------------------------------------------------------------------- overlays out of order
def overlay_order(argv: Sequence[str]) -> str | None:
    """One line when a config file sets ``init_args`` of a part whose ``class_path`` a later file sets."""
    files = [(name, data) for name, data in _config_files(argv) if isinstance(data, dict)]
    for i, (early, data) in enumerate(files):
        for key in _parts_without_class(data):
            later = next((name for name, other in files[i + 1:] if _has_class(other, key)), None)
            if later is not None:
                return (f"{early} is an overlay: it sets {key}.init_args but not {key}.class_path, which {later} "
                        f"sets. Config files apply in order, so an overlay goes after the base config that sets it "
                        f"({later}): --config {later} --config {early}")
    return None


def _config_files(argv: Sequence[str]) -> Iterator[tuple[str, Any]]:
    """``(name as given, parsed YAML)`` of each ``--config`` file, in order (unreadable ones left out)."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            name = argv[index + 1]
        elif arg.startswith("--config="):
            name = arg.partition("=")[2]
        else:
            continue
        try:
            yield name, yaml.safe_load(Path(name).read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue


def _parts_without_class(data: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted keys of the parts below ``data`` given with ``init_args`` but no ``class_path``."""
    for key, value in data.items():
        if not isinstance(value, dict):
            continue
        path = f"{prefix}{key}"
        if "init_args" in value and "class_path" not in value:
            yield path
        yield from _parts_without_class(value, f"{path}.")


def _has_class(data: dict[str, Any], dotted: str) -> bool:
    node: Any = data
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return isinstance(node, dict) and "class_path" in node


# ----------------------------------------------------------------------------------- mistyped class paths
def class_path_typo(message: str) -> str | None:
    """One line for a class path that does not resolve: the closest known class and the known ones."""
    match = _EXPECTED_PATH.search(message)
    if match is None:
        return None
    key, value = match[1], match[2]
    owners = _OWNER.findall(message[:match.start()])
    option = ".init_args.".join([name for name, _ in owners] + [key])
    bases = _expected_bases(owners[-1][1], key) if owners else _top_level_bases(key)
    if not bases:
        return None
    known = _darts_pl_subclasses(bases, value.rpartition(".")[0]) or _module_subclasses(value, bases)
    detail = _DETAIL.search(message)
    line = f"--{option}: no class {value}" + (f" ({detail[1]})" if detail else "")
    best = _closest(value, known)
    if best:
        line += f"; did you mean {best}?"
    kind = " or ".join(base.__name__ for base in bases)
    if known:
        line += f" Known {kind} classes: {', '.join(sorted(known))}."
    return line


def _top_level_bases(key: str) -> list[type]:
    if key not in TOP_LEVEL:
        return []
    module, name = TOP_LEVEL[key]
    return [getattr(importlib.import_module(module), name)]


def _expected_bases(owner: str, key: str) -> list[type]:
    """The classes a constructor argument of ``owner`` is annotated with (Optional, lists and a callable's
    return type unwrapped)."""
    try:
        cls = _import(owner)
        hint = typing.get_type_hints(cls.__init__).get(key)
    except Exception:  # an owner that cannot be imported or annotations that cannot be resolved: no hint
        return []
    return [c for c in _classes_in(hint) if c.__module__ != "builtins"]


def _classes_in(hint: Any) -> list[type]:
    if isinstance(hint, type) and not typing.get_args(hint):
        return [hint]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is collections.abc.Callable and args:
        args = args[-1:]  # Callable[[params], T]: the class that is called
    return [cls for arg in args for cls in _classes_in(arg)]


def _darts_pl_subclasses(bases: list[type], preferred: str) -> list[str]:
    """Public paths of the concrete subclasses of ``bases`` defined in darts_pl (every module imported), through
    the ``preferred`` module (the one the mistyped path names) where it exports them."""
    import darts_pl

    for module in pkgutil.walk_packages(darts_pl.__path__, "darts_pl."):
        try:
            importlib.import_module(module.name)
        except Exception:  # a module whose optional dependency is missing holds no class to offer
            continue
    found = {cls for base in bases for cls in _all_subclasses(base)
             if cls.__module__.startswith("darts_pl.") and not cls.__module__.startswith("darts_pl.cli")
             and not cls.__name__.startswith("_")
             and not inspect.isabstract(cls) and cls not in bases}
    paths = {_public_path(cls, preferred) for cls in found}
    # Left out: helpers a package does not export (darts_pl.modules.resumable.ResumableRNG, a mixin).
    return sorted(path for path in paths if path.count(".") <= 2)


def _module_subclasses(value: str, bases: list[type]) -> list[str]:
    """Subclasses of ``bases`` in the module ``value`` names (an optimizer in ``torch.optim``, say)."""
    module_name = value.rpartition(".")[0]
    try:
        module = importlib.import_module(module_name)
    except Exception:  # no such module: nothing to offer
        return []
    return sorted(f"{module_name}.{name}" for name, obj in vars(module).items()
                  if isinstance(obj, type) and issubclass(obj, tuple(bases)) and obj not in bases
                  and not name.startswith("_"))


def _all_subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _public_path(cls: type, preferred: str = "") -> str:
    """``preferred.Name`` if that module exports ``cls``, else the shortest import path of ``cls`` along its
    defining module (``darts_pl.parts.GumbelSoftmax``, not ``darts_pl.parts.relaxation.GumbelSoftmax``)."""
    if getattr(sys.modules.get(preferred), cls.__name__, None) is cls:
        return f"{preferred}.{cls.__name__}"
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None and getattr(module, cls.__name__, None) is cls:
            return f"{'.'.join(parts[:end])}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__name__}"


def _closest(value: str, known: list[str]) -> str | None:
    match = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    if match:
        return match[0]
    names = {path.rpartition(".")[2]: path for path in known}
    match = difflib.get_close_matches(value.rpartition(".")[2], list(names), n=1, cutoff=0.6)
    return names[match[0]] if match else None


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------------- a resume of another model
def another_model(run: Path, runs: Path, model: Any) -> str:
    """What ``--ckpt_path last`` found instead of a run of this config (``model``: its resolved ``model``
    section), and the checkpoint of the newest run in ``runs`` whose config matches, if any."""
    saved = _model_section(run)
    method, this = _method(saved), _method(model)
    if method and this and method != this:
        what = f"is a {method} search (this config: {this})"
    else:
        difference = _first_difference(saved, model, "model")
        what = "was started with another model config" + (f" ({difference})" if difference else "")
    line = f"The newest run here, {str(run)!r}, {what}; "
    match = _newest_matching(runs, run, model)
    if match is None:
        return line + f"no run in {str(runs)!r} has this model config."
    return line + f"the newest run with this config is {str(match.parents[1])!r}: continue it with --ckpt_path " \
                  f"{str(match)!r}."


def _model_section(run: Path) -> Any:
    try:
        return (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("model")
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return None


def _method(model: Any) -> str | None:
    init_args = model.get("init_args") if isinstance(model, dict) else None
    return init_args.get("method") if isinstance(init_args, dict) else None


def _first_difference(there: Any, here: Any, path: str) -> str | None:
    """``path: value there, value here`` of the first setting that differs."""
    if isinstance(there, dict) and isinstance(here, dict):
        for key in [*there, *(k for k in here if k not in there)]:
            found = _first_difference(there.get(key), here.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(there, list) and isinstance(here, list) and len(there) == len(here):
        return next((d for i, (a, b) in enumerate(zip(there, here))
                     if (d := _first_difference(a, b, f"{path}[{i}]"))), None)
    if there == here:
        return None
    return f"{path}: {_short(there)} there, {_short(here)} in this one"


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _newest_matching(runs: Path, skip: Path, model: Any) -> Path | None:
    """The newest intact checkpoint of the newest run below ``runs`` (other than ``skip``) with this model config."""
    from darts_pl.checkpoints import newest_checkpoint

    found: list[tuple[float, Path]] = []
    for run in runs.iterdir() if runs.is_dir() else []:
        if run == skip or not run.is_dir() or _model_section(run) != model:
            continue
        ckpt = newest_checkpoint(run / "checkpoints")[0]
        try:
            found.append((ckpt.stat().st_mtime, ckpt)) if ckpt is not None else None
        except FileNotFoundError:
            continue
    return max(found)[1] if found else None
