"""poolswap: convert trained convolutional networks to SoftPool and ship them.

The public API, imported lazily so that ``import poolswap`` (and the CLI's
``--help``) stays instant until torch is needed:

* the op: ``soft_pool1d/2d/3d``, ``SoftPool1d/2d/3d``, ``softpool_modules``
* its kernels: ``kernel_status``, ``ort_library_path``
* models: ``create_model``
* find and swap: ``inspect``, ``convert``, ``manifest``; the converted-model file: ``save``, ``load``
* calibrate and fine-tune: ``calibrate``, ``finetune``, ``FinetuneConfig``, ``evaluate``, ``shift_consistency``
* export and check it: ``export_onnx``, ``validate``

The stages, each importing only those below it (``docs/architecture.md``), are the
subpackages ``kernels``, ``ops``, ``model``, ``data`` (with ``calibration``), ``surgery``,
``train``, ``export``, ``deploy``, then ``bench``, ``pipeline``, ``demo`` and ``cli``.
"""

from __future__ import annotations

from ._lazy import lazy_exports

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
    "save": "poolswap.surgery",
    "load": "poolswap.surgery",
    "inspect": "poolswap.surgery",
    "convert": "poolswap.surgery",
    "manifest": "poolswap.surgery",
    "finetune": "poolswap.train",
    "shift_consistency": "poolswap.train",
    "FinetuneConfig": "poolswap.train",
    "evaluate": "poolswap.train",
    "calibrate": "poolswap.calibration",
    "export_onnx": "poolswap.export",
    "validate": "poolswap.deploy",
    "PoolswapError": "poolswap.errors",
}

__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=["__version__"])
