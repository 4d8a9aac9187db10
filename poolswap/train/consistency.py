"""Shift consistency: how often a model gives one image the same top-1 at two random crop offsets.

The protocol of antialiased-cnns (Zhang, ICML 2019), adapted to the model's input size:
each image is resized (shorter side) and centre-cropped to ``H + S`` by ``W + S``, where
``H x W`` is the model's input and ``S`` the maximum shift (default ``round(H / 7)``: 32 at
224, the paper's 256/224); two ``H x W`` crops are taken at offsets drawn uniformly from
``[0, S)`` in each direction, and the two top-1 predictions are compared. Every image is
used ``passes`` times (default 5, as in the paper), each time with fresh offsets.

The sampling error is the standard error over images of each image's mean consistency
(the passes of one image are not independent draws, the images are).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Optional, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import PoolswapError

__all__ = ["ConsistencyResult", "consistency_dataset", "default_max_shift", "shift_consistency"]

logger = logging.getLogger(__name__)

DEFAULT_PASSES = 5


@dataclass
class ConsistencyResult:
    """``consistency``: the fraction of crop pairs with the same top-1; ``stderr``: its standard error."""

    consistency: float
    stderr: float
    images: int
    passes: int
    max_shift: int
    crop: tuple

    def as_dict(self) -> dict:
        values = asdict(self)
        values["crop"] = list(self.crop)
        return values

    def summary(self) -> str:
        return (f"shift consistency {self.consistency:.4f} ± {self.stderr:.4f} ({self.images} images x {self.passes} "
                f"passes, shifts in [0, {self.max_shift}) of a {self.crop[0]}x{self.crop[1]} crop)")


def default_max_shift(height: int) -> int:
    """The paper's 32 pixels at 224, scaled to the model's input height (at least 1)."""
    return max(1, round(height * 32 / 224))


def consistency_dataset(folder: Union[str, os.PathLike], data_config: dict, max_shift: int, *,
                        skip_bad_images: bool = False) -> Dataset:
    """An image folder preprocessed to ``(H + S) x (W + S)``: resized (shorter side), centre-cropped, normalised."""
    from ..data.datasets import build_transform, image_dataset

    channels, height, width = (int(v) for v in data_config["input_size"])
    large = {**data_config, "input_size": (channels, height + max_shift, width + max_shift), "crop_pct": 1.0}
    return image_dataset(folder, build_transform(large), channels=channels, skip_bad_images=skip_bad_images)


def _crops(images: torch.Tensor, offsets: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return torch.stack([img[:, int(dy):int(dy) + height, int(dx):int(dx) + width]
                        for img, (dy, dx) in zip(images, offsets)])


@torch.no_grad()
def shift_consistency(
    model: nn.Module,
    data: Union[Dataset, str, os.PathLike],
    *,
    crop: tuple,
    passes: int = DEFAULT_PASSES,
    max_shift: Optional[int] = None,
    batch_size: int = 64,
    workers: int = 0,
    device: Union[str, torch.device, None] = None,
    seed: int = 0,
    data_config: Optional[dict] = None,
    skip_bad_images: bool = False,
) -> ConsistencyResult:
    """Shift consistency of ``model`` (see the module's docstring).

    ``crop``: the model's input ``(H, W)``. ``data``: a Dataset of images already
    ``(H + S) x (W + S)`` (see :func:`consistency_dataset`), or an image folder (then
    preprocessed with ``data_config``, default the model's). ``seed`` fixes the offsets.
    """
    from ..device import resolve_device

    height, width = (int(v) for v in crop)
    max_shift = default_max_shift(height) if max_shift is None else int(max_shift)
    if max_shift < 1:
        raise PoolswapError(f"--max-shift must be an integer >= 1, got {max_shift}")
    if not isinstance(passes, int) or passes < 1:
        raise PoolswapError(f"--passes must be an integer >= 1, got {passes!r}")
    if isinstance(data, (str, os.PathLike)):
        from ..data.datasets import resolve_data_config

        config = data_config or resolve_data_config(model)
        data = consistency_dataset(data, config, max_shift, skip_bad_images=skip_bad_images)
    if len(data) == 0:
        raise PoolswapError("shift consistency needs at least one image")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    per_image = torch.zeros(len(data), dtype=torch.float64)
    was_training = model.training
    model.eval()
    try:
        for _ in range(passes):
            start = 0
            for batch in DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers):
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                n, _, h, w = images.shape
                if h < height + max_shift - 1 or w < width + max_shift - 1:
                    raise PoolswapError(f"images of {h}x{w} are too small for {height}x{width} crops shifted by up to "
                                        f"{max_shift - 1} pixels; preprocess them to {height + max_shift}x"
                                        f"{width + max_shift} (consistency_dataset)")
                first = torch.randint(0, max_shift, (n, 2), generator=generator)
                second = torch.randint(0, max_shift, (n, 2), generator=generator)
                a = model(_crops(images, first, height, width).to(device)).argmax(1)
                b = model(_crops(images, second, height, width).to(device)).argmax(1)
                per_image[start:start + n] += (a == b).double().cpu()
                start += n
    finally:
        model.train(was_training)
    per_image /= passes
    count = len(per_image)
    mean = float(per_image.mean())
    stderr = float(per_image.std(unbiased=True) / math.sqrt(count)) if count > 1 else float("nan")
    return ConsistencyResult(consistency=mean, stderr=stderr, images=count, passes=passes, max_shift=max_shift,
                             crop=(height, width))
