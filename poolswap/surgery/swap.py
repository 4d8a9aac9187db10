"""The swap pass: ``convert(model, ...)`` replaces the selected sites by SoftPool modules.

Module sites are replaced in place in the model's own module tree (its class,
methods and attributes survive). A function or method site lives in some
module's own ``forward`` code (its owner): that owner alone is traced
shallowly (its children stay modules) into a GraphModule whose pooling call
becomes a ``call_module`` to a SoftPool inserted under the owner, named after
the fx node (``Mixed_5b.avg_pool2d``); the GraphModule keeps the owner's
children, parameters, buffers and public attributes, so the state_dict keys do
not change. Every swapped site is a SoftPool module afterwards, so setting a
site's temperature (calibration) or learning it works the same everywhere.
"""

from __future__ import annotations

import copy
import logging
import types
import warnings
from collections import OrderedDict
from typing import Any, Iterable, Optional, Union

from torch import fx, nn

from ..errors import PoolswapError, PoolswapTypeError
from ..ops import GlobalSoftPool, SoftPool1d, SoftPool2d, SoftPool2dSame, SoftPool3d
from .find import find_sites, untraced_pooling
from .manifest import MANIFEST_ATTR, build_manifest
from .patterns import classify_node
from .report import Report
from .rules import apply_rules
from .sites import Site
from .tracer import trace_shallow

__all__ = ["convert", "convert_sites", "apply_manifest", "make_softpool", "parent_name"]

logger = logging.getLogger(__name__)

_SOFTPOOL_ND = {1: SoftPool1d, 2: SoftPool2d, 3: SoftPool3d}


def parent_name(target: str) -> tuple[str, str]:
    """'a.b.c' -> ('a.b', 'c')."""
    *parent, name = target.rsplit(".", 1)
    return (parent[0] if parent else ""), name


def make_softpool(site: Site, *, beta: float = 1.0, learn_beta: Union[bool, str] = False) -> nn.Module:
    """The SoftPool module that replaces ``site`` (same geometry, same output shape)."""
    channels = site.num_channels
    if learn_beta == "channel" and not channels:
        raise PoolswapError(
            f"learn_beta='channel' needs the channel count of site {site.name}; pass an example input "
            f"(--input-size) so shapes can be measured, or use learn_beta='scalar'"
        )
    kwargs: dict[str, Any] = {"beta": beta, "learn_beta": learn_beta, "num_channels": channels}
    g = site.geometry
    if site.kind in ("max", "avg"):
        if g.get("same"):
            return SoftPool2dSame(g["kernel_size"], g["stride"], g.get("dilation", 1), **kwargs)
        return _SOFTPOOL_ND[site.ndim](g["kernel_size"], g["stride"], g["padding"], g.get("dilation", 1),
                                       ceil_mode=bool(g.get("ceil_mode")), **kwargs)
    keepdim = True if site.kind.startswith("adaptive") else bool(g.get("keepdim", False))
    return GlobalSoftPool(site.ndim, keepdim, **kwargs)


def _set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, name = parent_name(path)
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)


def _graph_owner(owner: nn.Module, gm: fx.GraphModule, inserted: dict[str, nn.Module], is_root: bool) -> fx.GraphModule:
    """Make ``gm`` carry exactly the owner's state (same objects, same order) plus the inserted pools."""
    gm._modules = OrderedDict(owner._modules)
    for name, module in inserted.items():
        gm._modules[name] = module
    gm._parameters = OrderedDict(owner._parameters)
    gm._buffers = OrderedDict(owner._buffers)
    gm._non_persistent_buffers_set = set(owner._non_persistent_buffers_set)
    gm.training = owner.training
    preserved = {}
    for key, value in owner.__dict__.items():
        if key.startswith("_") or key in gm.__dict__ or key == "training":
            continue
        setattr(gm, key, value)
        preserved[key] = value
    # GraphModule's deepcopy (EMA copies, for one) keeps these attributes too.
    gm.meta.setdefault("_user_preserved_attributes", {}).update(preserved)
    if is_root:
        # Methods of the user's class (forward_features, reset_classifier...), bound to the GraphModule.
        for cls in type(owner).__mro__:
            if cls in (nn.Module, object) or cls.__module__.startswith("torch."):
                continue
            for key, value in vars(cls).items():
                if key in ("forward", "__init__") or key.startswith("__") or hasattr(fx.GraphModule, key) or key in gm.__dict__:
                    continue
                if isinstance(value, types.FunctionType):
                    bound = types.MethodType(value, gm)
                    gm.__dict__[key] = bound
        gm.meta["poolswap_original_class"] = f"{type(owner).__module__}.{type(owner).__qualname__}"
    return gm


def _rewrite_owner(model: nn.Module, path: str, sites: list[Site], beta_of, learn_of) -> nn.Module:
    owner = model.get_submodule(path) if path else model
    gm, error = trace_shallow(owner, training=False)
    if gm is None:
        raise PoolswapError(f"cannot rewrite {path or 'the model'}: its forward cannot be traced ({error})")
    by_node = {s.node: s for s in sites}
    inserted: dict[str, nn.Module] = {}
    graph = gm.graph
    for node in list(graph.nodes):
        site = by_node.get(node.name)
        if site is None:
            continue
        call = classify_node(node)
        if call is None or call.op != site.op:
            raise PoolswapError(f"site {site.name} is no longer where inspect found it; re-run inspect")
        attr = parent_name(site.name)[1]
        module = make_softpool(site, beta=beta_of(site), learn_beta=learn_of(site))
        inserted[attr] = module
        gm.add_submodule(attr, module)
        source = node.args[0] if node.args else node.kwargs.get("input")
        with graph.inserting_before(node):
            new = graph.call_module(attr, (source,))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    missing = set(by_node) - set(inserted and [s.node for s in sites if parent_name(s.name)[1] in inserted])
    if missing:
        raise PoolswapError(f"sites {sorted(missing)} of {path or 'the model'} were not found in its graph")
    graph.lint()
    gm.recompile()
    new_owner = _graph_owner(owner, gm, inserted, is_root=not path)
    if path:
        _set_module(model, path, new_owner)
        return model
    return new_owner


def _swap(model: nn.Module, chosen: list[Site], beta_of, learn_of) -> nn.Module:
    for site in chosen:
        if site.source == "module":
            _set_module(model, site.name, make_softpool(site, beta=beta_of(site), learn_beta=learn_of(site)))
    by_owner: dict[str, list[Site]] = {}
    for site in chosen:
        if site.source != "module":
            by_owner.setdefault(site.owner, []).append(site)
    # Innermost owners first, the model itself last.
    for path in sorted(by_owner, key=lambda p: (p == "", -p.count("."))):
        model = _rewrite_owner(model, path, by_owner[path], beta_of, learn_of)
    return model


def apply_manifest(model: nn.Module, data: dict) -> nn.Module:
    """Swap exactly the sites a manifest lists as swapped (``load`` rebuilds a model with it).

    No discovery pass is needed: module sites are checked against the module found at
    their path, function sites against their owner's graph.
    """
    from .patterns import classify_module

    wanted = [Site.from_dict(e) for e in data.get("sites", []) if e.get("action") == "swap"]
    by_name = {e["name"]: e for e in data.get("sites", []) if e.get("action") == "swap"}
    config = data.get("config") or {}
    for site in wanted:
        if site.source != "module":
            continue
        try:
            found = classify_module(model.get_submodule(site.name))
        except AttributeError:
            found = None
        if found is None or found.kind != site.kind:
            raise PoolswapError(f"the manifest swaps {site.name!r} ({site.kind!r}), which this architecture does not have")

    def beta_of(site: Site) -> float:
        entry = by_name[site.name]
        value = entry.get("beta")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # a learnt temperature (a list per channel) lives in the weights; anything else is damage, not a default
        if value is not None and not (isinstance(value, list) and entry.get("learn_beta")):
            what = f"a list of {len(value)} values" if isinstance(value, list) else repr(value)[:60]
            raise PoolswapError(f"the manifest gives site {site.name!r} the fixed beta {what}; a fixed beta is one "
                                "number (the file is damaged)")
        return float(config.get("beta", 1.0))

    return _swap(model, wanted, beta_of, lambda s: by_name[s.name].get("learn_beta") or False)


def _learn_mode(learn_beta: Union[bool, str, None]) -> Union[bool, str]:
    if learn_beta not in (False, True, None, "scalar", "channel"):
        raise PoolswapError(f"learn_beta must be False, True, 'scalar' or 'channel', got {learn_beta!r}")
    return "scalar" if learn_beta is True else (learn_beta or False)


def convert_sites(
    model: nn.Module,
    sites: list[Site],
    *,
    beta: float = 1.0,
    betas: Optional[dict[str, float]] = None,
    learn_beta: Union[bool, str] = False,
    config: Optional[dict] = None,
    untraced: Optional[list] = None,
    extra: Optional[dict] = None,
) -> nn.Module:
    """Swap, in ``model`` itself, the ``sites`` whose ``action`` is already ``"swap"``; attach the manifest.

    ``betas`` gives some sites their own temperature (``beta`` for the others);
    ``config`` and ``extra`` go into the manifest (see :func:`~.manifest.build_manifest`).
    """
    learn = _learn_mode(learn_beta)
    betas = dict(betas or {})
    chosen = [s for s in sites if s.action == "swap"]
    model = _swap(model, chosen, lambda s: betas.get(s.name, beta), lambda s: learn)
    data = build_manifest(model, sites, dict(config or {}), untraced, extra)
    setattr(model, MANIFEST_ATTR, data)
    if isinstance(model, fx.GraphModule):
        model.meta.setdefault("_user_preserved_attributes", {})[MANIFEST_ATTR] = data
    return model


def convert(
    model: nn.Module,
    *,
    kinds: Optional[Iterable[str]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    beta: float = 1.0,
    learn_beta: Union[bool, str] = False,
    strict: bool = False,
    example_input: Any = None,
    inplace: bool = False,
    report: Optional[Report] = None,
    min_agreement: Optional[float] = None,
    data: Any = None,
    num_batches: int = 8,
    batch_size: int = 32,
    data_config: Optional[dict] = None,
) -> nn.Module:
    """Replace ``model``'s pooling sites by SoftPool; returns the converted model.

    kinds: site kinds to swap (default: ``max`` and ``avg``); include / exclude:
    name globs, kinds or roles (see :mod:`.rules`); beta: the temperature of every
    new SoftPool; learn_beta: False, True / 'scalar' or 'channel' (adds one
    ``<site>.log_beta`` parameter per site); strict: a rule that matches no site
    is an error. The model is copied first unless ``inplace``. The result carries
    its swap manifest as ``model.poolswap_manifest`` (see :func:`manifest`).

    min_agreement: with ``data`` (an image folder, a Dataset, a tensor of images or
    batches; ``num_batches`` of ``batch_size`` images are used), swap and calibrate
    the chosen sites, but leave as they are the fewest (found greedily, most
    harmful first) needed to keep top-1 agreement with the original at or above
    ``min_agreement`` on those images; see :func:`~.target.convert_for_agreement`.
    """
    check_model(model, "convert")
    learn = _learn_mode(learn_beta)
    if min_agreement is None and data is not None:
        raise PoolswapError("data is used to reach min_agreement: pass min_agreement too (e.g. 0.995)")
    if min_agreement is not None:
        _check_target(min_agreement)
        if data is None:
            raise PoolswapError("min_agreement needs data: images to measure agreement with the original on")
    if not inplace:
        model = copy.deepcopy(model)
    batches = None
    if min_agreement is not None:
        from ..data.datasets import sample_batches

        batches = sample_batches(data, model, num_batches=num_batches, batch_size=batch_size, data_config=data_config)
        if example_input is None and report is None:
            example_input = batches[0][:1]
    if report is None:
        report = find_sites(model, example_input)
    sites = list(report)
    apply_rules(sites, kinds=kinds, include=include, exclude=exclude, strict=strict)
    config = {
        "kinds": list(kinds) if kinds is not None and not isinstance(kinds, str) else kinds,
        "include": [include] if isinstance(include, str) else list(include or []),
        "exclude": [exclude] if isinstance(exclude, str) else list(exclude or []),
        "beta": float(beta), "learn_beta": learn or False, "strict": bool(strict),
    }
    untraced = list(getattr(report, "untraced", None) or [])
    if strict:
        hidden = untraced_pooling(model, untraced)
        if hidden:
            raise PoolswapError(f"strict: {hidden[0]} could not be traced and its code calls a pooling function, "
                                f"so its pools cannot be swapped ({len(hidden)} such part(s)); make it traceable, "
                                "or convert without --strict")
    if min_agreement is not None:
        from .target import convert_for_agreement

        config["min_agreement"] = float(min_agreement)
        return convert_for_agreement(model, sites, batches, min_agreement=min_agreement, beta=beta, learn_beta=learn,
                                     config=config, untraced=untraced)
    model = convert_sites(model, sites, beta=beta, learn_beta=learn, config=config, untraced=untraced)
    swapped = sum(s.action == "swap" for s in sites)
    logger.info("swapped %d of %d pooling sites", swapped, len(sites))
    if not swapped:
        warnings.warn(NOTHING_SWAPPED.format(found=len(sites)), UserWarning, stacklevel=2)
    return model


#: What convert says when it swaps nothing (a warning from Python; the CLI refuses and writes nothing).
NOTHING_SWAPPED = ("poolswap: convert swapped no pooling site ({found} found; see `poolswap inspect`): the result computes "
                   "exactly what the original does")


def check_model(model: Any, what: str) -> None:
    """A one-line :class:`PoolswapTypeError` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise PoolswapTypeError(f"{what} needs a torch.nn.Module, got {type(model).__name__}; build one with "
                                "poolswap.create_model('timm:NAME') or load one with poolswap.load(PATH)")


def _check_target(min_agreement: Any) -> None:
    from ..options import check_agreement

    check_agreement("min_agreement", min_agreement)
