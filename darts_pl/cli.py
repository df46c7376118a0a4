"""The ``darts-pl`` command: LightningCLI over every model and data module of the package.

    darts-pl fit --config configs/search_cifar.yaml
    darts-pl fit --config configs/quickstart.yaml

Sizes that the data decides (``num_classes``, ``in_channels``, the text vocabulary's ``num_tokens``) are
copied from the data module into every ``init_args`` of the model that has them (the search space, or a
training module), so a config never has to repeat them.
"""
from __future__ import annotations

from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

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
    """LightningCLI that links the data module's sizes into the model (see the module docstring)."""

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        _link(cfg.get("model"), _data_sizes(cfg.get("data")))


def main(args: list[str] | None = None) -> None:
    DartsCLI(subclass_mode_model=True, subclass_mode_data=True, args=args,
             save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
