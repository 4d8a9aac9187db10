"""Find every pooling site of a model: the ``inspect`` pass.

1. Trace the model with :class:`~.tracer.PoolTracer` in eval mode; modules that
   graph never reaches (auxiliary heads pool in training only) have their own code
   traced in train mode, one by one. Sub-modules that cannot be traced
   become leaves; every leaf that is not a plain torch.nn layer (timm's
   no-trace modules, torchvision's ops, the forced leaves) is traced on its own
   in turn, so pools hidden in leaves are found too ("fx-leaf-children"). A
   module whose own code cannot be traced at all is reported as not looked into.
2. Module sites are the pool modules the graphs call; function and method
   sites are pooling calls in a module's own ``forward`` code (its "owner"),
   named by the owner's own shallow trace: ``<owner>.<fx node name>``.
3. Pool modules no graph reaches are found in the module tree ("eager-module").
4. One eager forward with an example input measures each site's shapes.
"""

from __future__ import annotations

import inspect as _inspect
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import first_line
from .patterns import PoolCall, classify_module, classify_node
from .report import Report
from .roles import assign_role
from .rules import default_decision
from .sites import Site
from .tracer import is_builtin_leaf, trace, trace_shallow, train_mode

__all__ = ["find_sites", "default_example_input", "OwnerGraphs"]

logger = logging.getLogger(__name__)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else (prefix or name)


@dataclass
class OwnerGraphs:
    """A module whose own forward code holds function or method sites."""

    path: str
    eval_gm: Optional[fx.GraphModule]
    train_gm: Optional[fx.GraphModule]
    error: str = ""
    same_in_both_modes: bool = True
    args: Optional[tuple] = None


@dataclass
class _State:
    model: nn.Module
    explored: set = field(default_factory=set)
    reached: set = field(default_factory=set)
    untraced: list = field(default_factory=list)
    leaf_fallbacks: list = field(default_factory=list)
    # module path -> (mechanism, seen in eval graph)
    module_hits: dict = field(default_factory=dict)
    # owner path -> (mechanism, seen in eval graph)
    owner_hits: dict = field(default_factory=dict)


def _is_candidate(node: fx.Node) -> bool:
    if node.op not in ("call_function", "call_method"):
        return False
    if classify_node(node) is not None:
        return True
    target = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    return target in ("mean", "amax") and len(node.args) + len(node.kwargs) >= 2


def _innermost_owner(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    return list(stack.values())[-1][0]


def _explore(state: _State, module: nn.Module, prefix: str, mechanism: str) -> None:
    """Trace ``module`` (eval mode) and record its sites; recurse into leaves that may hide pools."""
    if prefix in state.explored:
        return
    state.explored.add(prefix)
    state.reached.add(prefix)
    res = trace(module, training=False)
    if res.graph is None:
        state.untraced.append({"path": prefix, "error": res.error})
        for name, child in module.named_children():
            if not is_builtin_leaf(child):
                _explore(state, child, _join(prefix, name), "fx-leaf-children")
        return
    state.leaf_fallbacks.extend(_join(prefix, p) for p in res.forced_leaves)
    for node in res.graph.nodes:
        for qual, _ in (node.meta.get("nn_module_stack") or {}).values():
            state.reached.add(_join(prefix, qual))
        if node.op == "call_module":
            path = _join(prefix, node.target)
            state.reached.add(path)
            try:
                sub = module.get_submodule(node.target)
            except AttributeError:
                continue
            if classify_module(sub) is not None:
                state.module_hits.setdefault(path, (mechanism, True))
            elif not is_builtin_leaf(sub):
                _explore(state, sub, path, "fx-leaf-children")
        elif _is_candidate(node):
            owner = _join(prefix, _innermost_owner(node))
            state.owner_hits.setdefault(owner, (mechanism, True))


def _explore_unreached(state: _State, model: nn.Module) -> None:
    """Modules the eval-mode graphs never call (auxiliary heads run in training only, unused
    modules): their own code is traced in train mode, one module at a time."""
    reached = set(state.reached)
    for path in list(reached):
        parts = path.split(".") if path else []
        for i in range(len(parts)):
            reached.add(".".join(parts[:i]))
    for path, module in model.named_modules():
        if path in reached or is_builtin_leaf(module) or isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        gm, _ = trace_shallow(module, training=True)
        if gm is None:
            continue
        if any(_is_candidate(n) for n in gm.graph.nodes):
            state.owner_hits.setdefault(path, ("fx-leaf-children", False))


def default_example_input(model: nn.Module) -> Optional[torch.Tensor]:
    """A (1, C, H, W) input from timm's pretrained_cfg, or torchvision's usual 224 (299 for Inception v3)."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    size = None
    if isinstance(cfg, dict) and cfg.get("input_size"):
        size = tuple(int(s) for s in cfg["input_size"])
    if size is None:
        channels = 3
        for m in model.modules():
            if isinstance(m, (nn.Conv2d,)):
                channels = m.in_channels
                break
            if isinstance(m, (nn.Conv1d, nn.Conv3d, nn.Linear)):
                return None
        hw = 299 if type(model).__name__ == "Inception3" else 224
        size = (channels, hw, hw)
    try:
        dtype = next(model.parameters()).dtype
        device = next(model.parameters()).device
    except StopIteration:
        dtype, device = torch.float32, torch.device("cpu")
    return torch.randn((1, *size), dtype=dtype, device=device)


def _bind_args(gm: fx.GraphModule, owner: nn.Module, args: tuple, kwargs: dict) -> tuple:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    try:
        bound = _inspect.signature(owner.forward).bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
    except TypeError:
        values = {p.target: a for p, a in zip(placeholders, args)}
    out = []
    for p in placeholders:
        name = str(p.target).lstrip("*")
        if name in values:
            out.append(values[name])
        else:  # a concrete (specialised) argument: fx's placeholder default, or the forward's default
            out.append(p.args[0] if p.args else None)
    return tuple(out)


def _eager_shapes(model: nn.Module, example_input: Any, module_paths: list[str], owners: dict[str, OwnerGraphs]
                  ) -> tuple[dict[str, tuple], str]:
    shapes: dict[str, tuple] = {}
    handles = []

    def pool_hook(path):
        def hook(mod, inputs, output):
            if path not in shapes and inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[path] = (tuple(inputs[0].shape), tuple(output.shape))
        return hook

    def owner_hook(path):
        def hook(mod, args, kwargs):
            if owners[path].args is None:
                owners[path].args = (args, kwargs)
        return hook

    for path in module_paths:
        handles.append(model.get_submodule(path).register_forward_hook(pool_hook(path)))
    for path in owners:
        handles.append(model.get_submodule(path).register_forward_pre_hook(owner_hook(path), with_kwargs=True))
    error = ""
    try:
        with torch.no_grad(), train_mode(model, False):
            inputs = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
            model(*inputs)
    except Exception as exc:
        cause = first_line(exc) if str(exc).strip() else ""
        error = f"the example input did not run through the model ({type(exc).__name__}: {cause}); shapes unknown"
    finally:
        for h in handles:
            h.remove()
    return shapes, error


def _out_channels(m: nn.Module) -> Optional[int]:
    for sub in reversed(list(m.modules())):
        for attr in ("out_channels", "num_features", "num_channels"):
            if isinstance(getattr(sub, attr, None), int):
                return getattr(sub, attr)
    return None


def _in_channels(m: nn.Module) -> Optional[int]:
    for sub in m.modules():
        for attr in ("in_channels", "num_features", "num_channels"):
            if isinstance(getattr(sub, attr, None), int):
                return getattr(sub, attr)
    return None


def _channels_near(node: fx.Node, gm: Optional[fx.GraphModule]) -> Optional[int]:
    """Channels of a pool's input from the module that produces (or consumes) it."""
    if gm is None:
        return None
    cur = node.args[0] if node.args else None
    for _ in range(12):
        if not isinstance(cur, fx.Node):
            break
        if cur.op == "call_module":
            found = _out_channels(gm.get_submodule(cur.target))
            if found:
                return found
        if cur.op == "placeholder" or not cur.args:
            break
        cur = cur.args[0]
    for user in node.users:
        if user.op == "call_module":
            found = _in_channels(gm.get_submodule(user.target))
            if found:
                return found
    return None


def _pads_at(site: Site) -> bool:
    """Whether a 'same' pool pads at the measured input size."""
    from ..ops import same_padding_plan

    g = site.geometry
    spatial = site.input_shape[-site.ndim:]
    plans = [same_padding_plan(s, k, st, d) for s, k, st, d in zip(spatial, g["kernel_size"], g["stride"], g["dilation"])]
    return any(p or c or drop for p, c, drop in plans)


def _site_from_call(name: str, call: PoolCall, source: str, mechanism: str) -> Site:
    return Site(name=name, kind=call.kind, source=source, op=call.op, ndim=call.ndim, geometry=dict(call.geometry),
                mechanism=mechanism, blocked=call.blocked, warnings=list(call.warnings))


def _unique_attr(owner: nn.Module, base: str, taken: set) -> str:
    name = base
    i = 0
    while hasattr(owner, name) or name in taken:
        i += 1
        name = f"{base}_softpool" if i == 1 else f"{base}_softpool{i}"
    taken.add(name)
    return name


def _trace_owners(state: _State, model: nn.Module) -> dict[str, OwnerGraphs]:
    """Each owner of function or method sites, traced alone in eval and in train mode."""
    owners: dict[str, OwnerGraphs] = {}
    for path in state.owner_hits:
        owner = model.get_submodule(path) if path else model
        eval_gm, err = trace_shallow(owner, training=False)
        train_gm, _ = trace_shallow(owner, training=True)
        same = eval_gm is not None and train_gm is not None and eval_gm.code == train_gm.code
        owners[path] = OwnerGraphs(path, eval_gm, train_gm, err, same)
    return owners


def _module_sites(state: _State, model: nn.Module, eager_only: list[str], shapes: dict[str, tuple]) -> list[Site]:
    """Pool modules the graphs call, then those only the module tree shows; with their measured shapes."""
    sites: list[Site] = []
    for path, (mech, in_eval) in state.module_hits.items():
        site = _site_from_call(path, classify_module(model.get_submodule(path)), "module", mech)
        site.train_only = not in_eval
        sites.append(site)
    for path in eager_only:
        site = _site_from_call(path, classify_module(model.get_submodule(path)), "module", "eager-module")
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        site.train_only = parent not in state.reached and bool(parent)
        sites.append(site)
    for site in sites:
        if site.name in shapes:
            site.input_shape, site.output_shape = shapes[site.name]
            if len(site.input_shape) == site.ndim + 2:
                site.num_channels = site.input_shape[1]
            if site.geometry.get("same") and not _pads_at(site):
                site.warnings = [w for w in site.warnings if "count_include_pad" not in w]
    return sites


def _propagate_shapes(og: OwnerGraphs, owner: nn.Module) -> None:
    """Shapes on the owner's own graph, from the arguments it got in the eager forward (a nicety)."""
    if og.args is None:
        return
    try:
        with torch.no_grad(), train_mode(og.eval_gm, False):
            ShapeProp(og.eval_gm).propagate(*_bind_args(og.eval_gm, owner, *og.args))
    except Exception as exc:  # the site is still reported, without shapes
        logger.debug("shape propagation of %s failed: %s", og.path, exc)


def _function_site(node: fx.Node, call: PoolCall, og: OwnerGraphs, owner: nn.Module, attr: str, mechanism: str,
                   train_only: bool) -> Site:
    site = _site_from_call(_join(og.path, attr), call, "method" if node.op == "call_method" else "function", mechanism)
    site.owner, site.node = og.path, node.name
    site.train_only = train_only
    if not og.same_in_both_modes and not site.blocked:
        site.blocked = (f"the forward of {og.path or 'the model'} differs between train and eval mode; "
                        "it cannot be rewritten as one graph")
    meta_in = node.args[0].meta.get("tensor_meta") if node.args and isinstance(node.args[0], fx.Node) else None
    meta_out = node.meta.get("tensor_meta")
    if meta_in is not None and hasattr(meta_in, "shape"):
        site.input_shape = tuple(meta_in.shape)
        if len(site.input_shape) >= 2:
            site.num_channels = site.input_shape[1]
    if meta_out is not None and hasattr(meta_out, "shape"):
        site.output_shape = tuple(meta_out.shape)
    if site.num_channels is None:
        site.num_channels = _channels_near(node, og.eval_gm)
    return site


def _function_sites(state: _State, model: nn.Module, owners: dict[str, OwnerGraphs]) -> list[Site]:
    """Pooling calls in each owner's own forward code, named ``<owner>.<fx node name>``."""
    sites: list[Site] = []
    for path, og in owners.items():
        mech, in_eval = state.owner_hits[path]
        owner = model.get_submodule(path) if path else model
        gm = og.eval_gm
        if gm is None:
            state.untraced.append({"path": path, "error": f"its own forward cannot be traced alone: {og.error}"})
            continue
        _propagate_shapes(og, owner)
        taken: set = set()
        eval_names = {n.name for n in gm.graph.nodes}
        nodes = [(n, False) for n in gm.graph.nodes]
        if not og.same_in_both_modes and og.train_gm is not None:
            nodes += [(n, True) for n in og.train_gm.graph.nodes if n.name not in eval_names]
        for node, train_extra in nodes:
            call = classify_node(node)
            if call is None:
                continue
            attr = _unique_attr(owner, node.name, taken)
            sites.append(_function_site(node, call, og, owner, attr, mech, train_extra or not in_eval))
    return sites


def _decide(sites: list[Site], model: nn.Module, input_shape: Optional[tuple]) -> None:
    """Roles, in execution order when shapes are known (the first local pool may be the stem), and defaults."""
    image = input_shape[2:] if input_shape and len(input_shape) >= 3 else None
    first_local = True
    for site in sites:
        site.role = assign_role(site, model, image, first_local and site.kind in ("max", "avg"))
        if site.kind in ("max", "avg") and not site.train_only:
            first_local = False
        site.action, site.reason, _ = default_decision(site)


#: Pooling calls in Python source: F.max_pool2d, torch.avg_pool1d, adaptive_avg_pool3d, x.max_pool2d(...)
_POOL_CALL = re.compile(r"\b(?:adaptive_)?(?:max|avg|lp)_pool[123]d\s*\(")


def untraced_pooling(model: nn.Module, untraced: list) -> list[str]:
    """The paths of parts the tracer could not follow whose own ``forward`` calls a pooling function.

    Their pools are invisible to surgery (module pools inside them are still found).
    Read from the source, so a pool reached through a helper function defined
    elsewhere is not seen: this is a check for ``strict``, not a finder.
    """
    hidden = []
    for entry in untraced:
        path = entry.get("path", "") if isinstance(entry, dict) else str(entry)
        try:
            module = model.get_submodule(path) if path else model
            source = _inspect.getsource(type(module).forward)
        except (AttributeError, OSError, TypeError):
            continue
        if _POOL_CALL.search(source):
            hidden.append(path or "the model")
    return hidden


def find_sites(model: nn.Module, example_input: Any = None, *, measure: bool = True) -> Report:
    """Every pooling site of ``model``, with kind, geometry, role, default action, mechanism."""
    state = _State(model)
    _explore(state, model, "", "fx-graph")
    _explore_unreached(state, model)
    owners = _trace_owners(state, model)
    eager_only = [p for p, m in model.named_modules() if p not in state.module_hits and classify_module(m) is not None]

    notes: list[str] = []
    if example_input is None and measure:
        example_input = default_example_input(model)
    shapes: dict[str, tuple] = {}
    if example_input is not None and measure:
        shapes, error = _eager_shapes(model, example_input, list(state.module_hits) + eager_only, owners)
        if error:
            notes.append(error)
    input_shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else None

    sites = _module_sites(state, model, eager_only, shapes) + _function_sites(state, model, owners)
    _decide(sites, model, input_shape)
    return Report(sites, untraced=state.untraced, leaf_fallbacks=state.leaf_fallbacks, input_shape=input_shape, notes=notes)
