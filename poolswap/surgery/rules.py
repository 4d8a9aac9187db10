"""Which sites to swap: the defaults, and the user's kinds / include / exclude rules.

Defaults: local max and avg pools with a kernel > 1 are swapped. Global and
adaptive pools are skipped unless asked for by kind or by name; kernel-1 pools
and pools that cover the whole input only by name; blocked sites (argmax
indices used, token sequences, geometry computed at run time) never.

``include`` and ``exclude`` entries are name globs (``fnmatch``), or a kind
(``global_avg``) or role (``squeeze-excitation``) name. With ``strict``, a rule
that matches no site is an error.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Iterable, Optional, Sequence

from ..errors import PoolswapError
from .sites import KINDS, LOCAL_KINDS, ROLES, Site

__all__ = ["default_decision", "apply_rules", "normalize_kinds"]


def default_decision(site: Site) -> tuple[str, str, str]:
    """(action, reason, soft) where soft says what may override a skip: '', 'kind', 'name' or 'never'."""
    if site.blocked:
        return "skip", site.blocked, "never"
    g = site.geometry
    if site.kind in ("global_max", "global_avg", "adaptive_max", "adaptive_avg"):
        return "skip", f"{site.kind.replace('_', ' ')} pool ({site.role}): swapped only when asked for by kind or name", "kind"
    kernel = g.get("kernel_size") or ()
    stride = g.get("stride") or ()
    if kernel and all(k == 1 for k in kernel):
        if any(s > 1 for s in stride):
            return "skip", "kernel 1 with stride > 1: a subsampling, not a pool", "name"
        return "skip", "kernel 1, stride 1: an identity", "name"
    if _covers_whole_input(site, kernel, stride):
        return ("skip", f"kernel {'x'.join(map(str, kernel))} covers its whole {'x'.join(map(str, site.input_shape[2:]))} "
                        "input: a global pool in effect, swapped only when asked for by name", "name")
    why = f"local {site.kind} pool, kernel {'x'.join(map(str, kernel))}"
    return "swap", why, ""


def _covers_whole_input(site: Site, kernel: Sequence[int], stride: Sequence[int]) -> bool:
    """One window over the whole traced input (s3d's head AvgPool3d((2, 7, 7)) on a 2x7x7 map)."""
    shape = site.input_shape
    if not shape or not kernel or len(shape) != len(kernel) + 2 or not site.output_shape:
        return False
    padding = site.geometry.get("padding") or (0,) * len(kernel)
    dilation = site.geometry.get("dilation") or (1,) * len(kernel)
    # the one window starts at -padding and must reach the input's last position in every dim
    return (all(o == 1 for o in site.output_shape[2:])
            and all((k - 1) * d - p >= n - 1 for k, d, p, n in zip(kernel, dilation, padding, shape[2:])))


def normalize_kinds(kinds: Optional[Iterable[str]]) -> Optional[tuple[str, ...]]:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [k for k in kinds.replace(",", " ").split() if k]
    out = []
    for k in kinds:
        k = k.strip().replace("-", "_")
        if k in ("local",):
            out.extend(LOCAL_KINDS)
        elif k in ("global", "all_global"):
            out.extend(("global_max", "global_avg", "adaptive_max", "adaptive_avg"))
        elif k == "all":
            out.extend(KINDS)
        elif k in KINDS:
            out.append(k)
        else:
            raise PoolswapError(f"unknown pool kind {k!r}; choose from {', '.join(KINDS)} (or local, global, all)")
    return tuple(dict.fromkeys(out))


def _matches(rule: str, site: Site) -> bool:
    if rule in KINDS:
        return site.kind == rule
    if rule in ROLES:
        return site.role == rule
    return fnmatchcase(site.name, rule)


def apply_rules(
    sites: Sequence[Site],
    *,
    kinds: Optional[Iterable[str]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    strict: bool = False,
) -> None:
    """Set each site's ``action`` and ``reason`` in place."""
    kinds_t = normalize_kinds(kinds)
    include_l = [include] if isinstance(include, str) else list(include or [])
    exclude_l = [exclude] if isinstance(exclude, str) else list(exclude or [])
    if strict:
        unmatched = [f"include {r!r}" for r in include_l if not any(_matches(r, s) for s in sites)]
        unmatched += [f"exclude {r!r}" for r in exclude_l if not any(_matches(r, s) for s in sites)]
        unmatched += [f"kind {k!r}" for k in (kinds_t or ()) if not any(s.kind == k for s in sites)]
        if unmatched:
            names = ", ".join(s.name for s in sites[:8]) + (", ..." if len(sites) > 8 else "")
            raise PoolswapError(f"strict: {', '.join(unmatched)} matches no site (sites: {names or 'none'})")
    for site in sites:
        action, reason, soft = default_decision(site)
        hit_ex = next((r for r in exclude_l if _matches(r, site)), None)
        hit_in = next((r for r in include_l if _matches(r, site)), None)
        if soft == "never":
            pass
        elif hit_ex is not None:
            action, reason = "skip", f"excluded by rule {hit_ex!r}"
        elif include_l:
            if hit_in is None:
                action, reason = "skip", "not matched by any include rule"
            elif kinds_t is not None and site.kind not in kinds_t:
                action, reason = "skip", f"kind {site.kind} not among the kinds asked for"
            else:
                action, reason = "swap", f"asked for by include rule {hit_in!r}"
        else:
            wanted = kinds_t if kinds_t is not None else LOCAL_KINDS
            if site.kind not in wanted:
                if soft != "kind":
                    action, reason = "skip", f"kind {site.kind} not among the kinds asked for"
            elif soft == "kind":
                action, reason = "swap", f"{site.kind} asked for by kind"
        site.action, site.reason = action, reason
    if strict:
        _check_includes_swap(sites, include_l)


def _check_includes_swap(sites: Sequence[Site], include: list[str]) -> None:
    """Strict: an include rule whose sites all end up skipped (excluded, wrong kind) contradicts another rule."""
    for rule in include:
        matched = [s for s in sites if _matches(rule, s)]
        if matched and not any(s.action == "swap" for s in matched):
            raise PoolswapError(f"strict: include {rule!r} swaps nothing: {matched[0].name} is skipped "
                                f"({matched[0].reason}); remove one of the contradicting rules")
