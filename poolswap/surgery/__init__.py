"""Find and swap: locate a model's pooling sites, replace them by SoftPool, save and restore.

* :func:`inspect` lists the sites (a :class:`Report`, a list of :class:`Site`);
* :func:`convert` swaps the selected ones and returns the converted model, which
  carries its swap manifest (:func:`manifest`);
* :func:`save` / :func:`load` write and rebuild a converted model
  (safetensors weights plus a JSON header with its architecture spec and manifest).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .checkpoint import build_from_checkpoint, check_fit, load, load_state_dict_file, load_weights, read_header, save
from .find import default_example_input, find_sites
from .manifest import MANIFEST_ATTR, manifest, softpool_modules
from .model_spec import ModelSpec, create_model, infer_kwargs, parse_spec, spec_of
from .report import Report
from .same_pool import SoftPool2dSame
from .sites import KINDS, Site
from .swap import apply_manifest, convert

__all__ = [
    "KINDS",
    "MANIFEST_ATTR",
    "ModelSpec",
    "Report",
    "Site",
    "SoftPool2dSame",
    "apply_manifest",
    "build_from_checkpoint",
    "check_fit",
    "convert",
    "create_model",
    "default_example_input",
    "infer_kwargs",
    "inspect",
    "load",
    "load_state_dict_file",
    "load_weights",
    "manifest",
    "parse_spec",
    "read_header",
    "save",
    "softpool_modules",
    "spec_of",
]


def inspect(model: nn.Module, example_input: Any = None) -> Report:
    """Every pooling site of ``model``: kind, geometry, role, default action and reason, how it was found.

    ``example_input`` (a tensor, or a tuple of forward arguments) measures each site's
    shapes; by default one of the model's usual size is made up (timm's pretrained_cfg,
    224x224 otherwise). The result is a list of :class:`Site` with ``.untraced`` (code
    that could not be looked into) and ``.table()`` / ``.to_dict()``.
    """
    return find_sites(model, example_input)
