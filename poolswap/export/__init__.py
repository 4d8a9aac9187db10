"""Export to ONNX: one ``poolswap::SoftPool`` node per SoftPool, a standard-ONNX function body.

* :func:`export_onnx` writes the model (see :mod:`poolswap.export._function` for
  the operator's attributes and the ``fast``/``exact`` bodies).
* :func:`inline_softpool` turns such a model into standard ONNX operators only.
* :func:`validate` compares PyTorch with every runtime at hand (ORT with the body,
  ORT with the library, ONNX's reference evaluator, OpenVINO).
"""

from ._exporter import attach_function, export_onnx
from ._function import (
    BODIES,
    DEFAULT_BODY,
    DEFAULT_OPSET,
    DOMAIN,
    DOMAIN_VERSION,
    OP_NAME,
    model_body,
    node_attributes,
    softpool_attributes,
    softpool_function,
    softpool_nodes,
)
from ._inline import inline_softpool, is_inlined
from ._validate import PairResult, ValidationReport, compare_outputs, validate

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
    "inline_softpool",
    "is_inlined",
    "model_body",
    "node_attributes",
    "softpool_attributes",
    "softpool_function",
    "softpool_nodes",
    "validate",
]
