"""Models in: architecture specs and users' checkpoints.

* :func:`create_model` / :func:`parse_spec`: ``timm:NAME``, ``torchvision:NAME`` or
  ``package.module:factory`` specs (:class:`ModelSpec`), built without pretrained weights;
* :func:`build_from_checkpoint`: a spec with a user's checkpoint (``num_classes`` and
  ``in_chans`` read off it), always read with ``weights_only=True``.

The converted-model file (``save``/``load``/``load_model``) carries a swap manifest,
so it lives one stage up, in :mod:`poolswap.surgery`.

* :func:`check_file_spec`: what a file's spec may name (no code poolswap did not ship, unless
  the caller trusts the module: ``trust_module=``).
"""

from .checkpoint import build_from_checkpoint, load_state_dict_file, load_weights
from .safe_load import load_weights_only
from .spec import ModelSpec, create_model, infer_kwargs, parse_spec, spec_of
from .trust import check_file_spec, trusted_modules

__all__ = [
    "ModelSpec",
    "build_from_checkpoint",
    "check_file_spec",
    "create_model",
    "infer_kwargs",
    "load_state_dict_file",
    "load_weights",
    "load_weights_only",
    "parse_spec",
    "spec_of",
    "trusted_modules",
]
