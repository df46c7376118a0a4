"""``DropPathSchedule``: the linear drop-path ramp of the DARTS training recipe."""
from __future__ import annotations

import lightning as L
import torch.nn as nn
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from darts_pl.errors import ConfigurationError
from darts_pl.parts.schedules import LinearSchedule


class DropPathSchedule(Callback):
    """Set the drop-path probability to ``drop_path_prob · epoch / max_epochs`` at every epoch start: a
    :class:`~darts_pl.parts.LinearSchedule` from 0 to ``drop_path_prob`` over ``max_epochs`` (``span: epochs``).

    As the original training code does: 0 in the first epoch, just under ``drop_path_prob`` in the last.
    It is written to every submodule with a ``drop_path_prob`` attribute (the derived network), and
    logged as ``drop_path_prob``. The value follows from the epoch alone, so a resumed run continues it.

    Args:
        drop_path_prob: The final probability; by default the LightningModule's own ``drop_path_prob``
            (``LitClassifier``'s argument).

    Raises:
        ConfigurationError: ``drop_path_prob`` outside [0, 1), ``trainer.max_epochs`` unset, or a module
            without a network that has drop path.

    Example::

        trainer = Trainer(max_epochs=600, callbacks=[DropPathSchedule()])
    """

    def __init__(self, drop_path_prob: float | None = None) -> None:
        if drop_path_prob is not None and not 0.0 <= drop_path_prob < 1.0:
            raise ConfigurationError(f"DropPathSchedule: drop_path_prob={drop_path_prob} must be in [0, 1), "
                                     "or null to use the model's drop_path_prob.")
        self.drop_path_prob = drop_path_prob

    @staticmethod
    def _targets(pl_module: L.LightningModule) -> list[nn.Module]:
        return [m for m in pl_module.modules() if m is not pl_module and hasattr(m, "drop_path_prob")]

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.max_epochs is None or trainer.max_epochs < 1:
            raise ConfigurationError(f"DropPathSchedule ramps over trainer.max_epochs, which is "
                                     f"{trainer.max_epochs}; set --trainer.max_epochs (600 in the paper).")
        if not self._targets(pl_module):
            raise ConfigurationError(f"DropPathSchedule: {type(pl_module).__name__} has no submodule with a "
                                     "drop_path_prob attribute; use it with LitClassifier.")
        if self.drop_path_prob is None and not isinstance(getattr(pl_module, "drop_path_prob", None), (int, float)):
            raise ConfigurationError(f"DropPathSchedule: {type(pl_module).__name__} has no drop_path_prob; "
                                     "pass DropPathSchedule(drop_path_prob=...).")

    def current(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """The probability for the current epoch."""
        final = self.drop_path_prob if self.drop_path_prob is not None else float(pl_module.drop_path_prob)
        schedule = LinearSchedule("drop_path_prob", start=0.0, end=final, span="epochs")
        return schedule.value(trainer.current_epoch, trainer.max_epochs)

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        prob = self.current(trainer, pl_module)
        for module in self._targets(pl_module):
            module.drop_path_prob = prob
        pl_module.log("drop_path_prob", prob, on_step=False, on_epoch=True)
