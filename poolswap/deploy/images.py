"""Image loading for ``poolswap predict`` and ``poolswap validate --data``: PIL and numpy only.

Standard ImageNet preprocessing: decode (:func:`poolswap.image_files.decode_image`: RGB,
or gray for a 1-channel model), resize the shorter side to ``size / 0.875``, centre crop
``size``, scale to [0, 1], normalise with ImageNet's mean and std (their averages for
one channel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import PoolswapError
from ..image_files import IMAGE_EXTENSIONS, decode_image, readable_images, require_folder

__all__ = ["IMAGE_SUFFIXES", "find_images", "load_image", "load_images", "readable_images"]

IMAGE_SUFFIXES = IMAGE_EXTENSIONS
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CROP_PCT = 0.875


def find_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), at most ``limit``."""
    folder = require_folder(folder, "--data")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PoolswapError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files[:limit] if limit else files


def load_image(path: Path, size: Sequence[int], channels: int = 3) -> np.ndarray:
    """One image as a normalised (channels, H, W) float32 array."""
    from PIL import Image

    height, width = int(size[0]), int(size[1])
    image = decode_image(path, channels)
    scale = max(height, width) / CROP_PCT / min(image.size)
    resized = image.resize((max(width, round(image.size[0] * scale)), max(height, round(image.size[1] * scale))), Image.BILINEAR)
    left = (resized.size[0] - width) // 2
    top = (resized.size[1] - height) // 2
    crop = resized.crop((left, top, left + width, top + height))
    array = np.asarray(crop, dtype=np.float32).reshape(height, width, channels) / 255.0
    mean, std = (MEAN, STD) if channels == 3 else (MEAN.mean(keepdims=True), STD.mean(keepdims=True))
    return ((array - mean) / std).transpose(2, 0, 1).copy()


def load_images(paths: Iterable[Path], size: Sequence[int], channels: int = 3) -> np.ndarray:
    """A (N, channels, H, W) float32 batch."""
    return np.stack([load_image(Path(p), size, channels) for p in paths])
