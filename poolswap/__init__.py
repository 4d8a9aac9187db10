"""poolswap: convert trained convolutional networks to SoftPool and ship them.

The public API, imported lazily so that ``import poolswap`` (and the CLI's
``--help``) stays instant until torch is needed:

* the op: ``soft_pool1d/2d/3d``, ``SoftPool1d/2d/3d``, ``softpool_modules``
* its kernels: ``kernel_status``, ``ort_library_path``
* models: ``create_model``, ``save``, ``load``
* find and swap: ``inspect``, ``convert``, ``manifest``
* fine-tune: ``finetune``, ``FinetuneConfig``, ``calibrate``, ``evaluate``, ``shift_consistency``
* export: ``export_onnx``

The stages, in pipeline order, are the subpackages ``ops``, ``kernels``, ``model``,
``surgery``, ``train``, ``export``, ``deploy``, ``pipeline`` and ``cli``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "soft_pool1d": "poolswap.ops",
    "soft_pool2d": "poolswap.ops",
    "soft_pool3d": "poolswap.ops",
    "SoftPool1d": "poolswap.ops",
    "SoftPool2d": "poolswap.ops",
    "SoftPool3d": "poolswap.ops",
    "softpool_modules": "poolswap.ops",
    "kernel_status": "poolswap.kernels",
    "ort_library_path": "poolswap.kernels",
    "create_model": "poolswap.model",
    "save": "poolswap.model",
    "load": "poolswap.model",
    "inspect": "poolswap.surgery",
    "convert": "poolswap.surgery",
    "manifest": "poolswap.surgery",
    "finetune": "poolswap.train",
    "shift_consistency": "poolswap.train",
    "FinetuneConfig": "poolswap.train",
    "evaluate": "poolswap.train",
    "calibrate": "poolswap.train",
    "export_onnx": "poolswap.export",
    "PoolswapError": "poolswap.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'poolswap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
