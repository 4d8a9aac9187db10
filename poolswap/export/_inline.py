"""``inline_softpool``: a poolswap model as standard ONNX operators only, for runtimes that do not expand functions.

OpenVINO, TensorRT and many converters translate operators one by one and do not
expand a model-local function of a custom domain. Inlining replaces each
``poolswap::SoftPool`` node by its function body with the node's attributes
substituted, then folds every value computable from constants (the geometry,
the exact body's window indices): with a static input size every shape in the
result is static, which compilers that plan memory ahead need.
"""

from __future__ import annotations

import logging

import onnx
import onnx.inliner

from ..errors import PoolswapError
from ._function import DOMAIN, softpool_nodes

logger = logging.getLogger(__name__)

__all__ = ["inline_softpool", "is_inlined"]


def is_inlined(model: onnx.ModelProto) -> bool:
    """Whether ``model`` holds no ``poolswap::SoftPool`` node (nothing left to expand)."""
    return not softpool_nodes(model)


def inline_softpool(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its local functions inlined, constants folded and the poolswap domain gone."""
    import onnx_ir
    import onnxscript.optimizer

    inlined = onnx.inliner.inline_local_functions(model)
    del inlined.functions[:]
    ir_model = onnx_ir.serde.deserialize_model(inlined)
    onnxscript.optimizer.optimize(ir_model)  # constant folding; the function is already inlined
    result = onnx_ir.serde.serialize_model(ir_model)
    left = sorted({n.op_type for n in result.graph.node if n.domain == DOMAIN})
    if left:
        raise PoolswapError(f"inlining left poolswap node(s) {', '.join(left)}; the model's SoftPool function is missing")
    kept = [o for o in result.opset_import if o.domain != DOMAIN]
    del result.opset_import[:]
    result.opset_import.extend(kept)
    logger.info("inlined SoftPool: %d nodes of standard ONNX", len(result.graph.node))
    return result
