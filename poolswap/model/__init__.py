"""Models in and out: architecture specs, users' checkpoints, and the converted-model file.

* :func:`create_model` / :func:`parse_spec`: ``timm:NAME``, ``torchvision:NAME`` or
  ``package.module:factory`` specs (:class:`ModelSpec`), built without pretrained weights;
* :func:`build_from_checkpoint`: a spec with a user's checkpoint (``num_classes`` and
  ``in_chans`` read off it), always read with ``weights_only=True``;
* :func:`save` / :func:`load`: the converted model as one safetensors file with its spec and
  swap manifest; :func:`load_model` takes either such a file or a spec;
* :func:`check_file_spec`: what a file's spec may name (no code poolswap did not ship, unless
  the caller trusts the module: ``trust_module=``).
"""

from .checkpoint import build_from_checkpoint, load_state_dict_file, load_weights
from .file import FILE_FORMAT, load, load_model, read_header, save
from .safe_load import load_weights_only
from .spec import ModelSpec, create_model, infer_kwargs, parse_spec, spec_of
from .trust import check_file_spec, trusted_modules

__all__ = [
    "FILE_FORMAT",
    "ModelSpec",
    "build_from_checkpoint",
    "check_file_spec",
    "create_model",
    "infer_kwargs",
    "load",
    "load_model",
    "load_state_dict_file",
    "load_weights",
    "load_weights_only",
    "parse_spec",
    "read_header",
    "save",
    "spec_of",
    "trusted_modules",
]
