"""Find and swap: locate a model's pooling sites and replace them by SoftPool.

* :func:`inspect` lists the sites (a :class:`Report`, a list of :class:`Site`);
* :func:`convert` swaps the selected ones and returns the converted model, which
  carries its swap manifest (:func:`manifest`); :func:`apply_manifest` swaps the
  sites a manifest lists;
* :func:`save` / :func:`load`: the converted model as one safetensors file with its spec and
  swap manifest (:func:`load` rebuilds it with :func:`apply_manifest`); :func:`load_model`
  takes either such a file or a spec.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from .file import FILE_FORMAT, load, load_model, read_header, save
from .find import default_example_input, find_sites
from .manifest import MANIFEST_ATTR, manifest, manifest_fixed_betas
from .report import Report
from .sensitivity import SiteSensitivity, sensitivity
from .sites import KINDS, Site
from .swap import apply_manifest, check_model, convert

__all__ = [
    "FILE_FORMAT",
    "KINDS",
    "MANIFEST_ATTR",
    "Report",
    "Site",
    "SiteSensitivity",
    "apply_manifest",
    "convert",
    "default_example_input",
    "find_sites",
    "inspect",
    "load",
    "load_model",
    "manifest",
    "manifest_fixed_betas",
    "read_header",
    "save",
    "sensitivity",
]


def inspect(model: nn.Module, example_input: Any = None, *, data: Any = None, beta: float = 1.0,
            num_batches: int = 8, batch_size: int = 32, data_config: Optional[dict] = None) -> Report:
    """Every pooling site of ``model``: kind, geometry, role, default action and reason, how it was found.

    ``example_input`` (a tensor, or a tuple of forward arguments) measures each site's
    shapes; by default one of the model's usual size is made up (timm's pretrained_cfg,
    224x224 otherwise). The result is a list of :class:`Site` with ``.untraced`` (code
    that could not be looked into) and ``.table()`` / ``.to_dict()``.

    With ``data`` (an image folder, a Dataset, a tensor of images or batches), each
    site convert would swap is also measured (``report.sensitivity``): top-1
    agreement with the original when that site alone is swapped at ``beta``, and
    the beta calibration picks for it (see :func:`sensitivity`).
    """
    check_model(model, "inspect")
    if data is None:
        return find_sites(model, example_input)
    return sensitivity(model, data, beta=beta, example_input=example_input, num_batches=num_batches,
                       batch_size=batch_size, data_config=data_config)
