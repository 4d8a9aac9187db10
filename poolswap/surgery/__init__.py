"""Find and swap: locate a model's pooling sites and replace them by SoftPool.

* :func:`inspect` lists the sites (a :class:`Report`, a list of :class:`Site`);
* :func:`convert` swaps the selected ones and returns the converted model, which
  carries its swap manifest (:func:`manifest`); :func:`apply_manifest` swaps the
  sites a manifest lists (``poolswap.load`` rebuilds converted models with it).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .find import default_example_input, find_sites
from .manifest import MANIFEST_ATTR, manifest, manifest_fixed_betas
from .report import Report
from .sites import KINDS, Site
from .swap import apply_manifest, convert

__all__ = [
    "KINDS",
    "MANIFEST_ATTR",
    "Report",
    "Site",
    "apply_manifest",
    "convert",
    "default_example_input",
    "find_sites",
    "inspect",
    "manifest",
    "manifest_fixed_betas",
]


def inspect(model: nn.Module, example_input: Any = None) -> Report:
    """Every pooling site of ``model``: kind, geometry, role, default action and reason, how it was found.

    ``example_input`` (a tensor, or a tuple of forward arguments) measures each site's
    shapes; by default one of the model's usual size is made up (timm's pretrained_cfg,
    224x224 otherwise). The result is a list of :class:`Site` with ``.untraced`` (code
    that could not be looked into) and ``.table()`` / ``.to_dict()``.
    """
    return find_sites(model, example_input)
