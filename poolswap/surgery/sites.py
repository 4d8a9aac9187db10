"""A pooling site: where a model pools, what it is, and what poolswap does with it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

__all__ = ["Site", "KINDS", "LOCAL_KINDS", "GLOBAL_KINDS", "ROLES", "MECHANISMS"]

#: Every kind a site can have.
KINDS = ("max", "avg", "global_max", "global_avg", "adaptive_max", "adaptive_avg")
LOCAL_KINDS = ("max", "avg")
GLOBAL_KINDS = ("global_max", "global_avg", "adaptive_max", "adaptive_avg")
ROLES = ("stem", "downsample", "in-block", "head", "squeeze-excitation", "token-mixer", "token-pool")
#: How a site was found: in the traced graph of the whole model, in the trace of a
#: sub-module that had to be traced on its own, or only in the module tree (eager).
MECHANISMS = ("fx-graph", "fx-leaf-children", "eager-module")


@dataclass
class Site:
    """One pooling site of a model.

    ``name`` is the module path of the pool (for a module site) or the path the
    SoftPool module gets when it is swapped (for a function or method site: the
    owning module's path plus the fx node's name, e.g. ``Mixed_5b.avg_pool2d``).
    """

    name: str
    kind: str
    source: str  # "module", "function" or "method"
    op: str  # e.g. "torch.nn.MaxPool2d", "torch.nn.functional.avg_pool2d", "Tensor.mean"
    ndim: int  # spatial dims
    geometry: dict[str, Any] = field(default_factory=dict)
    role: str = "in-block"
    action: str = "skip"  # "swap" or "skip"
    reason: str = ""
    mechanism: str = "fx-graph"
    owner: str = ""  # module whose forward holds the call (function/method sites)
    node: str = ""  # fx node name inside the owner's own trace (function/method sites)
    train_only: bool = False
    input_shape: Optional[tuple[int, ...]] = None
    output_shape: Optional[tuple[int, ...]] = None
    num_channels: Optional[int] = None
    warnings: list[str] = field(default_factory=list)
    #: Set on a site that can never be swapped (indices used, dynamic kernel, ...).
    blocked: str = ""

    @property
    def is_global(self) -> bool:
        return self.kind in GLOBAL_KINDS

    def geometry_text(self) -> str:
        g = self.geometry
        if not g:
            return "-"
        if "output_size" in g:
            return f"output_size={g['output_size']}"
        if g.get("dims") is not None:
            return f"dims={tuple(g['dims'])}" + (", keepdim" if g.get("keepdim") else "")
        parts = [f"k={_short(g.get('kernel_size'))}", f"s={_short(g.get('stride'))}"]
        if g.get("same"):
            parts.append("p=same")
        elif any(g.get("padding", ()) or ()):
            parts.append(f"p={_short(g['padding'])}")
        if any(d != 1 for d in g.get("dilation", ()) or ()):
            parts.append(f"d={_short(g['dilation'])}")
        if g.get("ceil_mode"):
            parts.append("ceil")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("input_shape", "output_shape"):
            if d[key] is not None:
                d[key] = list(d[key])
        d["geometry"] = _jsonable(d["geometry"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Site":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("input_shape", "output_shape"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        if isinstance(known.get("geometry"), dict):
            known["geometry"] = {k: tuple(v) if isinstance(v, list) else v for k, v in known["geometry"].items()}
        return cls(**known)


def _short(v: Any) -> str:
    if isinstance(v, (tuple, list)) and len(set(v)) == 1:
        return str(v[0])
    if isinstance(v, (tuple, list)):
        return "x".join(str(i) for i in v)
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return v
