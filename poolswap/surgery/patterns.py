"""What a pooling site looks like: modules, functions and methods, and their arguments.

``classify_module(m)`` and ``classify_node(node)`` turn a module or an fx node into
a :class:`PoolCall` (kind, spatial dims, normalised geometry) or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["PoolCall", "classify_module", "classify_node", "POOL_FUNCTIONS", "same_pool_types"]


@dataclass
class PoolCall:
    kind: str  # max, avg, adaptive_max, adaptive_avg, global_max, global_avg
    ndim: int
    op: str
    geometry: dict[str, Any] = field(default_factory=dict)
    blocked: str = ""
    warnings: list[str] = field(default_factory=list)
    token_pool: bool = False


def same_pool_types() -> tuple[type, ...]:
    import sys

    if "timm" not in sys.modules:  # a model holding timm's pools has imported timm
        return ()
    try:
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    except Exception:
        return ()
    return (MaxPool2dSame, AvgPool2dSame)


def _tup(v: Any, n: int) -> Any:
    if isinstance(v, (fx.Node, torch.SymInt)) or (isinstance(v, (list, tuple)) and any(isinstance(i, fx.Node) for i in v)):
        return None  # computed at run time
    if v is None:
        return None
    if isinstance(v, int):
        return (int(v),) * n
    items = tuple(int(i) for i in v)
    return items * n if len(items) == 1 else items


def _local_geometry(kind: str, n: int, a: dict[str, Any]) -> tuple[dict[str, Any], str]:
    kernel = _tup(a.get("kernel_size"), n)
    stride_raw = a.get("stride")
    stride = kernel if stride_raw is None or (isinstance(stride_raw, (list, tuple)) and len(stride_raw) == 0) else _tup(stride_raw, n)
    padding = _tup(a.get("padding", 0), n)
    dilation = _tup(a.get("dilation", 1), n) if kind == "max" else (1,) * n
    ceil_mode = a.get("ceil_mode", False)
    dynamic = [k for k, v in (("kernel_size", kernel), ("stride", stride), ("padding", padding), ("dilation", dilation)) if v is None]
    if isinstance(ceil_mode, fx.Node):
        dynamic.append("ceil_mode")
    g: dict[str, Any] = {
        "kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation,
        "ceil_mode": bool(ceil_mode) if not isinstance(ceil_mode, fx.Node) else None,
    }
    if kind == "avg":
        g["count_include_pad"] = bool(a.get("count_include_pad", True))
        g["divisor_override"] = a.get("divisor_override")
    blocked = f"{', '.join(dynamic)} computed at run time" if dynamic else ""
    return g, blocked


def _avg_warnings(g: dict[str, Any]) -> list[str]:
    out = []
    if g.get("count_include_pad") and (g.get("same") or any(g.get("padding") or ())):
        out.append("count_include_pad=True with padding: AvgPool counts padded zeros, SoftPool ignores padding (semantics change)")
    if g.get("divisor_override"):
        out.append(f"divisor_override={g['divisor_override']} is ignored by SoftPool (semantics change)")
    return out


def classify_module(m: nn.Module) -> Optional[PoolCall]:
    """The pooling call a module makes, or None if it is no pool poolswap knows."""
    same = same_pool_types()
    for n, (mx, av, amx, aav) in {
        1: (nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveMaxPool1d, nn.AdaptiveAvgPool1d),
        2: (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d),
        3: (nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool3d),
    }.items():
        op = f"{type(m).__module__}.{type(m).__name__}"
        if isinstance(m, (mx, av)):
            kind = "max" if isinstance(m, mx) else "avg"
            args = {k: getattr(m, k) for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode",
                                               "count_include_pad", "divisor_override") if hasattr(m, k)}
            g, blocked = _local_geometry(kind, n, args)
            call = PoolCall(kind, n, op, g, blocked)
            if same and isinstance(m, same):
                g["same"] = True
                g["padding"] = (0,) * n
                if any(d != 1 for d in g["dilation"]):
                    call.blocked = "'same' padding with dilation > 1 can exceed half the kernel; SoftPool cannot pad that much"
            if kind == "max" and getattr(m, "return_indices", False):
                call.blocked = "return_indices=True: its argmax indices are used"
            if kind == "avg":
                call.warnings = _avg_warnings(g)
            return call
        if isinstance(m, (amx, aav)):
            kind = "adaptive_max" if isinstance(m, amx) else "adaptive_avg"
            out = m.output_size
            call = PoolCall(kind, n, op, {"output_size": _norm_output_size(out, n)})
            if kind == "adaptive_max" and getattr(m, "return_indices", False):
                call.blocked = "return_indices=True: its argmax indices are used"
            _check_adaptive(call)
            return call
    return None


def _norm_output_size(out: Any, n: int) -> Any:
    if isinstance(out, int):
        return (out,) * n
    if isinstance(out, (list, tuple)):
        return tuple(o if o is None or isinstance(o, int) else None for o in out) if len(out) == n else tuple(out) * n
    return None


def _check_adaptive(call: PoolCall) -> None:
    out = call.geometry.get("output_size")
    if out is None:
        call.blocked = "output_size computed at run time"
    elif any(o != 1 for o in out):
        call.blocked = f"adaptive pool to output_size={out}: only output size 1 (a global pool) can become a SoftPool"


# --- functions -------------------------------------------------------------------------------

_MAX_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG1_ARGS = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
_AVG_ARGS = _AVG1_ARGS + ("divisor_override",)
_ADAPTIVE_ARGS = ("input", "output_size", "return_indices")
_REDUCE_ARGS = ("input", "dim", "keepdim")


def _function_table() -> dict[Callable, tuple[str, int, tuple[str, ...], bool]]:
    """function -> (family, ndim, argument names, returns indices)."""
    table: dict[Callable, tuple[str, int, tuple[str, ...], bool]] = {}

    def add(fn: Any, family: str, n: int, names: tuple[str, ...], with_indices: bool = False) -> None:
        if fn is not None:
            table.setdefault(fn, (family, n, names, with_indices))

    nn_c = torch._C._nn
    for n in (1, 2, 3):
        add(getattr(F, f"max_pool{n}d"), "max", n, _MAX_ARGS)
        add(getattr(F, f"max_pool{n}d_with_indices"), "max", n, _MAX_ARGS, True)
        add(getattr(torch, f"max_pool{n}d", None), "max", n, _MAX_ARGS[:-1])
        add(getattr(nn_c, f"max_pool{n}d_with_indices", None), "max", n, _MAX_ARGS[:-1], True)
        add(getattr(F, f"avg_pool{n}d"), "avg", n, _AVG1_ARGS if n == 1 else _AVG_ARGS)
        add(getattr(nn_c, f"avg_pool{n}d", None), "avg", n, _AVG_ARGS)
        add(getattr(torch, f"avg_pool{n}d", None), "avg", n, _AVG1_ARGS)
        add(getattr(F, f"adaptive_avg_pool{n}d"), "adaptive_avg", n, _ADAPTIVE_ARGS[:2])
        add(getattr(nn_c, f"adaptive_avg_pool{n}d", None), "adaptive_avg", n, _ADAPTIVE_ARGS[:2])
        add(getattr(torch, f"adaptive_avg_pool{n}d", None), "adaptive_avg", n, _ADAPTIVE_ARGS[:2])
        add(getattr(F, f"adaptive_max_pool{n}d"), "adaptive_max", n, _ADAPTIVE_ARGS)
        add(getattr(F, f"adaptive_max_pool{n}d_with_indices"), "adaptive_max", n, _ADAPTIVE_ARGS, True)
        add(getattr(torch, f"adaptive_max_pool{n}d", None), "adaptive_max", n, _ADAPTIVE_ARGS[:2], True)
        add(getattr(nn_c, f"adaptive_max_pool{n}d", None), "adaptive_max", n, _ADAPTIVE_ARGS[:2], True)
    add(torch.mean, "mean", 0, _REDUCE_ARGS)
    add(torch.amax, "amax", 0, _REDUCE_ARGS)
    return table


POOL_FUNCTIONS = _function_table()
_POOL_METHODS = {"mean": "mean", "amax": "amax"}


def _fn_name(fn: Any) -> str:
    mod = getattr(fn, "__module__", None) or ""
    if fn in (torch.mean, torch.amax) or mod in ("", "torch") or mod.startswith("torch._C"):
        mod = "torch._C._nn" if getattr(torch._C._nn, getattr(fn, "__name__", ""), None) is fn else "torch"
    return f"{mod}.{getattr(fn, '__name__', repr(fn))}"


def _bind(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _tensor_meta_shape(node: Any) -> Optional[tuple[int, ...]]:
    if isinstance(node, fx.Node):
        meta = node.meta.get("tensor_meta")
        if meta is not None and hasattr(meta, "shape"):
            return tuple(int(s) for s in meta.shape)
    return None


def _indices_used(node: fx.Node) -> bool:
    import operator

    for user in node.users:
        if user.op == "call_function" and user.target is operator.getitem and user.args[1] == 0:
            continue
        return True
    return False


def classify_node(node: fx.Node) -> Optional[PoolCall]:
    """The pooling call an fx ``call_function`` or ``call_method`` node makes, or None."""
    if node.op == "call_function":
        try:
            entry = POOL_FUNCTIONS.get(node.target)
        except TypeError:  # unhashable target
            return None
        if entry is None:
            return None
        family, n, names, with_indices = entry
        op = _fn_name(node.target)
        a = _bind(names, node.args, node.kwargs)
    elif node.op == "call_method" and node.target in _POOL_METHODS:
        family, n, with_indices = _POOL_METHODS[node.target], 0, False
        op = f"Tensor.{node.target}"
        a = _bind(_REDUCE_ARGS, node.args, node.kwargs)
    else:
        return None
    if family in ("mean", "amax"):
        return _classify_reduce(family, op, a)
    if family in ("max", "avg"):
        g, blocked = _local_geometry(family, n, a)
        call = PoolCall(family, n, op, g, blocked)
        if family == "avg":
            call.warnings = _avg_warnings(g)
        if (with_indices or a.get("return_indices") is True) and _indices_used(node):
            call.blocked = "return_indices=True: its argmax indices are used"
        elif isinstance(a.get("return_indices"), fx.Node):
            call.blocked = "return_indices computed at run time"
        elif with_indices or a.get("return_indices"):
            call.blocked = "returns argmax indices (a tuple); SoftPool has none"
        return call
    call = PoolCall(family, n, op, {"output_size": _norm_output_size(a.get("output_size"), n)})
    _check_adaptive(call)
    if (with_indices or a.get("return_indices")) and not call.blocked:
        call.blocked = "returns argmax indices (a tuple); SoftPool has none"
    return call


def _classify_reduce(family: str, op: str, a: dict[str, Any]) -> Optional[PoolCall]:
    """``x.mean(dims)`` / ``x.amax(dims)``: a global pool when it reduces every spatial dim."""
    dim = a.get("dim")
    if dim is None or isinstance(dim, fx.Node):
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if not dims or not all(isinstance(d, int) for d in dims):
        return None
    keepdim = a.get("keepdim", False)
    if isinstance(keepdim, fx.Node):
        return None
    shape = _tensor_meta_shape(a.get("input"))
    kind = "global_avg" if family == "mean" else "global_max"
    if shape is not None:
        rank = len(shape)
        norm = tuple(sorted(d % rank for d in dims))
        geometry = {"dims": norm, "keepdim": bool(keepdim)}
        if rank in (3, 4, 5) and norm == tuple(range(2, rank)):
            return PoolCall(kind, rank - 2, op, geometry)
        if rank == 3 and norm == (1,):
            return PoolCall(kind, 1, op, geometry, blocked="pools over a token sequence (B, N, C), not a feature map",
                            token_pool=True)
        if rank == 4 and norm == (1, 2):
            return PoolCall(kind, 2, op, geometry, blocked="pools a channels-last (B, H, W, C) map; SoftPool takes (N, C, H, W)")
        return None
    norm = tuple(sorted(dims))
    if norm in ((2, 3), (-2, -1), (2, 3, 4), (-3, -2, -1)):
        return PoolCall(kind, len(norm), op, {"dims": norm, "keepdim": bool(keepdim)})
    return None
