"""Real weights: torchvision SqueezeNet 1.0 (ImageNet) on the shared Imagenette val images.

With a large beta the three ceil_mode MaxPools become SoftPools that act as max
pooling, so top-1 must match the original's. Set POOLSWAP_SHARED_DATA to the
shared data folder (default: ``<repo>/../shared/data``); POOLSWAP_REAL_IMAGES
caps the images per class (default 40; 0 means all).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import poolswap
from poolswap.model import build_from_checkpoint
from poolswap.ops import softpool_modules

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("POOLSWAP_SHARED_DATA", ROOT.parent / "shared" / "data"))
WEIGHTS = DATA / "squeezenet1_0_imagenet.pth"
VAL = DATA / "imagenette" / "val"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (WEIGHTS.is_file() and VAL.is_dir()), reason=f"shared data not found under {DATA}"),
]


def _synsets() -> list[str]:
    import timm

    path = Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt"
    return path.read_text().split()


def imagenette_batches(per_class: int, batch: int = 50):
    """(images normalised as torchvision expects, ImageNet class indices), in batches."""
    import numpy as np
    from PIL import Image

    def read(path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float() / 255

    index = {wnid: i for i, wnid in enumerate(_synsets())}
    items = []
    for folder in sorted(VAL.iterdir()):
        files = sorted(folder.glob("*.JPEG"))
        items += [(f, index[folder.name]) for f in (files[:per_class] if per_class else files)]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        x = torch.stack([(read(f) - mean) / std for f, _ in chunk])
        yield x, torch.tensor([label for _, label in chunk])


def top1(models: dict, per_class: int) -> dict:
    correct = {name: 0 for name in models}
    agree = {name: 0 for name in models}
    total = 0
    with torch.no_grad():
        for x, y in imagenette_batches(per_class):
            preds = {name: m(x).argmax(1) for name, m in models.items()}
            for name, p in preds.items():
                correct[name] += int((p == y).sum())
                agree[name] += int((p == preds["original"]).sum())
            total += len(y)
    return {name: (correct[name] / total, agree[name] / total) for name in models} | {"images": total}


def test_squeezenet_large_beta_keeps_top1():
    per_class = int(os.environ.get("POOLSWAP_REAL_IMAGES", "40"))
    original = build_from_checkpoint("torchvision:squeezenet1_0", WEIGHTS)
    x = torch.randn(1, 3, 224, 224)
    beta1 = poolswap.convert(original, example_input=x, beta=1.0)
    large = poolswap.convert(original, example_input=x, beta=1e4)
    assert len(softpool_modules(large)) == 3
    assert all(m.ceil_mode for m in softpool_modules(large).values())
    result = top1({"original": original, "beta=1": beta1, "beta=1e4": large}, per_class)
    print(f"\nsqueezenet1_0 on {result['images']} Imagenette val images (top-1, agreement with original): "
          + ", ".join(f"{k} {v[0]:.3f}/{v[1]:.3f}" for k, v in result.items() if k != "images"))
    assert result["original"][0] > 0.5
    assert result["beta=1e4"][0] == pytest.approx(result["original"][0], abs=0.01)
    assert result["beta=1e4"][1] >= 0.99
