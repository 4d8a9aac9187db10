"""A model whose ``poolswap::SoftPool`` function a tool dropped: detect it, say so in one line, restore the body.

Some conforming tools rebuild the main graph and do not carry model-local
functions over: ONNX's ``onnx.version_converter.convert_version`` (every target
opset) and ONNX Runtime's saved optimised model (``optimized_model_filepath``
with poolswap's library registered). The ``poolswap::SoftPool`` nodes and every
attribute survive, so ONNX Runtime with poolswap's library still runs the file;
runtimes that need the body (ONNX Runtime alone, the reference evaluator,
``inline_softpool``) do not. The body is a pure function of the node's
attributes, so it can be attached again at the model's (new) opset.
"""

from __future__ import annotations

import logging

import onnx

from ._function import DOMAIN, OP_NAME, softpool_nodes
from .defaults import BODIES, DEFAULT_BODY

logger = logging.getLogger(__name__)

__all__ = ["MISSING_FUNCTION_FIX", "function_missing", "nodes_inlined_by_a_tool", "restore_function"]

#: What a user does about a model without the function (one sentence, for error messages).
MISSING_FUNCTION_FIX = (
    "run it with poolswap's library (poolswap.deploy.session), or put the body back with "
    "poolswap.export.restore_function; to change the opset, export with --opset N instead of converting"
)


def function_missing(model: onnx.ModelProto) -> bool:
    """Whether ``model`` has ``poolswap::SoftPool`` nodes but no model-local function of that name."""
    has_function = any(f.domain == DOMAIN and f.name == OP_NAME for f in model.functions)
    return bool(softpool_nodes(model)) and not has_function


def restore_function(model: onnx.ModelProto, body: str | None = None) -> onnx.ModelProto:
    """A copy of ``model`` with its SoftPool function attached again (no-op copy when it has one).

    ``body`` defaults to the one the export recorded (``poolswap.body`` metadata), else the default body.
    The function imports the model's current default-domain opset.
    """
    from ._exporter import attach_function

    result = onnx.ModelProto()
    result.CopyFrom(model)
    if not function_missing(result):
        return result
    if body is None:
        recorded = {p.key: p.value for p in result.metadata_props}.get("poolswap.body")
        body = recorded if recorded in BODIES else DEFAULT_BODY
    attach_function(result, body)
    logger.info("restored the SoftPool function (%s body)", body)
    return result


def nodes_inlined_by_a_tool(model: onnx.ModelProto) -> int:
    """How many ``poolswap::SoftPool`` nodes the export wrote that a tool has since expanded into standard ops.

    0 for an ``--inline`` export (inlined on purpose) and for a model that still has its nodes. ONNX
    Runtime's saved optimised model without poolswap's library registered is such a file: it runs
    anywhere, but poolswap's library has nothing left to replace.
    """
    metadata = {p.key: p.value for p in model.metadata_props}
    if metadata.get("poolswap.form") != "function" or softpool_nodes(model):
        return 0
    try:
        return max(int(metadata.get("poolswap.softpool_nodes", "0")), 0)
    except ValueError:
        return 0
