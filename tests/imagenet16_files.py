"""Tiny downsampled-ImageNet 16×16 batches in the real pickle format (``train_data_batch_1..10``, ``val_data``)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def labels_for(n: int, offset: int) -> list[int]:
    """1-based labels in 1..1000 that mix kept (<= 120) and dropped classes; every kept class from 1 to 8 and 120
    appear (so the first and last of ImageNet16-120 are there)."""
    cycle = [1, 2, 121, 3, 4, 500, 5, 6, 1000, 7, 8, 120]
    return [cycle[(i + offset) % len(cycle)] for i in range(n)]


def write_imagenet16(root: Path, per_batch: int = 12, val_size: int = 24, seed: int = 0) -> Path:
    """``root/train_data_batch_1..10`` and ``root/val_data``: ``{"data": uint8 (N, 768), "labels": [1..1000],
    "mean": ...}`` (training batches) as the downsampled ImageNet's Python pickles hold them."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 11):
        data = rng.integers(0, 256, size=(per_batch, 3 * 16 * 16), dtype=np.uint8)
        entry = {"data": data, "labels": labels_for(per_batch, i), "mean": data.mean(0)}
        with open(root / f"train_data_batch_{i}", "wb") as handle:
            pickle.dump(entry, handle, protocol=2)
    data = rng.integers(0, 256, size=(val_size, 3 * 16 * 16), dtype=np.uint8)
    with open(root / "val_data", "wb") as handle:
        pickle.dump({"data": data, "labels": labels_for(val_size, 0)}, handle, protocol=2)
    return root
