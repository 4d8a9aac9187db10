"""Tiny models and data for the fine-tune tests (importable by subprocess scripts too)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from poolswap.ops import SoftPool2d

NUM_CLASSES = 3
IMAGE_SIZE = 16


class TinyNet(nn.Module):
    """conv-bn-relu-maxpool x2, dropout, linear: a max-pooling CNN with every feature the loop handles."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def teacher(seed: int = 0, num_classes: int = NUM_CLASSES) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(num_classes).eval()


def swap(model: nn.Module, *, beta: float = 1.0, learn_beta=False) -> nn.Module:
    """A copy of ``model`` with every MaxPool2d replaced by a SoftPool2d of the same geometry."""
    student = copy.deepcopy(model)
    for parent in list(student.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, SoftPool2d(child.kernel_size, child.stride, child.padding, child.dilation,
                                                 ceil_mode=child.ceil_mode, beta=beta, learn_beta=learn_beta))
    return student


def write_image_folder(root: Path, *, classes=("a", "b", "c"), per_class: int = 6, size: int = IMAGE_SIZE,
                       seed: int = 0, labelled: bool = True) -> Path:
    """A tiny ImageFolder of random PNGs: root/CLASS/i.png (or root/i.png when unlabelled)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for c_index, name in enumerate(classes):
        folder = root / name if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            pixels[..., c_index % 3] = np.clip(pixels[..., c_index % 3].astype(int) + 80, 0, 255)
            Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root


DATA_CONFIG = {"input_size": (3, IMAGE_SIZE, IMAGE_SIZE), "crop_pct": 1.0, "interpolation": "bilinear"}
