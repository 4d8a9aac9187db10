"""The rules a ``poolswap::SoftPool`` node's attributes must keep: the Python twin of ``csrc/softpool_attributes.h``.

The custom-op library checks a node with the C++ rules when ORT builds its
kernel; the model's function body is plain ONNX math and refuses nothing by
itself (a NaN ``beta`` runs, a wrong-length ``betas`` may broadcast). poolswap's
own loader (:func:`poolswap.deploy.session`, ``validate``) checks every node with
these rules before a session is built, so both paths refuse the same nodes with
the same message. ``tests/export/test_attribute_rules.py`` holds the two
languages to one table.

=================  ===================================================================
``kernel_shape``   required; 1, 2 or 3 values, each in [1, 2**31 - 1]
``strides``        one per kernel dim (default 1), each in [1, 2**31 - 1]
``dilations``      one per kernel dim (default 1), each in [1, 2**31 - 1]
``pads``           two per kernel dim, begins then ends (default 0), each in [0, 2**31 - 1]
``ceil_mode``      0 or 1
``beta``           finite and > 0 (default 1.0)
``betas``          when given: one finite value > 0 per input channel
=================  ===================================================================

With a known input shape: every spatial dim has at least one window and no
window covers padding only. Plain Python: no torch, no onnx.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from ..errors import PoolswapValueError, printable

__all__ = ["MAX_ATTRIBUTE", "MAX_SPATIAL", "attribute_problem", "check_node", "geometry_problem", "node_prefix"]

#: The largest kernel, stride, dilation or pad value (as an int32 holds), as in C++.
MAX_ATTRIBUTE = 2**31 - 1
#: The longest node name a message shows (the rest is cut).
MAX_NAME = 200
#: The largest spatial input size the geometry accepts.
MAX_SPATIAL = 2**40


def _join(values: Sequence[Any]) -> str:
    return "[" + ", ".join(_number(v) for v in values) + "]"


def _number(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else f"{v:g}")
    return str(v)


def _ints(attrs: Mapping[str, Any], name: str, default: list[int]) -> list[int]:
    value = attrs.get(name)
    if value is None:
        return list(default)
    # A list of ints (ONNX INTS); the library refuses any other type with the same words.
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _Refusal(f"{name} {value!r}: must be a list of ints (ONNX type INTS)")
    return list(value)


class _Refusal(Exception):
    pass


def _check_range(name: str, values: list[int], low: int) -> None:
    for i, v in enumerate(values):
        if v < low or v > MAX_ATTRIBUTE:
            raise _Refusal(
                f"{name} {_join(values)}: value {v} at index {i} is out of range; each must be in [{low}, {MAX_ATTRIBUTE}]"
            )


def _valid_beta(b: float) -> bool:
    return b > 0 and math.isfinite(b)


def _geometry(attrs: Mapping[str, Any]) -> tuple[list[int], list[int], list[int], list[int], int]:
    if attrs.get("kernel_shape") is None:
        raise _Refusal("kernel_shape: the attribute is required (1, 2 or 3 values)")
    kernel = _ints(attrs, "kernel_shape", [])
    nd = len(kernel)
    strides = _ints(attrs, "strides", [1] * nd)
    pads = _ints(attrs, "pads", [0] * 2 * nd)
    dilations = _ints(attrs, "dilations", [1] * nd)
    ceil_mode = attrs.get("ceil_mode", 0)
    if not isinstance(ceil_mode, int) or isinstance(ceil_mode, bool):
        raise _Refusal(f"ceil_mode {ceil_mode!r}: must be an int (ONNX type INT)")
    if not 1 <= nd <= 3:
        raise _Refusal(f"kernel_shape {_join(kernel)}: needs 1, 2 or 3 values (one per spatial dim)")
    if len(strides) != nd:
        raise _Refusal(f"strides {_join(strides)}: needs {nd} values, as kernel_shape {_join(kernel)}")
    if len(dilations) != nd:
        raise _Refusal(f"dilations {_join(dilations)}: needs {nd} values, as kernel_shape {_join(kernel)}")
    if len(pads) != 2 * nd:
        raise _Refusal(f"pads {_join(pads)}: needs {2 * nd} values (begins then ends) for kernel_shape {_join(kernel)}")
    _check_range("kernel_shape", kernel, 1)
    _check_range("strides", strides, 1)
    _check_range("dilations", dilations, 1)
    _check_range("pads", pads, 0)
    if ceil_mode not in (0, 1):
        raise _Refusal(f"ceil_mode {ceil_mode}: must be 0 or 1")
    return kernel, strides, pads, dilations, int(ceil_mode)


def _betas(attrs: Mapping[str, Any]) -> list[float]:
    beta = attrs.get("beta", 1.0)
    if not isinstance(beta, float):
        raise _Refusal(f"beta {beta!r}: must be a float (ONNX type FLOAT)")
    if not _valid_beta(beta):
        raise _Refusal(f"beta {_number(beta)}: must be finite and > 0")
    betas = attrs.get("betas")
    if betas is None:
        return []
    if not isinstance(betas, (list, tuple)) or not all(isinstance(b, float) for b in betas):
        raise _Refusal(f"betas {betas!r}: must be a list of floats (ONNX type FLOATS)")
    betas = list(betas)
    for i, b in enumerate(betas):
        if not _valid_beta(b):
            raise _Refusal(f"betas: value {_number(b)} at index {i} must be finite and > 0")
    return betas


def _pooled_size(size: int, k: int, s: int, pad_begin: int, pad_end: int, d: int, ceil_mode: bool) -> int:
    """``pooled_size`` of softpool_kernel.h: torch.nn.MaxPoolNd's rule with begin and end pads."""
    extent = d * (k - 1) + 1
    numerator = size + pad_begin + pad_end - extent + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    if ceil_mode and out > 0 and (out - 1) * s >= size + pad_begin:
        out -= 1
    return out


def _dim_problem(src: int, size: int, kernel, strides, pads, dilations, ceil_mode: int) -> int:
    """Output size of spatial dim ``src``; refuses a window-less dim or a window of padding only."""
    nd = len(kernel)
    k, s, d, pb, pe = kernel[src], strides[src], dilations[src], pads[src], pads[nd + src]
    if not 1 <= size <= MAX_SPATIAL:
        raise _Refusal(f"input size {size} in spatial dim {src}: must be in [1, {MAX_SPATIAL}]")
    extent = d * (k - 1) + 1
    out = _pooled_size(size, k, s, pb, pe, d, bool(ceil_mode))
    if out < 1:
        raise _Refusal(
            f"kernel_shape {_join(kernel)} (with dilations {_join(dilations)}: extent {extent}) is larger than the "
            f"padded input {size} + {pb} + {pe} in spatial dim {src}"
        )
    where = f"(input {size}, kernel {k}, stride {s}, dilation {d})"
    # Windows starting in the begin padding: with d <= size the first is the worst; with d > size at most
    # size + 1 of them need a look (see fill_geometry_dim in softpool_attributes.h).
    for o in range(min(out, pb // s + 1, 1 if d <= size else size + 1)):
        start = o * s - pb
        if start >= 0:
            break
        k_lo = (-start + d - 1) // d
        if k_lo >= k or start + k_lo * d >= size:
            raise _Refusal(f"pads {_join(pads)}: output window {o} of spatial dim {src} covers only padding {where}")
    if (out - 1) * s - pb >= size:
        raise _Refusal(f"pads {_join(pads)}: output window {out - 1} of spatial dim {src} covers only padding {where}")
    return out


def attribute_problem(attrs: Mapping[str, Any]) -> Optional[str]:
    """What is wrong with a node's attributes (plain values, as ``onnx.helper.get_attribute_value`` gives), or None."""
    try:
        _geometry(attrs)
        _betas(attrs)
    except _Refusal as refusal:
        return str(refusal)
    return None


def geometry_problem(attrs: Mapping[str, Any], input_shape: Sequence[Optional[int]]) -> Optional[str]:
    """What is wrong with valid attributes on an input of ``input_shape`` (None for an unknown dim), or None.

    Only the known dims are checked: the rank, the channel count against ``betas``, each spatial dim's windows.
    """
    try:
        kernel, strides, pads, dilations, ceil_mode = _geometry(attrs)
        betas = _betas(attrs)
        nd = len(kernel)
        if len(input_shape) != nd + 2:
            raise _Refusal(
                f"kernel_shape {_join(kernel)}: a {nd}-d kernel needs an (N, C, spatial...) input of rank {nd + 2}, "
                f"got rank {len(input_shape)}"
            )
        channels = input_shape[1]
        if betas and channels is not None and len(betas) != channels:
            raise _Refusal(
                f"betas holds {len(betas)} values but the input has {channels} channels; "
                "betas needs one value per channel"
            )
        out_shape = list(input_shape[:2])
        for src, size in enumerate(input_shape[2:]):
            out_shape.append(None if size is None else _dim_problem(src, size, kernel, strides, pads, dilations, ceil_mode))
        if None not in out_shape and math.prod(out_shape) > 2**63 - 1:
            raise _Refusal(f"output shape {_join(out_shape)}: too many elements")
    except _Refusal as refusal:
        shape = "[" + ", ".join("?" if v is None else str(v) for v in input_shape) + "]"
        return f"{refusal} (input shape {shape})"
    return None


def node_prefix(name: str) -> str:
    """``poolswap::SoftPool node 'NAME': `` as the library starts its messages.

    A node's name comes from the file: control characters are written as ``\\xHH`` (a newline in
    it would cut a one-line error before its reason; an escape sequence would colour the terminal)
    and a name longer than :data:`MAX_NAME` characters is cut, as in C++.
    """
    shown = printable(name[:MAX_NAME])
    return "poolswap::SoftPool node" + (f" '{shown}{'...' if len(name) > MAX_NAME else ''}'" if name else "") + ": "


def check_node(name: str, attrs: Mapping[str, Any], input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
    """Raise :class:`PoolswapValueError` naming the node and the attribute when the node cannot run."""
    problem = attribute_problem(attrs)
    if problem is None and input_shape is not None:
        problem = geometry_problem(attrs, input_shape)
    if problem is not None:
        raise PoolswapValueError(node_prefix(name) + problem)
