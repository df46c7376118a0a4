"""pytest plugin of the device check: CUDA as torch's default device, so tests that build their tensors and
modules without naming a device run them on the GPU (``python -m pytest -p benchmarks.cuda_default ...``).

Without CUDA it changes nothing. A test that fails only under it either found a device bug or assumes the CPU
(a NumPy round trip, a CPU generator); the device check lists the first failures.
"""
from __future__ import annotations

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    if torch.cuda.is_available():
        torch.set_default_device("cuda")


def pytest_report_header(config: pytest.Config) -> str:
    return f"torch default device: {torch.get_default_device()}"
