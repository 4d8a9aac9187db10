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
from ..errors import PoolswapError, PoolswapTypeError, first_line
from ..model.checkpoint import build_from_checkpoint, load_weights
from ..model.file_kind import describe_kind, file_kind, folder_hint
from ..model.spec import SPEC_ATTR, ModelSpec, parse_spec, spec_of
from ..model.trust import TrustArg, check_file_spec
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
    # a file whose spec load would refuse is of no use: say so before writing (a python module needs trust at load)
    check_file_spec(resolved.to_dict(), resolved.name.partition(":")[0] if resolved.source == "python" else None,
                    what=f"cannot save {path}: its spec")
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
    try:
        header = json.loads(meta[_META_KEY])
    except ValueError as exc:
        raise PoolswapError(f"{path} has a damaged poolswap header (not JSON: {first_line(exc)})") from None
    except RecursionError:
        raise PoolswapError(f"{path} has a damaged poolswap header (JSON nested too deeply)") from None
    if not isinstance(header, dict):
        raise PoolswapError(f"{path} has a damaged poolswap header (not a JSON object)")
    if header.get("format") != FILE_FORMAT:
        raise PoolswapError(f"{path} has format {header.get('format')!r}; this poolswap reads {FILE_FORMAT!r}")
    return header


def load(path: Union[str, os.PathLike], *, trust_module: TrustArg = None,
         model: Optional[nn.Module] = None) -> nn.Module:
    """Rebuild a model written by :func:`save`: architecture, swapped sites, temperatures, weights.

    The file's spec builds only what a file may name (see :mod:`poolswap.model.trust`): timm and
    torchvision models, poolswap's own factories, and ``package.module:factory`` specs whose module
    the caller trusts by name (``trust_module="pkg.mod"`` or a list of names). Or pass ``model``,
    the unconverted architecture built by the caller; the file then brings the swap and the weights.
    """
    from safetensors.torch import load_file

    header = read_header(path)
    if model is None:
        model = check_file_spec(header.get("spec"), trust_module, what=str(path)).build()
    elif not isinstance(model, nn.Module):
        raise PoolswapTypeError(f"model must be a torch.nn.Module (the unconverted architecture), "
                                f"got {type(model).__name__}")
    elif spec_of(model) is None:
        try:  # remember the file's spec (for save, and the original in finetune) only where a file may build it
            setattr(model, SPEC_ATTR, check_file_spec(header.get("spec"), trust_module, what=str(path)).to_dict())
        except PoolswapError:
            pass
    manifest_data = header.get("manifest")
    if manifest_data:
        try:
            model = apply_manifest(model, manifest_data)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise PoolswapError(f"{path} has a damaged swap manifest ({type(exc).__name__}: {first_line(exc)})") from None
    load_weights(model, load_file(str(path)), what=str(path))
    if manifest_data:
        try:
            restore_fixed_betas(model, manifest_fixed_betas(manifest_data))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PoolswapError(f"{path} has a damaged swap manifest ({type(exc).__name__}: {first_line(exc)})") from None
        setattr(model, MANIFEST_ATTR, manifest_data)
    model.eval()
    return model


def load_model(source: Union[str, os.PathLike], weights: Optional[Union[str, os.PathLike]] = None, *,
               trust_module: TrustArg = None) -> nn.Module:
    """A model file written by :func:`save` (``trust_module`` as for :func:`load`), or a spec the user
    gave (``timm:NAME``, ...) with optional weights (eval mode)."""
    text = str(source)
    if os.path.exists(text):
        if weights:
            raise PoolswapError(f"{text} is a model file; weights apply to a spec such as torchvision:NAME")
        return load(text, trust_module=trust_module)
    if ":" in text and not text.startswith((".", "/")):
        return build_from_checkpoint(text, weights)
    raise PoolswapError(f"{text} does not exist (expected a poolswap model file or a spec such as timm:NAME)")
