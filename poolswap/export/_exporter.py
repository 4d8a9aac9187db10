"""``export_onnx``: a converted model to ONNX, one ``poolswap::SoftPool`` node per SoftPool.

How: the dynamo exporter
(``torch.onnx.export(..., dynamo=True)``) sees each SoftPool as a custom op; a
``custom_translation_table`` entry turns it into a bare ``poolswap::SoftPool``
node (its schema registered with ``onnx.defs`` in this process); the
model-local function carrying the standard-ONNX body is attached afterwards,
because the exporter's version conversion inlines local functions.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import onnx
import torch
from torch import nn

from .. import __version__
from .._atomic import atomic_path
from ..errors import PoolswapError, PoolswapTypeError, first_line
from ..data.preprocess import CLASS_NAMES_KEY, PREPROCESS_KEY, Preprocessing
from ..input_size import check_input_size
from ..ops._geometry import PoolGeometry
from . import _function
from ._fast_body_check import UNDERFLOW_GAP, fast_body_underflow
from ._frozen import SOFT_POOL_FROZEN, freeze_softpools
from .config import ExportConfig
from ._function import DEFAULT_BODY, DEFAULT_OPSET
from ._inline import inline_softpool

logger = logging.getLogger(__name__)

__all__ = ["attach_function", "export_onnx"]


PathLike = Union[str, "os.PathLike[str]"]


def _channels(x, ndim: int) -> Optional[int]:
    """The channel count of the pooled value ``x`` at export time, or None when it is symbolic."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < ndim + 1:
        return None
    dim = shape[len(shape) - ndim - 1]
    return dim if isinstance(dim, int) else None


def _translation_table() -> dict:
    import onnxscript

    poolswap_opset = onnxscript.values.Opset(_function.DOMAIN, _function.DOMAIN_VERSION)

    def node(x, kernel_size, stride, padding, dilation, ceil_mode, beta, betas=()):
        geometry = PoolGeometry.create(len(kernel_size), kernel_size, stride, padding, dilation, ceil_mode)
        channels = _channels(x, geometry.ndim)
        return poolswap_opset.SoftPool(x, **_function.softpool_attributes(geometry, beta, betas, channels))

    def soft_pool_frozen(x, kernel_size, stride, padding, dilation, ceil_mode, beta, betas):
        return node(x, kernel_size, stride, padding, dilation, ceil_mode, beta, betas)

    def soft_pool(x, kernel_size, stride, padding, dilation, ceil_mode, beta, beta_tensor=None):
        if beta_tensor is not None:
            raise PoolswapError(
                "a SoftPool called functionally with a tensor beta cannot be exported (ONNX attributes are "
                "constants); use a SoftPool module (poolswap.SoftPool2d) or a float beta"
            )
        return node(x, kernel_size, stride, padding, dilation, ceil_mode, beta)

    return {SOFT_POOL_FROZEN: soft_pool_frozen, torch.ops.poolswap.soft_pool.default: soft_pool}


def _data_config(model: nn.Module, input_size: Optional[Sequence[int]], data_config: Optional[dict]) -> dict:
    """The model's data config (timm's ``pretrained_cfg``, a torchvision spec's weights), ``data_config`` on top."""
    from ..model import spec_of
    from ..data.datasets import resolve_data_config

    spec = spec_of(model)
    overrides = dict(data_config or {})
    if input_size is not None:
        overrides["input_size"] = tuple(int(v) for v in input_size)
    return resolve_data_config(model, spec=spec.text if spec else None, overrides=overrides)


def _preprocessing(config: dict, example_input: torch.Tensor) -> Optional[Preprocessing]:
    """The preprocessing to store: for an image batch (N, C, H, W) whose C the data config's mean covers."""
    if example_input.dim() != 4 or len(config.get("mean", ())) != example_input.shape[1]:
        logger.info("no preprocessing stored: the input %s is not an image batch of the data config", tuple(example_input.shape))
        return None
    return Preprocessing.from_data_config({**config, "input_size": tuple(example_input.shape[1:])})


def attach_function(model: onnx.ModelProto, body: str) -> onnx.ModelProto:
    """Add (or replace) the model-local ``poolswap::SoftPool`` function and the domain's opset import."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), DEFAULT_OPSET)
    has_double = any(
        vi.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE for vi in list(model.graph.input)
    )
    function = _function.softpool_function(body, opset, "double" if has_double else "float")
    kept = [f for f in model.functions if not (f.domain == _function.DOMAIN and f.name == _function.OP_NAME)]
    del model.functions[:]
    model.functions.extend(kept + [function])
    if not any(o.domain == _function.DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(_function.DOMAIN, _function.DOMAIN_VERSION))
    return model


def _set_metadata(model: onnx.ModelProto, values: dict) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        if key in existing:
            existing[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)


#: Node metadata the export keeps: where a node comes from in the module tree (no file names).
_KEPT_NODE_METADATA = ("namespace", "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy")


def _strip_node_metadata(model: onnx.ModelProto) -> None:
    """Drop the exporter's stack traces and FX node dumps (they hold the exporting machine's paths)."""

    def graphs(graph: onnx.GraphProto):
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    yield from graphs(attr.g)
                for sub in attr.graphs:
                    yield from graphs(sub)

    nodes = [n for g in graphs(model.graph) for n in g.node] + [n for f in model.functions for n in f.node]
    for node in nodes:
        kept = [(p.key, p.value) for p in node.metadata_props if p.key in _KEPT_NODE_METADATA]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)
        node.doc_string = ""
    model.graph.doc_string = ""


def _drop_initializer_value_info(model: onnx.ModelProto) -> None:
    """Drop ``value_info`` entries of initializers: the initializer states its own type and shape, and a copy
    goes stale when a tool rewrites the weight in place (ORT's ``quantize_dynamic`` transposes Gemm's B under
    the same name, then fails shape inference on the stale entry)."""
    initializers = {i.name for i in model.graph.initializer}
    kept = [v for v in model.graph.value_info if v.name not in initializers]
    if len(kept) != len(model.graph.value_info):
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept)


def export_onnx(
    model: nn.Module,
    path: PathLike,
    *,
    input_size: Optional[Sequence[int]] = None,
    example_input: Optional[torch.Tensor] = None,
    opset: Optional[int] = None,
    dynamic_batch: bool = True,
    body: str = DEFAULT_BODY,
    inline: bool = False,
    class_names: Optional[Sequence[str]] = None,
    data_config: Optional[dict] = None,
    input_name: str = "input",
    output_name: str = "output",
    check: bool = True,
) -> Path:
    """Export ``model`` to ONNX at ``path``; returns the path.

    Every SoftPool module (and every functional ``poolswap`` SoftPool call with a
    float beta) becomes one ``poolswap::SoftPool`` node with all its attributes;
    the model carries a model-local function of that name with the ``body``
    (``"exact"``, stable for any input, or ``"fast"``, which turns NaN where a
    window lies more than ~80/beta below its channel's max; see
    :mod:`poolswap.export._function`), so any runtime that expands functions runs
    it. ``inline`` writes standard ONNX operators only instead (the body inlined
    into each node, constants folded: fully static shapes for a static input
    size), for runtimes that do not expand functions (OpenVINO, TensorRT).
    Learnt temperatures are frozen at their current values.

    ``input_size`` is (C, H, W) without the batch (default: the model's data
    config, else 3x224x224), or give ``example_input``. ``dynamic_batch`` makes
    the batch dim symbolic (``batch``). The model's preprocessing (its data
    config, ``data_config`` keys on top: ``mean``, ``std``, ``interpolation``,
    ``crop_pct``, ``crop_mode``) and ``class_names`` are stored in the model's
    metadata for ``poolswap predict``. ``check`` runs ``onnx.checker.check_model(full_check=True)``.
    """
    # the settings' one set of checks (body, opset within what this onnx knows)
    opset = ExportConfig(body=body, opset=DEFAULT_OPSET if opset is None else opset, dynamic_batch=dynamic_batch,
                         inline=inline).opset
    if not isinstance(model, nn.Module):
        raise PoolswapTypeError(f"export_onnx needs a torch.nn.Module, got {type(model).__name__}")
    config = _data_config(model, input_size, data_config)
    frozen, n_modules = freeze_softpools(model)
    frozen = frozen.cpu()
    if example_input is None:
        size = check_input_size(tuple(int(v) for v in config["input_size"]))  # before allocating it
        example_input = torch.randn(2 if dynamic_batch else 1, *size)
    example_input = example_input.detach().cpu()
    try:  # one eager run first: a wrong input size is the user's to fix, not an exporter trace to read
        with torch.no_grad():
            output = frozen(example_input)
    except Exception as exc:
        raise PoolswapError(
            f"the model does not run on an input of shape {tuple(example_input.shape)} ({first_line(exc)[:300]}); "
            "give the input size it was built for (--input-size C,H,W)"
        ) from exc
    if body == "fast":
        underflow = fast_body_underflow(frozen, example_input)
        if underflow:
            message = (f"poolswap: the fast body gives NaN on this model's example input where a window lies more "
                       f"than {UNDERFLOW_GAP:g}/beta below its channel's maximum: {'; '.join(underflow[:3])}"
                       f"{f' and {len(underflow) - 3} more site(s)' if len(underflow) > 3 else ''}; export with "
                       "--body exact (body='exact'), stable for any input")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    if class_names is not None and isinstance(output, torch.Tensor) and output.dim() == 2 \
            and len(class_names) != output.shape[1]:
        raise PoolswapError(f"{len(class_names)} class names for a model with {output.shape[1]} outputs; "
                            "give one name per output (--class-names: one per line)")
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},)
    with warnings.catch_warnings(), _function.schema_registered():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        try:
            program = torch.onnx.export(
                frozen,
                (example_input,),
                dynamo=True,
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_shapes=dynamic_shapes,
                custom_translation_table=_translation_table(),
                optimize=True,
                verbose=False,
            )
        except PoolswapError:
            raise
        except Exception as exc:  # torch.export / onnx conversion failure: the innermost cause, one line
            root = exc
            while root.__cause__ is not None:
                root = root.__cause__
            raise PoolswapError(f"the ONNX export failed: {first_line(root)[:300]}") from exc
    import onnx_ir

    proto = onnx_ir.to_proto(program.model)
    _strip_node_metadata(proto)
    n_nodes = len(_function.softpool_nodes(proto))
    if n_nodes:
        attach_function(proto, body)
    elif n_modules:
        raise PoolswapError(
            f"the model has {n_modules} SoftPool module(s) but the export holds no poolswap::SoftPool node"
        )
    if inline and n_nodes:
        proto = inline_softpool(proto)
    _drop_initializer_value_info(proto)
    metadata = {"poolswap.version": __version__, "poolswap.softpool_nodes": str(n_nodes)}
    if n_nodes:
        metadata["poolswap.body"] = body
        metadata["poolswap.form"] = "inline" if inline else "function"
    metadata["poolswap.input_shape"] = json.dumps(["batch" if dynamic_batch else example_input.shape[0], *example_input.shape[1:]])
    preprocessing = _preprocessing(config, example_input)
    if preprocessing is not None:
        metadata[PREPROCESS_KEY] = preprocessing.to_json()
    if class_names is not None:
        metadata[CLASS_NAMES_KEY] = json.dumps(list(class_names))
    _set_metadata(proto, metadata)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    form = "inlined" if inline and n_nodes else "function"
    logger.info("exported %s: %d SoftPool node(s), %s body (%s), opset %d", path, n_nodes, body, form, opset)
    return path
