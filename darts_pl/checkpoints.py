"""Checkpoints that survive kills and full disks, and what ``--ckpt_path last`` resumes from.

* ``AtomicCheckpointIO`` writes every checkpoint to a temporary file in its own directory and renames it
  over the final name: a kill or a full disk leaves the previous checkpoint intact, never a truncated one.
  It refuses to write a checkpoint that holds a NaN or an infinity (weights, alphas, optimizer state).
* ``newest_checkpoint`` picks the newest intact checkpoint of a run by what the files hold (the training
  step and epoch), whatever they are called (``last.ckpt``, ``last-v1.ckpt``, ``epoch=...ckpt``), and says
  which damaged ones it passed over.
* ``check_compatible`` compares a model with a checkpoint before anything of the run is written, and
  names what differs in one line.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from torch import nn
from typing_extensions import override

from darts_pl.atomic import atomic_open
from darts_pl.errors import ConfigurationError, NonFiniteError

REQUIRED_KEYS = ("state_dict", "epoch", "global_step")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes atomically, beside the target, and never writes NaN/inf values into
    the model's or the optimizers' state."""

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote filesystems: fsspec's way
            return
        # The model and its optimizers only: callbacks legitimately keep infinities (ModelCheckpoint's kth_value).
        bad = _first_nonfinite({key: checkpoint.get(key) for key in ("state_dict", "optimizer_states")})
        if bad is not None:
            raise NonFiniteError(f"refusing to write the checkpoint {str(path)!r}: {bad} holds NaN/inf values; the "
                                 "previous checkpoint is left as it was.", recoverable=False)
        get_filesystem(path).makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        with atomic_open(path, "wb") as handle:
            torch.save(checkpoint, handle)


def _first_nonfinite(value: Any, name: str = "checkpoint") -> str | None:
    """The key path of the first floating tensor below ``value`` with a NaN or an infinity."""
    if isinstance(value, torch.Tensor):
        return name if value.is_floating_point() and not bool(torch.isfinite(value).all()) else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _first_nonfinite(item, f"{name}[{key!r}]")
        if found is not None:
            return found
    return None


def read_checkpoint_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Epoch and step of a checkpoint file, read lazily (memory-mapped, no tensor copied).

    Raises:
        ConfigurationError: The file is empty, truncated, not a checkpoint, or lacks its training state.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ConfigurationError(f"checkpoint {str(path)!r} is empty (0 bytes)")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except ConfigurationError:
        raise
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):  # intact, holds objects beyond tensors: Lightning decides
            return {"epoch": -1, "global_step": -1}
        raise ConfigurationError(f"checkpoint {str(path)!r} is damaged: {_first_line(err)}") from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ConfigurationError(f"checkpoint {str(path)!r} is damaged or not a checkpoint: "
                                 f"{_first_line(err)}") from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ConfigurationError(f"checkpoint {str(path)!r} has no {', '.join(missing)}; it is not a resumable "
                                 "training checkpoint")
    return {"epoch": int(checkpoint["epoch"]), "global_step": int(checkpoint["global_step"])}


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def newest_checkpoint(directory: str | os.PathLike[str]) -> tuple[Path | None, dict[Path, str]]:
    """The newest intact ``*.ckpt`` in ``directory``, and each damaged file passed over with the reason.

    Newest means the highest training step, then epoch, then modification time: what the files hold,
    not what they are called. A file that disappears while it is looked at (a running ``ModelCheckpoint``
    removes the checkpoints it no longer keeps) is passed over silently.
    """
    directory = Path(directory)
    ranked, damaged = [], {}
    for path in sorted(directory.glob("*.ckpt")) if directory.is_dir() else []:
        try:
            header = read_checkpoint_header(path)
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        except ConfigurationError as err:
            if path.exists():
                damaged[path] = str(err)
            continue
        ranked.append(((header["global_step"], header["epoch"], mtime), path))
    return (max(ranked)[1] if ranked else None), damaged


LEGACY_SCHEDULE_KEY = "darts_pl.schedules"
LEGACY_PERTURBATION_KEY = "darts_pl.perturbation"


def upgrade_checkpoint(model: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Bring a checkpoint of an earlier release up to date, in place, before ``model`` loads it.

    Parts (:class:`darts_pl.parts.Part`) keep their state in the model's ``state_dict`` as extra state. Earlier
    releases kept the values schedules set under ``"darts_pl.schedules"`` (``{target: value}``) and a perturbation's
    generator under ``"darts_pl.perturbation"``, and other parts had no state: each part whose extra state is missing
    gets it from those keys where they held it, else its state as constructed (what the earlier run had).
    """
    from darts_pl.parts.base import Part, SeededNoise

    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, dict):
        return
    values = checkpoint.pop(LEGACY_SCHEDULE_KEY, None) or {}
    perturbation_noise = checkpoint.pop(LEGACY_PERTURBATION_KEY, None)
    for name, module in model.named_modules():
        key = f"{name}._extra_state" if name else "_extra_state"
        if key in state_dict:
            continue
        if isinstance(module, Part):
            state = module.part_state()
            for target, value in values.items():
                owner, _, attribute = target.rpartition(".")
                if owner == name and attribute in state:
                    state[attribute] = value
            state_dict[key] = state
        elif isinstance(module, SeededNoise):
            legacy = perturbation_noise if name == "perturbation.noise" else None
            state_dict[key] = legacy if legacy is not None else module.get_extra_state()


def check_compatible(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Raise ``ConfigurationError`` naming what differs when ``model`` cannot load the checkpoint at ``path``.

    Compares parameter and buffer names and shapes (and the names of modules' extra states), and the module
    class. Nothing is written.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    upgrade_checkpoint(model, checkpoint)
    saved = checkpoint.get("state_dict", {})
    current = model.state_dict()
    differences = []
    missing = sorted(set(current) - set(saved))
    unexpected = sorted(set(saved) - set(current))
    if missing:
        differences.append(f"{len(missing)} tensors of the model are not in the checkpoint (e.g. {missing[0]})")
    if unexpected:
        differences.append(f"{len(unexpected)} tensors of the checkpoint are not in the model (e.g. {unexpected[0]})")
    shapes = [name for name in sorted(set(saved) & set(current))  # extra states (a generator's, say) are no tensors
              if torch.is_tensor(saved[name]) and torch.is_tensor(current[name])
              and tuple(saved[name].shape) != tuple(current[name].shape)]
    if shapes:
        name = shapes[0]
        differences.append(f"{len(shapes)} tensors differ in shape (e.g. {name}: {tuple(saved[name].shape)} in the "
                           f"checkpoint, {tuple(current[name].shape)} now)")
    if differences:
        raise ConfigurationError(
            f"--ckpt_path {str(path)!r} comes from a different model: {'; '.join(differences)}. Resume with the "
            "run's own config (config.yaml in its run directory), or start a new run without --ckpt_path.")
