"""The demo's data: scikit-learn's embedded handwritten digits (no download), as tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..errors import PoolswapError

__all__ = ["DigitsData", "load_digits_data", "require_demo_extras"]

INSTALL_HINT = "pip install 'poolswap[demo]'"


def require_demo_extras() -> None:
    """Raise a one-line error naming the install command when scikit-learn or matplotlib is missing."""
    missing = []
    for module in ("sklearn", "matplotlib"):
        try:
            __import__(module)
        except ImportError:
            missing.append("scikit-learn" if module == "sklearn" else module)
    if missing:
        raise PoolswapError(f"the demo needs {' and '.join(missing)}: {INSTALL_HINT}")


@dataclass
class DigitsData:
    """Train and test splits of 1x``size``x``size`` float images (normalised) with labels 0-9."""

    train: TensorDataset
    test: TensorDataset
    size: int
    classes: list[str]


def load_digits_data(size: int = 16, test_fraction: float = 0.2, seed: int = 0) -> DigitsData:
    """The 1797 8x8 digits of ``sklearn.datasets.load_digits``, upsampled to ``size``, split by a seeded shuffle."""
    require_demo_extras()
    from sklearn.datasets import load_digits

    if size < 8:
        raise PoolswapError(f"the digits are 8x8: size must be >= 8, got {size}")
    if not 0.0 < test_fraction < 1.0:
        raise PoolswapError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values 0..16
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images - 0.5) / 0.5
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(labels) * test_fraction))
    test_idx, train_idx = order[:n_test], order[n_test:]
    return DigitsData(
        train=TensorDataset(images[train_idx].contiguous(), labels[train_idx]),
        test=TensorDataset(images[test_idx].contiguous(), labels[test_idx]),
        size=size,
        classes=[str(d) for d in range(10)],
    )
