"""The converted-model file: one ``.safetensors`` holding the state_dict, and in its header
a JSON document ``{"format", "spec", "manifest"}`` (architecture spec and swap manifest).

:func:`save` writes it atomically; :func:`load` rebuilds the model from the spec in a
fresh process, swaps the same sites, restores each site's temperature and loads the
weights strictly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from .._atomic import atomic_path
from ..errors import PoolswapError, first_line
from ..model.checkpoint import build_from_checkpoint, load_weights
from ..model.file_kind import describe_kind, file_kind, folder_hint
from ..model.spec import ModelSpec, parse_spec, spec_of
from ..ops import restore_fixed_betas
from .manifest import MANIFEST_ATTR, manifest, manifest_fixed_betas
from .swap import apply_manifest

__all__ = ["FILE_FORMAT", "load", "load_model", "read_header", "save"]

FILE_FORMAT = "poolswap.model/1"
_META_KEY = "poolswap"
CONVERT_HINT = "make one with `poolswap convert SPEC --checkpoint CHECKPOINT -o MODEL.safetensors`"


def _state_for_safetensors(model: nn.Module) -> dict[str, torch.Tensor]:
    seen: dict[tuple, str] = {}
    out = {}
    for k, v in model.state_dict().items():
        t = v.detach().cpu()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype) if t.numel() else None
        if key is not None and key in seen or not t.is_contiguous() or t.storage_offset() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone().contiguous()
        if key is not None:
            seen.setdefault(key, k)
        out[k] = t
    return out


def save(model: nn.Module, path: Union[str, os.PathLike], *, spec: Union[str, ModelSpec, Mapping, None] = None) -> Path:
    """Write a (converted) model: state_dict in safetensors, spec and swap manifest as JSON in its header."""
    from safetensors.torch import save_file

    path = Path(path)
    resolved = parse_spec(spec) if spec is not None else spec_of(model)
    if resolved is None:
        raise PoolswapError("save needs the model's architecture: pass spec='timm:NAME', 'torchvision:NAME' or 'package.module:factory'")
    header = {"format": FILE_FORMAT, "spec": resolved.to_dict(), "manifest": manifest(model)}
    tensors = _state_for_safetensors(model)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(header)})
    return path


def read_header(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """The spec and manifest of a file written by :func:`save`, without reading the weights."""
    from safetensors import safe_open

    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise FileNotFoundError(f"no checkpoint at {path}")
    if kind != "safetensors":
        hint = folder_hint(path, (".safetensors",)) if kind == "directory" else ""
        raise PoolswapError(f"{path} is {describe_kind(kind)}, not a poolswap model file{hint}; {CONVERT_HINT}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise PoolswapError(f"{path} is not a readable safetensors file: {first_line(exc)}") from exc
    if _META_KEY not in meta:
        raise PoolswapError(f"{path} is a plain safetensors file, not a poolswap model file (no '{_META_KEY}' "
                            f"header); {CONVERT_HINT}")
    header = json.loads(meta[_META_KEY])
    if header.get("format") != FILE_FORMAT:
        raise PoolswapError(f"{path} has format {header.get('format')!r}; this poolswap reads {FILE_FORMAT!r}")
    return header


def load(path: Union[str, os.PathLike]) -> nn.Module:
    """Rebuild a model written by :func:`save`: architecture, swapped sites, temperatures, weights."""
    from safetensors.torch import load_file

    header = read_header(path)
    model = ModelSpec.from_dict(header["spec"]).build()
    if header.get("manifest"):
        model = apply_manifest(model, header["manifest"])
    load_weights(model, load_file(str(path)), what=str(path))
    if header.get("manifest"):
        restore_fixed_betas(model, manifest_fixed_betas(header["manifest"]))
        setattr(model, MANIFEST_ATTR, header["manifest"])
    model.eval()
    return model




def load_model(source: Union[str, os.PathLike], weights: Optional[Union[str, os.PathLike]] = None) -> nn.Module:
    """A model file written by :func:`save`, or a spec (``timm:NAME``, ...) with optional weights (eval mode)."""
    text = str(source)
    if os.path.exists(text):
        if weights:
            raise PoolswapError(f"{text} is a model file; weights apply to a spec such as torchvision:NAME")
        return load(text)
    if ":" in text and not text.startswith((".", "/")):
        return build_from_checkpoint(text, weights)
    raise PoolswapError(f"{text} does not exist (expected a poolswap model file or a spec such as timm:NAME)")
