"""The torch.fx tracer poolswap finds pooling sites with.

It follows timm's and torchvision's own tracing rules (their leaf modules and
no-trace functions), keeps every pooling module and every poolswap module a
leaf, passes optional ``forward`` arguments as concrete values, and, when a
sub-module still cannot be traced, makes it a leaf and retries; the caller
then traces that leaf's children on their own (see :mod:`.find`).
"""

from __future__ import annotations

import functools
import inspect as _inspect
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import fx, nn

__all__ = ["PoolTracer", "TraceResult", "trace", "trace_shallow", "is_builtin_leaf", "train_mode"]

logger = logging.getLogger(__name__)

_POOL_TYPES: tuple[type, ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)


def _timm_rules() -> tuple[list[type], list[Any]]:
    if "timm" not in sys.modules:  # a model with timm's modules has imported timm
        return [], []
    try:
        import timm.models  # noqa: F401  (registers every model's no-trace modules and functions)
        from timm.layers import get_notrace_functions, get_notrace_modules
    except Exception:  # timm missing or broken: trace without its rules
        return [], []
    return list(get_notrace_modules()), [f for f in get_notrace_functions() if callable(f)]


@functools.lru_cache(maxsize=None)
def _torchvision_rules() -> tuple[list[type], tuple]:
    try:
        import torchvision.ops
        from torchvision.models.feature_extraction import _get_leaf_modules_for_ops
    except Exception:
        return [], ()
    return list(_get_leaf_modules_for_ops()), (torchvision.ops,)


def _poolswap_types() -> tuple[type, ...]:
    from ..ops.temperature import SoftPoolBase

    return (SoftPoolBase,)


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_torch_class(cls: type) -> bool:
    return cls.__module__.startswith("torch.nn") or cls.__module__.startswith("torch.ao.nn")


def is_builtin_leaf(module: nn.Module) -> bool:
    """A module whose code holds no pooling site of its own: torch.nn's layers and their
    child-less subclasses (timm's ``Conv2dSame``), pools, poolswap's modules."""
    if isinstance(module, _POOL_TYPES) or isinstance(module, _poolswap_types()):
        return True
    if isinstance(module, _CONTAINERS):
        return False
    cls = type(module)
    if _is_torch_class(cls):
        return True
    has_children = next(iter(module.children()), None) is not None
    return not has_children and any(_is_torch_class(b) and b is not nn.Module for b in cls.__mro__[1:])


class PoolTracer(fx.Tracer):
    """``fx.Tracer`` with timm's and torchvision's leaf rules, plus forced leaves by path.

    ``shallow=True`` makes every sub-module a leaf: the graph is then the root's
    own ``forward`` code, which is what a function site's owner is rewritten from.
    """

    def __init__(self, leaf_paths: tuple[str, ...] = (), shallow: bool = False) -> None:
        timm_leaves, timm_functions = _timm_rules()
        tv_leaves, tv_autowrap = _torchvision_rules()
        super().__init__(autowrap_modules=(math, *tv_autowrap), autowrap_functions=tuple(timm_functions))
        self.leaf_types = tuple({*timm_leaves, *tv_leaves, *_poolswap_types(), *_POOL_TYPES})
        self.leaf_paths = set(leaf_paths)
        self.shallow = shallow
        self.call_stack: list[str] = []

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if self.shallow and module_qualified_name:
            return True
        if module_qualified_name in self.leaf_paths or isinstance(m, self.leaf_types):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        # The stack is left as it is when tracing fails: its top is the module that failed.
        self.call_stack.append(self.path_of_module(m))
        out = super().call_module(m, forward, args, kwargs)
        self.call_stack.pop()
        return out


@dataclass
class TraceResult:
    graph: Optional[fx.Graph]
    forced_leaves: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # path (relative) -> one-line error
    error: str = ""  # why the root itself could not be traced


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def concrete_args_for(module: nn.Module) -> dict[str, Any]:
    """Optional ``forward`` arguments, fixed to their defaults (``mask=None`` and the like)."""
    try:
        params = list(_inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    concrete = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is not p.empty and not isinstance(p.default, torch.Tensor):
            concrete[p.name] = p.default
    return concrete


class train_mode:
    """Context: put a module tree in train or eval mode, restoring every module's own flag after."""

    def __init__(self, module: nn.Module, training: bool) -> None:
        self.module = module
        self.training = training
        self.saved: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.saved = [(m, m.training) for m in self.module.modules()]
        self.module.train(self.training)
        return self.module

    def __exit__(self, *exc) -> None:
        for m, flag in self.saved:
            m.training = flag


def trace(module: nn.Module, *, training: bool, leaf_paths: tuple[str, ...] = (), max_retries: int = 32) -> TraceResult:
    """Trace ``module`` in train or eval mode; sub-modules that fail become leaves (and are listed)."""
    leaves = list(leaf_paths)
    result = TraceResult(graph=None)
    concrete = concrete_args_for(module)
    for _ in range(max_retries):
        tracer = PoolTracer(tuple(leaves))
        try:
            with train_mode(module, training):
                graph = tracer.trace(module, concrete_args=concrete or None)
        except Exception as exc:  # any failure of user code under tracing
            failing = tracer.call_stack[-1] if tracer.call_stack else ""
            if not failing or failing in leaves:
                result.error = _one_line(exc)
                return result
            logger.debug("fx: %s cannot be traced (%s); tracing it as a leaf", failing, exc)
            leaves.append(failing)
            result.forced_leaves.append(failing)
            result.errors[failing] = _one_line(exc)
            continue
        result.graph = graph
        return result
    result.error = "too many sub-modules cannot be traced"
    return result


def trace_shallow(module: nn.Module, *, training: bool) -> tuple[Optional[fx.GraphModule], str]:
    """Trace only ``module``'s own forward code (every sub-module a leaf); (graph module, error)."""
    tracer = PoolTracer(shallow=True)
    concrete = concrete_args_for(module)
    try:
        with train_mode(module, training):
            graph = tracer.trace(module, concrete_args=concrete or None)
    except Exception as exc:
        return None, _one_line(exc)
    return fx.GraphModule(module, graph, class_name=type(module).__name__), ""
