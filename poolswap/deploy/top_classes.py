"""Top-k classes of image files with an exported model on ONNX Runtime (numpy, PIL and onnxruntime only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import PoolswapError
from .images import load_images, readable_images
from ..data.preprocess import class_names, model_preprocessing
from .session import session

__all__ = ["Prediction", "predict"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class Prediction:
    """One image's top classes: ``(probability, class index, label)``, most probable first."""

    image: Path
    top: list[tuple[float, int, str]]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def predict(model: PathLike, images: Sequence[PathLike], top_k: int = 5, *,
            providers: Union[str, Sequence[Any], None] = "auto", size: Optional[Sequence[int]] = None,
            library: Union[bool, PathLike] = True, strict: bool = False,
            skip_bad_images: bool = False) -> list[Prediction]:
    """Run ``model`` on ``images`` with the preprocessing stored in its metadata; the top ``top_k`` classes of each.

    ``size`` (H, W) overrides the stored input size; ``library``/``strict``/``providers``
    are :func:`session`'s. ``skip_bad_images`` leaves out undecodable files with a warning.
    """
    sess = session(model, providers, library=library, strict=strict)
    spec = sess.get_inputs()[0]
    meta = sess.get_modelmeta().custom_metadata_map
    preprocessing = model_preprocessing(meta, spec.shape)  # the model's mean, std, crop and interpolation
    if size is not None:
        preprocessing = preprocessing.with_size(*size)
    names = class_names(meta)
    paths = [Path(image) for image in images]
    for image in paths:
        if not image.is_file():
            raise FileNotFoundError(f"no image at {image}")
    if skip_bad_images:
        paths = readable_images(paths, preprocessing.input_size[0])
    batch = load_images(paths, preprocessing)
    if isinstance(spec.shape[0], int) and spec.shape[0] > 0 and spec.shape[0] != len(batch):
        logits = np.stack([sess.run(None, {spec.name: batch[i : i + 1]})[0][0] for i in range(len(batch))])
    else:
        logits = sess.run(None, {spec.name: batch})[0]
    if logits.ndim != 2:
        raise PoolswapError(f"the model's output has shape {logits.shape}; predict needs (N, classes) logits")
    bad = [str(image) for image, row in zip(paths, logits) if not np.isfinite(row).all()]
    if bad:
        raise PoolswapError(f"the model's outputs are not finite (NaN or inf) for {bad[0]}"
                            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}; check the export with "
                            "`poolswap validate --data` (a `fast` body overflows on some activations)")
    if names is not None and len(names) != logits.shape[1]:
        raise PoolswapError(f"the model stores {len(names)} class names for {logits.shape[1]} outputs; "
                            "re-export it with a --class-names file of one name per output")
    probs = _softmax(logits.astype(np.float64))
    k = min(top_k, probs.shape[1])
    results = []
    for image, row in zip(paths, probs):
        top = [(float(row[i]), int(i), names[i] if names and i < len(names) else f"class {i}")
               for i in np.argsort(-row)[:k]]
        results.append(Prediction(image, top))
    return results
