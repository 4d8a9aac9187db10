"""Export to ONNX: one ``poolswap::SoftPool`` node per SoftPool, a standard-ONNX function body.

* :func:`export_onnx` writes the model (see :mod:`poolswap.export._function` for
  the operator's attributes and the ``fast``/``exact`` bodies).
* :func:`restore_function` puts the body back where a tool dropped it
  (:func:`function_missing` tells).
* :func:`inline_softpool` turns such a model into standard ONNX operators only.

Validation across runtimes needs deploy's sessions, so it lives there
(:func:`poolswap.deploy.validate`); the runtimes' names are :data:`RUNTIMES` here.
* :func:`read_onnx` reads an ``.onnx`` file's graph; a damaged or empty one is a one-line error.
"""

from .._lazy import lazy_exports
from .defaults import BODIES, DEFAULT_BODY, DEFAULT_OPSET, DOMAIN, DOMAIN_VERSION, OP_NAME, RUNTIMES

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
    "read_onnx": "._onnx_file",
}

__all__ = [
    "BODIES",
    "DEFAULT_BODY",
    "DEFAULT_OPSET",
    "DOMAIN",
    "DOMAIN_VERSION",
    "OP_NAME",
    "RUNTIMES",
    "attach_function",
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
    "read_onnx",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
