"""Images in, batches out: what surgery, calibration, training and export read a model's data with.

* :mod:`.datasets` (torch): the model's own preprocessing (:func:`resolve_data_config`),
  ImageFolder trees (:func:`image_dataset`), label maps, the resumable
  :class:`EpochSampler`, and :func:`sample_batches` (the few batches ``inspect --data``,
  ``convert --min-agreement`` and calibration measure on);
* :mod:`.preprocess` (standard library only): the preprocessing an exported model
  stores in its metadata, which export writes and deploy reads.

This package sits below surgery, train, export and deploy, which all use it. Names
are imported on first use, so deploy can read :mod:`.preprocess` without torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "EpochSampler": ".datasets",
    "build_transform": ".datasets",
    "image_dataset": ".datasets",
    "label_map": ".datasets",
    "resolve_data_config": ".datasets",
    "sample_batches": ".datasets",
    "split_dir": ".datasets",
    "CLASS_NAMES_KEY": ".preprocess",
    "PREPROCESS_KEY": ".preprocess",
    "Preprocessing": ".preprocess",
    "class_names": ".preprocess",
    "model_preprocessing": ".preprocess",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
