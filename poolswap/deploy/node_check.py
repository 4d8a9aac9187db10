"""Check a model's ``poolswap::SoftPool`` nodes before any runtime sees them.

The custom-op library refuses a node that breaks the rules of
``poolswap/kernels/_attribute_rules.py`` (its C++ twin), but the function body,
plain ONNX math, refuses nothing by itself. Every session and runner poolswap
builds goes through :func:`check_softpool_nodes` first, so the library and the
body refuse the same nodes with the same one-line message, naming the node and
the attribute. Needs ``onnx`` (installed with ``poolswap[onnx]``); without it, or
for a file ``onnx`` cannot parse, the check is left to the runtime.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import PoolswapValueError
from ..kernels._attribute_rules import check_node

logger = logging.getLogger(__name__)

__all__ = ["check_softpool_nodes", "softpool_problem_for_inputs"]

DOMAIN = "poolswap"
OP_NAME = "SoftPool"


def _shape(value_info: Any) -> Optional[list[Optional[int]]]:
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _input_shapes(model: Any) -> dict[str, list[Optional[int]]]:
    """Known shapes of the graph's values: inputs, recorded value_info, and ONNX shape inference where it works."""
    import onnx

    graph = model.graph
    try:
        graph = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception as exc:  # a model ONNX cannot infer: use what the file records
        logger.debug("shape inference failed: %s", exc)
    shapes = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        shape = _shape(info)
        if shape is not None:
            shapes[info.name] = shape
    return shapes


def check_softpool_nodes(model: Union[str, "os.PathLike[str]", Any]) -> int:
    """Raise :class:`PoolswapValueError` for the first SoftPool node that cannot run; returns the nodes checked.

    ``model`` is a path or an ``onnx.ModelProto``. Attributes are checked always, the
    geometry against the node's input where its shape is known.
    """
    try:
        import onnx
    except ImportError:
        logger.debug("onnx is not installed: SoftPool nodes are checked by the runtime only")
        return 0
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(Path(model)), load_external_data=False)
        except Exception as exc:  # not an ONNX file: the runtime says so
            logger.debug("could not parse %s for the SoftPool check: %s", model, exc)
            return 0
    nodes = [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_NAME]
    if not nodes:
        return 0
    shapes = None
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        check_node(node.name, attrs)
    for node in nodes:
        if shapes is None:
            shapes = _input_shapes(model)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        check_node(node.name, attrs, shapes.get(node.input[0]) if node.input else None)
    return len(nodes)


def softpool_problem_for_inputs(path: Union[str, "os.PathLike[str]"], input_shapes: dict) -> Optional[str]:
    """Why a SoftPool node cannot run on inputs of ``input_shapes`` (name -> shape), or None.

    For a run that failed: with the actual input sizes in place of the model's symbolic
    dims, shape inference gives each node's input and the rules say whether a node's
    attribute is the cause (the function body's own ops fail with a message that names
    no SoftPool node).
    """
    try:
        import onnx

        model = onnx.load(str(Path(path)), load_external_data=False)
    except Exception:  # no onnx, or a file it cannot parse: nothing to add
        return None
    for graph_input in model.graph.input:
        shape = input_shapes.get(graph_input.name)
        dims = graph_input.type.tensor_type.shape.dim
        if shape is None:
            continue
        if len(shape) != len(dims) or any(d.HasField("dim_value") and d.dim_value != n for d, n in zip(dims, shape)):
            return None  # the input itself does not fit the model: that is the cause
        for dim, size in zip(dims, shape):
            dim.Clear()
            dim.dim_value = int(size)
    try:
        check_softpool_nodes(model)
    except PoolswapValueError as exc:
        return str(exc)
    return None
