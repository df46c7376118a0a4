"""Images, tables and text for whichever of the trainer's loggers can show them, on the scalars' step axis.

Scalars go through ``LightningModule.log`` and reach every logger; richer media need each logger's own
API: W&B takes ``wandb.Image``/``wandb.Table``/``wandb.Html`` in ``run.log`` (on the
``trainer/global_step`` axis Lightning's ``WandbLogger`` defines), TensorBoard takes ``add_image``,
``add_histogram`` and ``add_text``. Other loggers (CSV, MLflow...) get no media. Call these on rank 0 only.

Every entry is logged at :func:`log_step`, the step Lightning gives the scalars logged at the same moment:
the index of the search iteration (one batch: an alpha step and a weight step) that has just run. So a
heatmap of epoch e sits on the same x value as epoch e's losses. ``trainer.global_step`` is another axis:
it counts optimizer steps, two per iteration (one in warm-up epochs).
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger


def iterations(trainer: L.Trainer) -> int:
    """Search iterations (training batches) run so far, the current one included, over the whole fit."""
    return trainer.fit_loop.epoch_loop.batch_progress.total.ready


def log_step(trainer: L.Trainer) -> int:
    """The x value of what is logged now: the index of the iteration that has just run (0 before the first).

    Lightning logs a batch's scalars, and at the end of an epoch the epoch's, at this index.
    """
    return max(iterations(trainer) - 1, 0)


def wants_media(trainer: L.Trainer) -> bool:
    """Whether any logger shows images (so figures are worth rendering)."""
    return any(isinstance(logger, (WandbLogger, TensorBoardLogger)) for logger in trainer.loggers)


def _wandb_log(trainer: L.Trainer, payload: dict[str, Any]) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_metrics({**payload, "epoch": trainer.current_epoch}, step=log_step(trainer))


def _tensorboards(trainer: L.Trainer) -> list[Any]:
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def log_images(trainer: L.Trainer, images: dict[str, np.ndarray | str]) -> None:
    """Log ``{key: (H, W, 3) uint8 array or PNG path}``."""
    if not images:
        return
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        _wandb_log(trainer, {key: wandb.Image(image) for key, image in images.items()})
    for writer in _tensorboards(trainer):
        for key, image in images.items():
            array = _read_png(image) if isinstance(image, str) else image
            writer.add_image(key, array, log_step(trainer), dataformats="HWC")


def log_table(trainer: L.Trainer, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table: ``wandb.Table`` on W&B, a Markdown table in TensorBoard's text tab."""
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        _wandb_log(trainer, {key: wandb.Table(columns=list(columns), data=[list(row) for row in rows])})
    writers = _tensorboards(trainer)
    if writers:
        def cell(value: Any) -> str:
            return f"{value:.4f}" if isinstance(value, float) else str(value)
        markdown = "\n".join([
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
        ])
        for writer in writers:
            writer.add_text(key, markdown, log_step(trainer))


def log_text(trainer: L.Trainer, key: str, text: str) -> None:
    """Preformatted text: ``wandb.Html`` on W&B, a code block in TensorBoard's text tab."""
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        _wandb_log(trainer, {key: wandb.Html(f"<pre>{html.escape(text)}</pre>")})
    for writer in _tensorboards(trainer):
        writer.add_text(key, "\n".join("    " + line for line in text.splitlines()), log_step(trainer))


def log_histograms(trainer: L.Trainer, values: dict[str, np.ndarray]) -> None:
    """Histograms, TensorBoard only (W&B draws the per-op scalars and the table instead)."""
    for writer in _tensorboards(trainer):
        for key, value in values.items():
            writer.add_histogram(key, value, log_step(trainer))


def _read_png(path: str) -> np.ndarray:
    from matplotlib.image import imread

    image = imread(path)  # (H, W, 3|4) floats in [0, 1] for PNGs
    return (image[..., :3] * 255).round().astype(np.uint8)
