"""The ``poolswap::SoftPool`` operator in ONNX: its schema and its two standard-ONNX bodies.

Every exported SoftPool is one node ``SoftPool`` of domain ``poolswap`` (version 1):

========================  =========  ==================================================
attribute                 type       meaning
========================  =========  ==================================================
``kernel_shape``          ints       window size per spatial dim (1, 2 or 3 values)
``strides``               ints       as MaxPool
``pads``                  ints       begins then ends, as MaxPool (padding is *absent*)
``dilations``             ints       as MaxPool
``ceil_mode``             int        0 or 1, ``torch.nn.MaxPoolNd``'s output-size rule
``beta``                  float      the temperature (default 1.0)
``betas``                 floats     one temperature per channel; overrides ``beta``
                                     (the exporter always writes it; a non-positive
                                     entry, the function's default [0], means ``beta``)
========================  =========  ==================================================

The input is ``(N, C, *spatial)`` (ONNX pools are batched), float32, float16 or
float64; the output has the input's type.

The model carries a model-local function of the same name, so every ONNX
runtime runs it without poolswap. Two bodies are available:

``fast``
    ``y = m + AvgPool(e * (x - m)) / AvgPool(e)`` with ``e = exp(beta (x - m))`` and
    ``m`` the per-(sample, channel) maximum (``GlobalMaxPool``): a few element-wise
    ops and two ``AveragePool`` calls, which every runtime has fused. Its range:
    finite inputs where no window's own maximum lies more than about ``80 / beta``
    below its channel's maximum (beyond that float32 ``exp`` underflows and the
    window gives ``0 / 0 = NaN``); ``inf`` or ``NaN`` anywhere in a channel makes
    the whole channel NaN. Typical CNN activations (post-ReLU/BN, within tens of
    each other at ``beta = 1``) are well inside it; ``poolswap validate`` tells.
``exact``
    The per-window softmax of the contract: windows gathered explicitly
    (``Gather`` on a 3-d view), shifted by their own maximum. Stable for any
    input, finite or not, with the contract's NaN/``inf`` rules; it needs
    ``K`` times the output's memory (``K`` = window size) and is slower. ONNX shape
    inference gives its output's rank only (the sizes are computed at run time);
    the exporter records the full shapes in the model's ``value_info``. Inlined
    (:func:`poolswap.export.inline_softpool`), its geometry folds to constants
    and every shape is static for a static input size.

Both bodies accumulate in float32 and return the input's type; the exact body
computes float64 models in float64 (ONNX Runtime's AveragePool has no float64
kernel, so the fast body stays in float32).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import onnx
import onnx.defs
import onnx.parser

from ..ops._geometry import PoolGeometry
from .defaults import BODIES, DEFAULT_BODY, DEFAULT_OPSET, DOMAIN, DOMAIN_VERSION, MIN_OPSET, OP_NAME

__all__ = [
    "DOMAIN",
    "OP_NAME",
    "DOMAIN_VERSION",
    "BODIES",
    "DEFAULT_BODY",
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "softpool_attributes",
    "schema_registered",
    "softpool_function",
]


# strides, pads and dilations are optional, as for MaxPool (1, 0, 1 per dim). The exporter writes every
# attribute on every node; the defaults serve hand-written nodes. No default is an empty list: a
# consumer may read an empty list as "no value" (ONNX's reference evaluator and inliner do). The fast
# body passes the geometry on to AveragePool, so it declares no default there (an attribute reference
# without a value drops the attribute, and AveragePool applies MaxPool's defaults); the exact body reads
# them with Constant nodes and takes the first k values of the given list followed by the defaults, so
# a one-value default ([1] or [0]) fills every dim. ``betas`` defaults to [0]: no temperature is <= 0,
# so a non-positive entry stands for "not given" and ``beta`` applies.
_SIGNATURE = {
    "fast": (
        "SoftPool <kernel_shape, strides, pads, dilations, ceil_mode: int = 0, beta: float = 1.0, "
        "betas: floats = [0.0]> (X) => (Y)"
    ),
    "exact": (
        "SoftPool <kernel_shape, strides: ints = [1], pads: ints = [0], dilations: ints = [1], ceil_mode: int = 0, "
        "beta: float = 1.0, betas: floats = [0.0]> (X) => (Y)"
    ),
}

# Temperatures as a 1-d tensor: `betas` (C values) where positive, else `beta` (1 value, broadcast).
_BETA_BLOCK = """
  beta_ref = Constant <value_float: float = @beta> ()
  betas_ref = Constant <value_floats: floats = @betas> ()
  beta_one = Cast <to = {acc}> (beta_ref)
  betas_given = Cast <to = {acc}> (betas_ref)
  zero_beta = Constant <value = {acc_name} {{0}}> ()
  betas_set = Greater (betas_given, zero_beta)
  beta_f = Where (betas_set, betas_given, beta_one)
"""

_COMMON = """
  one_scalar = Constant <value = int64 {1}> ()
  zero_1 = Constant <value = int64[1] {0}> ()
"""

_FAST = """
{{
{common}
{beta}
  xf = Cast <to = {acc}> (X)
  kernel = Constant <value_ints: ints = @kernel_shape> ()
  ones_nd = Div (kernel, kernel)
  minus_one = Constant <value = int64[1] {{-1}}> ()
  beta_shape = Concat <axis = 0> (minus_one, ones_nd)
  b = Reshape (beta_f, beta_shape)
  m = GlobalMaxPool (xf)
  d = Sub (xf, m)
  bd = Mul (b, d)
  e = Exp (bd)
  ed = Mul (e, d)
  num = AveragePool <kernel_shape: ints = @kernel_shape, strides: ints = @strides, pads: ints = @pads, dilations: ints = @dilations, ceil_mode: int = @ceil_mode, count_include_pad = 0> (ed)
  den = AveragePool <kernel_shape: ints = @kernel_shape, strides: ints = @strides, pads: ints = @pads, dilations: ints = @dilations, ceil_mode: int = @ceil_mode, count_include_pad = 0> (e)
  ratio = Div (num, den)
  yf = Add (m, ratio)
  Y = CastLike (yf, X)
}}
"""

# The output size is computed with torch.nn.MaxPoolNd's rule (a ceil_mode window that
# would start in the end padding is dropped), not taken from a runtime's MaxPool:
# ONNX Runtime's MaxPool keeps that window.
# Windows are gathered on a (D, H, W, N, C) view of the input (1-d and 2-d problems
# get leading dims of size 1), one Gather per dim, into (OD, KD, OH, KH, OW, KW, N, C),
# then transposed to (N, C, OD, KD, OH, KH, OW, KW); absent positions become -inf,
# so they get weight exactly 0. No Gather runs over an innermost axis: OpenVINO
# 2026.4's CPU plugin computes such a Gather wrongly with a dynamic shape past 2**25
# output elements (docs/openvino-batch-bug.md).
_EXACT = """
{{
{common}
{beta}
  xf = Cast <to = {acc}> (X)
  lead = Constant <value = int64[2] {{0, 0}}> ()
  spatial = Shape <start = 2> (X)
  kernel = Constant <value_ints: ints = @kernel_shape> ()
  ones_k = Div (kernel, kernel)
  zeros_k = Sub (kernel, kernel)
  zero_s = Constant <value = int64 {{0}}> ()
  iota_k = CumSum <exclusive = 1> (ones_k, zero_s)
  ones_2k = Concat <axis = 0> (ones_k, ones_k)
  iota_2k = CumSum <exclusive = 1> (ones_2k, zero_s)
  zeros_2k = Concat <axis = 0> (zeros_k, zeros_k)
  stride_given = Constant <value_ints: ints = @strides> ()
  stride_all = Concat <axis = 0> (stride_given, ones_k)
  stride = Gather (stride_all, iota_k)
  pads_given = Constant <value_ints: ints = @pads> ()
  pads_all = Concat <axis = 0> (pads_given, zeros_2k)
  pads = Gather (pads_all, iota_2k)
  dil_given = Constant <value_ints: ints = @dilations> ()
  dil_all = Concat <axis = 0> (dil_given, ones_k)
  dil = Gather (dil_all, iota_k)
  nd = Shape (kernel)
  pad_begin = Gather (pads, iota_k)
  iota_end = Add (iota_k, nd)
  pad_end = Gather (pads, iota_end)
  ceil = Constant <value_int: int = @ceil_mode> ()
  kernel_m1 = Sub (kernel, one_scalar)
  ext_0 = Mul (dil, kernel_m1)
  ext = Add (ext_0, one_scalar)
  stride_m1 = Sub (stride, one_scalar)
  ceil_extra = Mul (ceil, stride_m1)
  padded = Add (spatial, pad_begin)
  padded2 = Add (padded, pad_end)
  num_0 = Sub (padded2, ext)
  num = Add (num_0, ceil_extra)
  quot = Div (num, stride)
  out_0 = Add (quot, one_scalar)
  out_0m1 = Sub (out_0, one_scalar)
  last_start = Mul (out_0m1, stride)
  starts_in_pad = GreaterOrEqual (last_start, padded)
  drop_b = Cast <to = 7> (starts_in_pad)
  drop = Mul (drop_b, ceil)
  out_nd = Sub (out_0, drop)
  three_1 = Constant <value = int64[1] {{3}}> ()
  n_lift = Sub (three_1, nd)
  ones_3 = Constant <value = int64[3] {{1, 1, 1}}> ()
  ones_l = Slice (ones_3, zero_1, n_lift)
  zeros_l = Sub (ones_l, ones_l)
  s3 = Concat <axis = 0> (ones_l, spatial)
  k3 = Concat <axis = 0> (ones_l, kernel)
  st3 = Concat <axis = 0> (ones_l, stride)
  d3 = Concat <axis = 0> (ones_l, dil)
  pb3 = Concat <axis = 0> (zeros_l, pad_begin)
  out = Concat <axis = 0> (ones_l, out_nd)
  x5_shape = Concat <axis = 0> (lead, s3)
  x5 = Reshape (xf, x5_shape)
  col = Constant <value = int64[2] {{-1, 1}}> ()
  minus_inf = Constant <value = {acc_name}[1] {{-inf}}> ()
  zero_f = Constant <value = {acc_name}[1] {{0}}> ()
{dims}
  xt = Transpose <perm = [2, 3, 4, 0, 1]> (x5)
  g0 = Gather <axis = 0> (xt, idx_0)
  g1 = Gather <axis = 2> (g0, idx_1)
  g2 = Gather <axis = 4> (g1, idx_2)
  win_raw = Transpose <perm = [6, 7, 0, 1, 2, 3, 4, 5]> (g2)
  axes_0 = Constant <value = int64[4] {{2, 3, 4, 5}}> ()
  v0u = Unsqueeze (valid_0, axes_0)
  axes_1 = Constant <value = int64[2] {{2, 3}}> ()
  v1u = Unsqueeze (valid_1, axes_1)
  v01 = And (v0u, v1u)
  valid = And (v01, valid_2)
  win = Where (valid, win_raw, minus_inf)
  red = Constant <value = int64[3] {{3, 5, 7}}> ()
  m = ReduceMax <keepdims = 1> (win, red)
  is_max = Equal (win, m)
  diff = Sub (win, m)
  d = Where (is_max, zero_f, diff)
  beta_shape = Constant <value = int64[7] {{-1, 1, 1, 1, 1, 1, 1}}> ()
  b = Reshape (beta_f, beta_shape)
  bd = Mul (b, d)
  e = Exp (bd)
  s = ReduceSum <keepdims = 1> (e, red)
  ed = Mul (e, d)
  e_zero = Equal (e, zero_f)
  ed_safe = Where (e_zero, zero_f, ed)
  t = ReduceSum <keepdims = 1> (ed_safe, red)
  ratio = Div (t, s)
  y8 = Add (m, ratio)
  y_shape = Concat <axis = 0> (lead, out_nd)
  yf = Reshape (y8, y_shape)
  Y = CastLike (yf, X)
}}
"""

# Indices of window positions along lifted dim {i}: o * stride - pad_begin + k * dilation,
# clamped into the input for the Gather and flagged valid where they lie inside it.
_DIM = """
  sel_{i} = Constant <value = int64[1] {{{i}}}> ()
  out_{i}_v = Gather (out, sel_{i})
  out_{i}_s = Squeeze (out_{i}_v)
  k_{i}_v = Gather (k3, sel_{i})
  k_{i}_s = Squeeze (k_{i}_v)
  st_{i} = Gather (st3, sel_{i})
  d_{i} = Gather (d3, sel_{i})
  pb_{i} = Gather (pb3, sel_{i})
  size_{i} = Gather (s3, sel_{i})
  zero_s_{i} = Constant <value = int64 {{0}}> ()
  o_{i} = Range (zero_s_{i}, out_{i}_s, one_scalar)
  k_{i} = Range (zero_s_{i}, k_{i}_s, one_scalar)
  o_col_{i} = Reshape (o_{i}, col)
  start_0_{i} = Mul (o_col_{i}, st_{i})
  start_{i} = Sub (start_0_{i}, pb_{i})
  offset_{i} = Mul (k_{i}, d_{i})
  pos_{i} = Add (start_{i}, offset_{i})
  ge_{i} = GreaterOrEqual (pos_{i}, zero_1)
  lt_{i} = Less (pos_{i}, size_{i})
  valid_{i} = And (ge_{i}, lt_{i})
  size_m1_{i} = Sub (size_{i}, one_scalar)
  low_{i} = Max (pos_{i}, zero_1)
  idx_{i} = Min (low_{i}, size_m1_{i})
"""

_ACC = {"float": (1, "float"), "double": (11, "double")}


@contextlib.contextmanager
def schema_registered() -> Iterator[None]:
    """``poolswap::SoftPool`` known to ``onnx.defs`` (as onnxscript needs) for the duration of the block.

    The schema is removed again afterwards: a registered schema has no shape
    inference, and ONNX prefers it over the model-local function, whose body
    infers the output shape.
    """
    if onnx.defs.has(OP_NAME, DOMAIN):
        yield
        return
    onnx.defs.register_schema(_schema())
    try:
        yield
    finally:
        onnx.defs.deregister_schema(OP_NAME, DOMAIN_VERSION, DOMAIN)


def _schema() -> onnx.defs.OpSchema:
    schema = onnx.defs.OpSchema(
        OP_NAME,
        DOMAIN,
        DOMAIN_VERSION,
        doc="SoftPool: exponentially weighted pooling (poolswap); attributes as MaxPool's plus beta/betas.",
        inputs=[onnx.defs.OpSchema.FormalParameter("X", "T")],
        outputs=[onnx.defs.OpSchema.FormalParameter("Y", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(double)"], "float tensors")],
        attributes=[
            onnx.defs.OpSchema.Attribute("kernel_shape", onnx.defs.OpSchema.AttrType.INTS, "window size", required=True),
            onnx.defs.OpSchema.Attribute("strides", onnx.defs.OpSchema.AttrType.INTS, "strides", required=False),
            onnx.defs.OpSchema.Attribute("pads", onnx.defs.OpSchema.AttrType.INTS, "pads (begins, ends)", required=False),
            onnx.defs.OpSchema.Attribute("dilations", onnx.defs.OpSchema.AttrType.INTS, "dilations", required=False),
            onnx.defs.OpSchema.Attribute("ceil_mode", onnx.defs.OpSchema.AttrType.INT, "ceil mode", required=False),
            onnx.defs.OpSchema.Attribute("beta", onnx.defs.OpSchema.AttrType.FLOAT, "temperature", required=False),
            onnx.defs.OpSchema.Attribute("betas", onnx.defs.OpSchema.AttrType.FLOATS, "per-channel temperatures", required=False),
        ],
    )
    return schema


def function_text(body: str, opset: int, accumulate: str = "float") -> str:
    """The ONNX textual form of the model-local function."""
    if body not in BODIES:
        raise ValueError(f"body must be one of {', '.join(BODIES)}, got {body!r}")
    if opset < MIN_OPSET:
        raise ValueError(f"the SoftPool function body needs opset >= {MIN_OPSET}, got {opset}")
    if body == "fast":
        accumulate = "float"  # ONNX Runtime's AveragePool has no float64 kernel
    acc, acc_name = _ACC[accumulate]
    beta = _BETA_BLOCK.format(acc=acc, acc_name=acc_name)
    if body == "fast":
        code = _FAST.format(common=_COMMON, beta=beta, acc=acc)
    else:
        dims = "".join(_DIM.format(i=i) for i in range(3))
        code = _EXACT.format(common=_COMMON, beta=beta, acc=acc, acc_name=acc_name, dims=dims)
    header = f'<domain: "{DOMAIN}", opset_import: ["" : {opset}, "{DOMAIN}" : {DOMAIN_VERSION}]>\n'
    return header + _SIGNATURE[body] + "\n" + code


def softpool_function(body: str = DEFAULT_BODY, opset: int = DEFAULT_OPSET, accumulate: str = "float") -> onnx.FunctionProto:
    """The model-local ``poolswap::SoftPool`` function with the chosen body.

    ``accumulate="double"`` gives a body that computes in float64 (for float64 models).
    """
    function = onnx.parser.parse_function(function_text(body, opset, accumulate))
    function.doc_string = f"poolswap SoftPool, {body} body (see poolswap.export._function)"
    return function


def softpool_attributes(geometry: PoolGeometry, beta: float, betas: Sequence[float], channels: Optional[int]) -> dict:
    """Every attribute of a ``poolswap::SoftPool`` node, written out (no consumer needs a default).

    ``betas`` is the per-channel list when given, else ``beta`` repeated ``channels`` times; with an
    unknown channel count (a symbolic dim) it is left out and the function's default applies.
    """
    attrs = {**geometry.onnx_attributes(), "beta": float(beta)}
    if len(betas):
        attrs["betas"] = [float(b) for b in betas]
    elif channels is not None:
        attrs["betas"] = [float(beta)] * int(channels)
    return attrs


def softpool_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Every ``poolswap::SoftPool`` node of the main graph."""
    return [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_NAME]


def node_attributes(node: onnx.NodeProto) -> dict:
    """A SoftPool node's attributes as plain Python values."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def model_body(model: onnx.ModelProto) -> Optional[str]:
    """Which body the model's SoftPool function carries (``fast``/``exact``), or None."""
    for f in model.functions:
        if f.domain == DOMAIN and f.name == OP_NAME:
            ops = {n.op_type for n in f.node}
            return "exact" if "Gather" in ops else "fast"
    return None
