"""Export to ONNX: one ``poolswap::SoftPool`` node per SoftPool, a standard-ONNX function body.

* :func:`export_onnx` writes the model (see :mod:`poolswap.export._function` for
  the operator's attributes and the ``fast``/``exact`` bodies).
* :func:`restore_function` puts the body back where a tool dropped it
  (:func:`function_missing` tells).
* :func:`inline_softpool` turns such a model into standard ONNX operators only.
* :func:`validate` compares PyTorch with every runtime at hand (ORT with the body,
  ORT with the library, ONNX's reference evaluator, OpenVINO).
"""

import importlib
from typing import Any

from .defaults import BODIES, DEFAULT_BODY, DEFAULT_OPSET, DOMAIN, DOMAIN_VERSION, OP_NAME

# Imported on first use: torch and onnx are heavy, and the CLI reads the defaults above for --help.
_LAZY = {
    "attach_function": "._exporter",
    "export_onnx": "._exporter",
    "model_body": "._function",
    "node_attributes": "._function",
    "softpool_attributes": "._function",
    "softpool_function": "._function",
    "softpool_nodes": "._function",
    "function_missing": "._restore",
    "restore_function": "._restore",
    "inline_softpool": "._inline",
    "is_inlined": "._inline",
    "PairResult": "._validate",
    "ValidationReport": "._validate",
    "compare_outputs": "._validate",
    "validate": "._validate",
}

__all__ = [
    "BODIES",
    "DEFAULT_BODY",
    "DEFAULT_OPSET",
    "DOMAIN",
    "DOMAIN_VERSION",
    "OP_NAME",
    "PairResult",
    "ValidationReport",
    "attach_function",
    "compare_outputs",
    "export_onnx",
    "function_missing",
    "inline_softpool",
    "is_inlined",
    "model_body",
    "node_attributes",
    "softpool_attributes",
    "softpool_function",
    "restore_function",
    "softpool_nodes",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
