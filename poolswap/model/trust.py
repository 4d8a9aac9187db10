"""What a model file may name: an architecture spec read from a file builds no code poolswap did not ship.

A converted-model file (or a recipe, or a run directory) names the architecture it was
made from. Building it must not run code the file chose, so a spec that comes from a
file is checked here before anything is imported or called:

* ``timm:NAME`` and ``torchvision:NAME``: a registered model name, with keyword arguments
  limited to the ones that rebuild the architecture (:data:`TIMM_KWARGS`,
  :data:`TORCHVISION_KWARGS`), each checked by type and range. Nothing that makes timm or
  torchvision read a file or reach the network (``pretrained``, ``pretrained_cfg``,
  ``pretrained_cfg_overlay``, ``checkpoint_path``, ``weights``, ...) can pass.
* ``package.module:factory``: only poolswap's own shipped factories (:data:`SHIPPED_FACTORIES`,
  with their own keyword lists), or a module the caller trusts by name
  (``trust_module="pkg.mod"``, ``--trust-module pkg.mod``), like Hugging Face's
  ``trust_remote_code``. A trusted module's factory gets the file's keyword arguments as they are.

Specs a user types (``poolswap convert mypkg.models:net``) are the user's own choice and
are not checked here.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from ..errors import PoolswapError, PoolswapTypeError
from .spec import ModelSpec

__all__ = ["SHIPPED_FACTORIES", "TIMM_KWARGS", "TORCHVISION_KWARGS", "TrustArg", "check_file_spec",
           "trusted_modules"]

TrustArg = Union[str, Iterable[str], None]

#: A check of one keyword value: None if it is fine, else what it must be.
Check = Callable[[Any], Optional[str]]


def _int(low: int, high: int) -> Check:
    def check(v: Any) -> Optional[str]:
        ok = isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
        return None if ok else f"an integer in [{low}, {high}]"
    return check


def _rate(v: Any) -> Optional[str]:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v < 1
    return None if ok else "a number in [0, 1)"


def _bool(v: Any) -> Optional[str]:
    return None if isinstance(v, bool) else "true or false"


def _word(v: Any) -> Optional[str]:
    ok = isinstance(v, str) and re.fullmatch(r"[a-z_]{0,32}", v) is not None
    return None if ok else "a pooling name such as 'avg' (lowercase letters)"


def _size(v: Any) -> Optional[str]:
    one = _int(1, 8192)
    ok = one(v) is None or (isinstance(v, list) and len(v) == 2 and all(one(x) is None for x in v))
    return None if ok else "an integer in [1, 8192] or two of them"


#: The classification head and the stem: the keywords a user's fine-tuned checkpoint changes.
_HEAD = {"num_classes": _int(0, 100_000)}

#: timm ``create_model`` keywords a file may set (all rebuild the architecture; none reads a file).
TIMM_KWARGS: dict[str, Check] = {
    **_HEAD,
    "in_chans": _int(1, 1024),
    "global_pool": _word,
    "drop_rate": _rate,
    "drop_path_rate": _rate,
    "drop_block_rate": _rate,
    "attn_drop_rate": _rate,
    "proj_drop_rate": _rate,
    "pos_drop_rate": _rate,
    "img_size": _size,
    "output_stride": _int(1, 64),
}

#: torchvision ``get_model`` keywords a file may set (``weights`` is always None).
TORCHVISION_KWARGS: dict[str, Check] = {
    **{k: v for k, v in _HEAD.items()},
    "aux_logits": _bool,
    "transform_input": _bool,
    "init_weights": _bool,
    "dropout": _rate,
}

#: poolswap's own ``module:factory`` specs: trusted without asking (they run no user code), with their keywords.
SHIPPED_FACTORIES: dict[str, dict[str, Check]] = {
    "poolswap.demo.model:digits_cnn": {"num_classes": _int(1, 100_000), "in_chans": _int(1, 1024),
                                        "width": _int(1, 1024)},
}

_TIMM_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?")  # NAME or NAME.TAG: no hub, no path
_TORCHVISION_NAME = re.compile(r"[a-z0-9_]+")
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_FACTORY = re.compile(r"[A-Za-z_]\w*")


def trusted_modules(trust: TrustArg) -> frozenset[str]:
    """The module names a ``trust_module`` argument names (a string or several); checks their spelling."""
    if trust is None:
        return frozenset()
    if isinstance(trust, str):
        names = [trust]
    elif isinstance(trust, Iterable):
        names = list(trust)
    else:
        raise PoolswapTypeError(f"trust_module must be a module name or a list of them, got {type(trust).__name__}")
    for name in names:
        if not isinstance(name, str) or not _MODULE.fullmatch(name):
            raise PoolswapError(f"trust_module must name Python modules such as 'mypkg.models', got {name!r}")
    return frozenset(names)


def _check_kwargs(spec: ModelSpec, allowed: Mapping[str, Check], what: str) -> None:
    for key, value in spec.kwargs.items():
        check = allowed.get(key)
        if check is None:
            raise PoolswapError(
                f"{what} asks {spec.text} for keyword {key!r}, which a model file may not set (it may set: "
                f"{', '.join(sorted(allowed))}); a file's spec only rebuilds the architecture")
        wanted = check(value)
        if wanted is not None:
            raise PoolswapError(f"{what} sets {spec.text}'s {key} to {value!r}; it must be {wanted}")


def check_file_spec(data: Any, trust: TrustArg = None, *, what: str = "the model file") -> ModelSpec:
    """The spec ``data`` (a file's ``{"source", "name", "kwargs"}``) if a file may build it; else a one-line error.

    ``trust``: module names whose ``module:factory`` specs may load (see the module's docstring).
    """
    trusted = trusted_modules(trust)
    if not isinstance(data, Mapping) or not isinstance(data.get("source"), str) or not isinstance(data.get("name"), str):
        raise PoolswapError(f"{what} has no valid architecture spec (expected source, name and kwargs)")
    kwargs = data.get("kwargs") or {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise PoolswapError(f"{what} has spec kwargs that are not a mapping of names, got {kwargs!r}")
    source, name = data["source"], data["name"]
    spec = ModelSpec(source, name, dict(kwargs))
    if source == "timm":
        if not _TIMM_NAME.fullmatch(name):
            raise PoolswapError(f"{what} names the timm model {name!r}; a file may name only a registered timm "
                                "model (no hub or local paths)")
        _check_kwargs(spec, TIMM_KWARGS, what)
    elif source == "torchvision":
        if not _TORCHVISION_NAME.fullmatch(name):
            raise PoolswapError(f"{what} names the torchvision model {name!r}, which is not a model name")
        _check_kwargs(spec, TORCHVISION_KWARGS, what)
    elif source == "python":
        module, _, factory = name.partition(":")
        if not _MODULE.fullmatch(module) or not _FACTORY.fullmatch(factory):
            raise PoolswapError(f"{what} names {name!r}, which is not a package.module:factory spec")
        if name in SHIPPED_FACTORIES:
            _check_kwargs(spec, SHIPPED_FACTORIES[name], what)
        elif module not in trusted:
            raise PoolswapError(
                f"{what} builds its model by calling {name!r}, code that poolswap did not ship; if you trust "
                f"module {module!r}, pass --trust-module {module} (Python: trust_module={module!r}), or pass the "
                "model object itself (model=...)")
    else:
        raise PoolswapError(f"{what} has spec source {source!r}; known: timm, torchvision, python")
    return spec
