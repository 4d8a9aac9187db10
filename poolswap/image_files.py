"""Image files as every reader in poolswap finds, checks and decodes them (PIL and numpy only).

:func:`decode_image` is the one decoder: training and evaluation datasets,
``poolswap predict`` and ``poolswap validate`` all call it, so a model sees the
same pixels whichever command reads a file. It returns an 8-bit ``RGB`` image for
a 3-channel model and an ``L`` image for a 1-channel one, from any mode Pillow
opens, scaled by the file's real bit depth: a 16-bit PNG's 65535 is white, where
Pillow's own ``convert`` clips everything above 255 to white. Alpha is dropped,
as torchvision's loader drops it.

A file that cannot be decoded (truncated, corrupt, not an image, or beyond
Pillow's decompression-bomb limit) is a one-line :class:`BadImageError` naming
it; :func:`readable_images` drops such files with one warning instead, for the
``--skip-bad-images`` option of the commands that read folders.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Iterable, Union

import numpy as np

from .errors import PoolswapError, first_line

__all__ = [
    "IMAGE_EXTENSIONS", "BadImageError", "decode_image", "readable_images", "require_folder", "to_model_mode",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SKIP_HINT = "--skip-bad-images skips such files"
# Modes whose samples are wider than 8 bits: decoded through numpy, scaled by the real bit depth.
_WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


class BadImageError(PoolswapError):
    """An image file that cannot be decoded; the message names the file."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker's error comes back as BadImageError("Caught BadImageError in DataLoader worker
        # process 0.\nOriginal Traceback ...\n...BadImageError: MESSAGE"): keep MESSAGE, the one line that matters.
        if message.startswith("Caught ") and f"{type(self).__name__}: " in message:
            message = message.rstrip().rsplit(f"{type(self).__name__}: ", 1)[1]
        super().__init__(message)


def require_folder(path: Union[str, os.PathLike], what: str = "--data") -> Path:
    """``path`` as a folder; a missing one or a file is a one-line error saying which."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise PoolswapError(f"{what} {path} is a file; give the folder that holds the images")
    raise PoolswapError(f"{what} folder {path} does not exist")


def _full_scale(image) -> float:
    """The value that means white in a wide-mode image: 2**bits - 1 of the file's real bit depth."""
    if image.mode.startswith("I;16"):
        return 65535.0
    if image.mode == "F":
        return 1.0  # floating-point files hold intensities in [0, 1]
    bits = None
    tags = getattr(image, "tag_v2", None)  # TIFF: BitsPerSample
    if tags is not None and tags.get(258):
        value = tags.get(258)
        bits = int(value[0] if isinstance(value, (tuple, list)) else value)
    maxval = getattr(image, "_maxval", None)  # PGM/PPM with a maxval above 255
    if isinstance(maxval, int) and maxval > 0:
        return float(maxval)
    return float(2 ** bits - 1) if bits else 65535.0  # PNG and others: "I" holds 16-bit samples


def to_model_mode(image, channels: int = 3):
    """An opened image as the model takes it: 8-bit ``RGB`` (3 channels) or ``L`` (1 channel)."""
    from PIL import Image

    if channels not in (1, 3):
        raise PoolswapError(f"images can feed 1- or 3-channel models, not {channels}-channel ones")
    if image.mode in _WIDE_MODES:
        samples = np.asarray(image).astype(np.float64) / _full_scale(image)
        gray = Image.fromarray(np.round(np.clip(samples, 0.0, 1.0) * 255.0).astype(np.uint8), "L")
        return gray if channels == 1 else gray.convert("RGB")
    if channels == 3:
        return image.convert("RGB")
    return image.convert("L") if image.mode in ("1", "L", "LA", "P", "PA") else image.convert("RGB").convert("L")


def decode_image(path: Union[str, os.PathLike], channels: int = 3):
    """The image at ``path`` decoded for a ``channels``-channel model (a PIL image); see the module's notes."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - torchvision depends on Pillow
        raise PoolswapError("reading images needs Pillow: pip install pillow") from exc
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that: both are refusals here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return to_model_mode(image, channels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(
            f"image {path} is refused as a decompression bomb ({first_line(exc)}); shrink it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if it is trusted"
        ) from None
    except PoolswapError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, MemoryError) as exc:
        raise BadImageError(f"cannot read image {path}: {first_line(exc)} (truncated or corrupt?); {SKIP_HINT}") from None


def readable_images(paths: Iterable[Union[str, os.PathLike]], channels: int = 3) -> list[Path]:
    """The files of ``paths`` that decode, in order; the others are dropped with one warning naming them.

    Decodes every file once: ``--skip-bad-images`` costs one extra read of the data.
    """
    paths = [Path(p) for p in paths]
    kept, bad = [], []
    for path in paths:
        try:
            decode_image(path, channels)
            kept.append(path)
        except BadImageError as exc:
            bad.append((path, str(exc)))
    if bad:
        names = ", ".join(str(p) for p, _ in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        logger.warning("skipping %d of %d images that cannot be read: %s", len(bad), len(paths), names)
        for _, reason in bad:
            logger.debug("%s", reason)
    if paths and not kept:
        raise PoolswapError(f"none of the {len(paths)} images can be read (first: {bad[0][1]})")
    return kept
