"""Image loading for ``poolswap predict`` and ``poolswap validate --data``: PIL and numpy only.

Standard ImageNet preprocessing: RGB, resize the shorter side to ``size / 0.875``,
centre crop ``size``, scale to [0, 1], normalise with ImageNet's mean and std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import PoolswapError

__all__ = ["IMAGE_SUFFIXES", "find_images", "load_image", "load_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CROP_PCT = 0.875


def find_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), at most ``limit``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PoolswapError(f"--data {folder} is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PoolswapError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files[:limit] if limit else files


def load_image(path: Path, size: Sequence[int]) -> np.ndarray:
    """One image as a normalised (3, H, W) float32 array."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - torchvision depends on Pillow
        raise PoolswapError("reading images needs Pillow: pip install pillow") from exc
    height, width = int(size[0]), int(size[1])
    try:
        image = Image.open(path).convert("RGB")
    except (OSError, ValueError) as exc:
        raise PoolswapError(f"cannot read image {path}: {exc}") from exc
    scale = max(height, width) / CROP_PCT / min(image.size)
    resized = image.resize((max(width, round(image.size[0] * scale)), max(height, round(image.size[1] * scale))), Image.BILINEAR)
    left = (resized.size[0] - width) // 2
    top = (resized.size[1] - height) // 2
    crop = resized.crop((left, top, left + width, top + height))
    array = np.asarray(crop, dtype=np.float32) / 255.0
    return ((array - MEAN) / STD).transpose(2, 0, 1).copy()


def load_images(paths: Iterable[Path], size: Sequence[int]) -> np.ndarray:
    """A (N, 3, H, W) float32 batch."""
    return np.stack([load_image(Path(p), size) for p in paths])
