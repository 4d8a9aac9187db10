"""Image loading for ``poolswap predict`` and ``poolswap validate --data``: PIL and numpy only.

Each image goes through the model's :class:`~poolswap.data.preprocess.Preprocessing`
the way timm's evaluation transform does it on a PIL image: decode
(:func:`poolswap.image_files.decode_image`: RGB, or gray for a 1-channel model), resize (the
shorter side to ``size / crop_pct``, or both sides with ``crop_mode="squash"``),
centre crop ``size``, scale to [0, 1], normalise with the model's mean and std.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..errors import PoolswapError
from ..image_files import IMAGE_EXTENSIONS, decode_image, readable_images, require_folder
from ..data.preprocess import Preprocessing, model_preprocessing

__all__ = ["find_images", "images_for_model", "load_image", "load_images", "readable_images"]


def find_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), at most ``limit``."""
    folder = require_folder(folder, "--data")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise PoolswapError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return files[:limit] if limit else files


def _preprocessing(preprocessing: Union[Preprocessing, Sequence[int]]) -> Preprocessing:
    if isinstance(preprocessing, Preprocessing):
        return preprocessing
    height, width = (int(v) for v in preprocessing)  # a bare (H, W): ImageNet's preprocessing at that size
    return Preprocessing(input_size=(3, height, width))


def _resize_shape(width: int, height: int, p: Preprocessing) -> tuple[int, int]:
    """Target (width, height) of the resize, as timm's evaluation transform computes it."""
    scale_h, scale_w = math.floor(p.input_size[1] / p.crop_pct), math.floor(p.input_size[2] / p.crop_pct)
    if p.crop_mode == "squash" or scale_h != scale_w:  # timm resizes to both sizes here
        return scale_w, scale_h
    if width <= height:  # the shorter side to the scale size, the longer one in proportion (torchvision's rule)
        return scale_w, int(scale_w * height / width)
    return int(scale_h * width / height), scale_h


def load_image(path: Path, preprocessing: Union[Preprocessing, Sequence[int]]) -> np.ndarray:
    """One image as a normalised (C, H, W) float32 array (C: 3, or 1 for a grayscale model)."""
    from PIL import Image

    p = _preprocessing(preprocessing)
    channels, height, width = p.input_size
    image = decode_image(path, channels)  # any mode at its real bit depth; a bad file is a one-line error
    filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
    resized = image.resize(_resize_shape(*image.size, p), filters[p.interpolation])
    left = int(round((resized.size[0] - width) / 2.0))
    top = int(round((resized.size[1] - height) / 2.0))
    crop = resized.crop((left, top, left + width, top + height))
    array = np.asarray(crop, dtype=np.float32).reshape(height, width, channels) / 255.0
    mean = np.asarray(p.mean, dtype=np.float32)
    std = np.asarray(p.std, dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1).copy()


def load_images(paths: Iterable[Path], preprocessing: Union[Preprocessing, Sequence[int]]) -> np.ndarray:
    """A (N, C, H, W) float32 batch; ``preprocessing`` is the model's, or a bare (H, W) for ImageNet's."""
    return np.stack([load_image(Path(p), preprocessing) for p in paths])


def images_for_model(onnx_path: Union[str, Path], folder: Path, limit: Optional[int] = None, *,
                     skip_bad_images: bool = False) -> np.ndarray:
    """A batch of ``folder``'s images prepared as the exported model at ``onnx_path`` says (its stored preprocessing)."""
    from ..export import read_onnx

    model = read_onnx(onnx_path)
    metadata = {p.key: p.value for p in model.metadata_props}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    preprocessing = model_preprocessing(metadata, shape)
    files = find_images(folder, limit)
    if skip_bad_images:
        files = readable_images(files, preprocessing.input_size[0])
    return load_images(files, preprocessing)
