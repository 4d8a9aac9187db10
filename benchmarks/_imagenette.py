"""What the real-data benchmarks share: where the shared data is, its preprocessing, the SqueezeNet weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

# The Imagenette images are already 224x224: use them as they are (crop_pct 1), ImageNet mean/std.
DATA_CONFIG = {"input_size": (3, 224, 224), "crop_pct": 1.0, "interpolation": "bilinear",
               "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def default_data_dir() -> Path:
    """$POOLSWAP_SHARED_DATA, else the `shared/data` folder beside the checkout."""
    if os.environ.get("POOLSWAP_SHARED_DATA"):
        return Path(os.environ["POOLSWAP_SHARED_DATA"])
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def load_squeezenet(data_dir: Path) -> nn.Module:
    """torchvision's squeezenet1_0 with the shared ImageNet weights, in eval mode (it remembers its spec)."""
    from poolswap.model import create_model

    model = create_model("torchvision:squeezenet1_0")
    state = torch.load(data_dir / "squeezenet1_0_imagenet.pth", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
