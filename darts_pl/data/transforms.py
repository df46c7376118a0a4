"""Image transforms the DARTS recipes use beyond torchvision's."""
from __future__ import annotations

import torch

from darts_pl.errors import ConfigurationError


class Cutout:
    """Zero a ``length``×``length`` square at a uniformly random centre (DeVries & Taylor, 2017).

    Applied to a normalised ``(C, H, W)`` tensor, as in the original DARTS training code; the square is
    clipped at the image border, so near a corner less than ``length²`` pixels are masked.
    """

    def __init__(self, length: int, generator: torch.Generator | None = None) -> None:
        if length < 1:
            raise ConfigurationError(f"Cutout: length={length} must be >= 1 (16 in the paper's CIFAR-10 recipe).")
        self.length = length
        self.generator = generator

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        y = int(torch.randint(h, (1,), generator=self.generator))
        x = int(torch.randint(w, (1,), generator=self.generator))
        half = self.length // 2
        y1, y2 = max(0, y - half), min(h, y + half)
        x1, x2 = max(0, x - half), min(w, x + half)
        img = img.clone()
        img[..., y1:y2, x1:x2] = 0.0
        return img

    def __repr__(self) -> str:
        return f"Cutout(length={self.length})"


def check_cutout_length(owner: str, cutout_length: int) -> None:
    """Refuse a negative ``cutout_length`` of a data module (0 disables cutout)."""
    if cutout_length < 0:
        raise ConfigurationError(f"{owner}: cutout_length={cutout_length} must be >= 0 (0 disables cutout; 16 in the "
                                 "paper's CIFAR-10 training recipe).")
