"""darts_pl: DARTS (Differentiable Architecture Search, Liu et al., ICLR 2019) on PyTorch Lightning."""

__version__ = "0.1.0"
