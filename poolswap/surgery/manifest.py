"""The swap manifest: what was swapped, with which geometry and temperature.

A converted model carries it as ``model.poolswap_manifest`` (a JSON-able dict);
:func:`manifest` returns it with every site's current temperature read from its
module (calibration or learning may have changed it). The fine-tune and export
stages read it; ``poolswap.ops.softpool_modules`` gives the swapped modules by site name.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from .sites import Site

__all__ = ["MANIFEST_ATTR", "FORMAT", "build_manifest", "manifest", "manifest_fixed_betas", "site_beta"]

MANIFEST_ATTR = "poolswap_manifest"
FORMAT = "poolswap.manifest/1"


def site_beta(module: nn.Module) -> Any:
    """A module's current temperature as JSON: a float, or a list (per channel)."""
    beta = getattr(module, "beta", None)
    if isinstance(beta, torch.Tensor):
        return beta.detach().cpu().double().tolist()
    return float(beta) if beta is not None else None


def build_manifest(model: nn.Module, sites: list[Site], config: dict, untraced: Optional[list] = None,
                   extra: Optional[dict] = None) -> dict:
    """The manifest of ``model`` converted at ``sites``; ``extra`` adds top-level entries (``agreement``: what
    an accuracy-targeted convert measured) and per-site ones (``extra["site_entries"][name]``)."""
    extra = dict(extra or {})
    site_entries = extra.pop("site_entries", {})
    entries = []
    for site in sites:
        entry = site.to_dict()
        if site.action == "swap":
            module = model.get_submodule(site.name)
            entry["module"] = site.name
            entry["softpool"] = type(module).__name__
            entry["beta"] = site_beta(module)
            entry["learn_beta"] = getattr(module, "learn_beta", None) or False
        entry.update(site_entries.get(site.name, {}))
        entries.append(entry)
    return {"format": FORMAT, "config": dict(config), "sites": entries, "untraced": list(untraced or []), **extra}


def manifest_fixed_betas(data: dict) -> dict[str, float]:
    """The fixed temperature the manifest records for each swapped site (learnt ones live in the weights)."""
    return {e["name"]: float(e["beta"]) for e in data.get("sites", [])
            if e.get("action") == "swap" and not e.get("learn_beta") and isinstance(e.get("beta"), (int, float))}


def manifest(model: nn.Module) -> Optional[dict]:
    """The model's swap manifest, each swapped site's ``beta`` as its module has it now (None if not converted)."""
    data = getattr(model, MANIFEST_ATTR, None)
    if data is None:
        return None
    out = dict(data)
    out["sites"] = []
    for entry in data["sites"]:
        entry = dict(entry)
        if entry.get("action") == "swap":
            module = model.get_submodule(entry["name"])
            entry["beta"] = site_beta(module)
            entry["learn_beta"] = getattr(module, "learn_beta", None) or False
        out["sites"].append(entry)
    return out
