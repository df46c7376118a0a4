"""The ``darts-pl`` command: LightningCLI over every model and data module of the package.

    darts-pl fit --config configs/search_cifar.yaml
    darts-pl fit --config configs/quickstart.yaml

Sizes that the data decides (``num_classes``, ``in_channels``, the text vocabulary's ``num_tokens``) are
copied from the data module into every ``init_args`` of the model that has them (the search space, or a
training module), so a config never has to repeat them.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError, Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from darts_pl.errors import ConfigurationError, DataNotFoundError, NonFiniteError

LINKED_FROM_DATA = ("num_classes", "in_channels", "num_tokens")


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _data_sizes(data_cfg: Namespace) -> dict[str, int]:
    """Instantiate the data module (constructors do no I/O) and read the sizes it defines."""
    if not isinstance(data_cfg, Namespace) or not data_cfg.get("class_path"):
        return {}
    init_args = data_cfg.get("init_args") or Namespace()
    datamodule = _import(data_cfg.class_path)(**init_args.as_dict())
    sizes = {}
    for name in LINKED_FROM_DATA:
        value = getattr(datamodule, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            sizes[name] = value
    return sizes


def _link(cfg: Any, sizes: dict[str, int]) -> None:
    """Set every ``init_args.<name>`` below ``cfg`` to ``sizes[name]``."""
    if not isinstance(cfg, Namespace):
        return
    init_args = cfg.get("init_args")
    if isinstance(init_args, Namespace):
        for name, value in sizes.items():
            if name in init_args:
                init_args[name] = value
    for value in vars(init_args if isinstance(init_args, Namespace) else cfg).values():
        _link(value, sizes)


class DartsCLI(LightningCLI):
    """LightningCLI that links the data module's sizes into the model (see the module docstring) and
    raises parse errors instead of printing the usage, so ``main`` can report them in one line."""

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        parser = super().init_parser(**kwargs)
        parser.exit_on_error = False
        return parser

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        _link(cfg.get("model"), _data_sizes(cfg.get("data")))
        if cfg.get("ckpt_path") == "last":
            _resume_newest_run(cfg)


def _resume_newest_run(cfg: Namespace) -> None:
    """``--ckpt_path last``: continue the newest run under ``trainer.default_root_dir``, in its own directory.

    Lightning resolves ``last`` inside the new run's checkpoint folder, which is empty; here it is the
    newest ``last.ckpt`` below the root, and a TensorBoard/CSV logger is pointed at that run's version so
    its logs, genotypes and checkpoints continue where they were. Nothing found: a fresh run starts.
    """
    root = Path(cfg.trainer.get("default_root_dir") or ".")
    found = sorted(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not found:
        print(f"darts-pl: --ckpt_path last: no last.ckpt under {str(root)!r}; starting a fresh run.", file=sys.stderr)
        cfg.ckpt_path = None
        return
    ckpt = found[-1]
    cfg.ckpt_path = str(ckpt)
    run = ckpt.parent.parent  # <root>/<name>/version_N/checkpoints/last.ckpt
    if not (run.name.startswith("version_") and run.name[len("version_"):].isdigit()):
        return
    version, name, save_dir = int(run.name[len("version_"):]), run.parent.name, str(run.parent.parent)
    logger = cfg.trainer.get("logger")
    if logger in (None, True):
        cfg.trainer.logger = Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger",
                                       init_args=Namespace(save_dir=save_dir, name=name, version=version))
    elif isinstance(logger, Namespace) and logger.get("class_path", "").endswith(("TensorBoardLogger", "CSVLogger")):
        logger.init_args.version = version


def main(args: list[str] | None = None) -> None:
    """Entry point of ``darts-pl``. Bad settings and missing data exit with status 2 and one line."""
    try:
        DartsCLI(subclass_mode_model=True, subclass_mode_data=True, args=args,
                 save_config_kwargs={"overwrite": True})
    except NonFiniteError as err:
        print(f"darts-pl: stopped: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as err:  # re-raised below unless it is a configuration or data problem
        reason = _reason(err)
        if reason is None:
            raise
        print(f"darts-pl: error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:",
          "Expected a <class 'NoneType'>", "Given value type:")


def _reason(err: BaseException) -> str | None:
    """One line for a bad setting or missing data; ``None`` for any other failure (a real bug)."""
    seen: BaseException | None = err
    while seen is not None:  # our own errors, possibly wrapped by the config parser
        if isinstance(seen, (ConfigurationError, DataNotFoundError)):
            return str(seen).replace("\n", " ")
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, ArgumentError):
        lines = [line.strip(" -") for line in str(err).splitlines()]
        kept = [line for line in lines if line and not line.startswith(_NOISE)]
        text = " ".join(kept)
        return text if len(text) <= 400 else text[:397] + "..."
    return None


if __name__ == "__main__":
    main()
