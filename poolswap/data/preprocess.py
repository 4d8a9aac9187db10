"""The preprocessing an exported model expects, stored in its ``metadata_props``.

``poolswap export`` writes the model's data config (timm's keys: input size, mean,
std, interpolation, crop fraction and mode) as JSON under :data:`PREPROCESS_KEY`,
and the class names under :data:`CLASS_NAMES_KEY`; ``poolswap predict``,
``poolswap validate --data`` and :func:`poolswap.deploy.images.load_images` read
them back, so a model with another data config (Inception's mean 0.5, say) gets
its own pixels. Needs only the standard library.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

from ..errors import PoolswapError

logger = logging.getLogger(__name__)

__all__ = ["CLASS_NAMES_KEY", "PREPROCESS_KEY", "Preprocessing", "class_names", "model_preprocessing"]

PREPROCESS_KEY = "poolswap.preprocess"
CLASS_NAMES_KEY = "poolswap.class_names"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CROP_MODES = ("center", "squash")


@dataclass(frozen=True)
class Preprocessing:
    """Resize so the crop is ``crop_pct`` of the shorter side, centre-crop ``input_size``, normalise.

    ``crop_mode="squash"`` resizes both sides to ``input_size / crop_pct`` instead
    (aspect ratio not kept). The defaults are ImageNet's.
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        if len(self.input_size) != 3 or any(int(v) < 1 for v in self.input_size):
            raise PoolswapError(f"preprocessing input_size must be C,H,W positive integers, got {self.input_size}")
        if len(self.mean) != self.input_size[0] or len(self.std) != self.input_size[0]:
            raise PoolswapError(f"preprocessing mean and std need {self.input_size[0]} values, got {self.mean} and {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            raise PoolswapError(f"preprocessing interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.crop_mode not in CROP_MODES:
            raise PoolswapError(f"preprocessing crop_mode must be one of {', '.join(CROP_MODES)}, got {self.crop_mode!r}")
        if not 0 < self.crop_pct <= 1:
            raise PoolswapError(f"preprocessing crop_pct must be in (0, 1], got {self.crop_pct}")

    @classmethod
    def from_data_config(cls, config: Mapping[str, Any]) -> "Preprocessing":
        """From a timm-style data config (``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``, ``crop_mode``)."""
        defaults = cls()
        return cls(
            input_size=tuple(int(v) for v in config.get("input_size", defaults.input_size)),
            mean=tuple(float(v) for v in config.get("mean", defaults.mean)),
            std=tuple(float(v) for v in config.get("std", defaults.std)),
            interpolation=str(config.get("interpolation") or defaults.interpolation),
            crop_pct=float(config.get("crop_pct") or defaults.crop_pct),
            crop_mode=str(config.get("crop_mode") or defaults.crop_mode),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def with_size(self, height: int, width: int) -> "Preprocessing":
        """The same preprocessing for another input height and width."""
        values = asdict(self)
        values["input_size"] = (self.input_size[0], int(height), int(width))
        return Preprocessing.from_data_config(values)


def model_preprocessing(metadata: Mapping[str, str], input_shape: Optional[Sequence[Any]] = None) -> Preprocessing:
    """The preprocessing stored in a model's metadata; without it ImageNet's at the model's input size, with a warning."""
    text = metadata.get(PREPROCESS_KEY)
    if text:
        try:
            return Preprocessing.from_data_config(json.loads(text))
        except (ValueError, TypeError, AttributeError) as exc:
            raise PoolswapError(f"the model's {PREPROCESS_KEY} metadata is not a valid data config: {exc}") from exc
    shape = list(input_shape or [])
    size = [d if isinstance(d, int) and d > 0 else 224 for d in (shape[-2:] or [224, 224])]
    channels = shape[-3] if len(shape) >= 3 and isinstance(shape[-3], int) and shape[-3] > 0 else 3
    logger.warning("the model carries no %s metadata: ImageNet's mean, std and 0.875 crop at %dx%d", PREPROCESS_KEY, *size)
    if channels == 3:
        return Preprocessing(input_size=(3, size[0], size[1]))
    # one grey (or other) channel: ImageNet's statistics averaged over its colours, as for a 1-channel model's config
    mean, std = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    return Preprocessing(input_size=(channels, size[0], size[1]), mean=(mean,) * channels, std=(std,) * channels)


def class_names(metadata: Mapping[str, str]) -> Optional[list[str]]:
    """The class names stored in a model's metadata, or None."""
    text = metadata.get(CLASS_NAMES_KEY)
    return json.loads(text) if text else None
