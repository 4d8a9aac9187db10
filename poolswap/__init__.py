"""poolswap: convert trained convolutional networks to SoftPool and ship them.

The public API, imported lazily so that ``import poolswap`` (and the CLI's
``--help``) stays instant until torch is needed:

* the op: ``soft_pool1d/2d/3d``, ``SoftPool1d/2d/3d``, ``kernel_status``
* find and swap: ``inspect``, ``convert``, ``save``, ``load``, ``manifest``, ``softpool_modules``
* fine-tune: ``finetune``, ``FinetuneConfig``, ``calibrate``, ``evaluate``
* export and deploy: ``export_onnx``, ``ort_library_path``
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
    "kernel_status": "poolswap.ops",
    "inspect": "poolswap.surgery",
    "convert": "poolswap.surgery",
    "save": "poolswap.surgery",
    "load": "poolswap.surgery",
    "manifest": "poolswap.surgery",
    "softpool_modules": "poolswap.surgery",
    "finetune": "poolswap.train",
    "FinetuneConfig": "poolswap.train",
    "evaluate": "poolswap.train",
    "calibrate": "poolswap.train",
    "export_onnx": "poolswap.export",
    "ort_library_path": "poolswap.deploy",
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
