"""Export to ONNX: one ``poolswap::SoftPool`` node per SoftPool, a standard-ONNX function body.

* :func:`export_onnx` writes the model (see :mod:`poolswap.export._function` for
  the operator's attributes and the ``fast``/``exact`` bodies).
* :func:`validate` compares PyTorch, ORT with the body and ORT with the library.
"""

from ._exporter import DEFAULT_OPSET, attach_function, export_onnx
from ._validate import PairResult, ValidationReport, compare_outputs, validate
from ._function import BODIES, DOMAIN, DOMAIN_VERSION, OP_NAME, model_body, node_attributes, softpool_function, softpool_nodes

__all__ = [
    "BODIES",
    "DEFAULT_OPSET",
    "DOMAIN",
    "DOMAIN_VERSION",
    "OP_NAME",
    "PairResult",
    "ValidationReport",
    "attach_function",
    "compare_outputs",
    "export_onnx",
    "model_body",
    "node_attributes",
    "softpool_function",
    "softpool_nodes",
    "validate",
]
