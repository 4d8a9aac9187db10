"""Checkpoints: users' input checkpoints, and poolswap's converted-model file.

Input: ``.pth`` / ``.pth.tar`` / ``.pt`` / ``.bin`` (a state_dict, or a dict
holding one under ``state_dict``, ``model`` or ``state_dict_ema``), always read
with ``weights_only=True``, or ``.safetensors``.

Converted model: one ``.safetensors`` file holding the state_dict, its header
metadata carrying a JSON document ``{"format", "spec", "manifest"}`` (the
architecture spec and the swap manifest). It is written atomically;
:func:`load` rebuilds the model from the spec in a fresh process, swaps the
same sites, restores each site's temperature and loads the weights strictly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from .._atomic import atomic_path
from .._torch_files import load_weights_only
from ..errors import PoolswapError, first_line
from .manifest import MANIFEST_ATTR, manifest as current_manifest
from .model_spec import ModelSpec, parse_spec, spec_of

__all__ = ["build_from_checkpoint", "load_state_dict_file", "check_fit", "load_weights", "save", "load", "read_header", "FILE_FORMAT"]

FILE_FORMAT = "poolswap.model/1"
_META_KEY = "poolswap"
_PREFIXES = ("module.", "_orig_mod.")


def load_state_dict_file(path: Union[str, os.PathLike], *, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint file (safetensors or torch, read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            data: Any = load_file(str(path))
        except Exception as exc:
            raise PoolswapError(f"cannot read {path} as safetensors: {first_line(exc)}") from exc
    else:
        data = load_weights_only(path, "a weights-only torch checkpoint")
    if isinstance(data, Mapping):
        keys = ("state_dict_ema", "state_dict", "model") if use_ema else ("state_dict", "model", "state_dict_ema")
        for key in keys:
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise PoolswapError(f"{path} holds no state_dict (expected tensors by name, or one under 'state_dict'/'model'/'state_dict_ema')")
    out = {}
    for k, v in data.items():
        for prefix in _PREFIXES:
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def check_fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "the checkpoint") -> None:
    """Raise a one-line error naming the first missing / unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    raise PoolswapError(f"{what} does not fit the model: {'; '.join(parts)}")


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "the checkpoint") -> nn.Module:
    check_fit(model, state_dict, what)
    model.load_state_dict(dict(state_dict), strict=True)
    return model


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
    header = {"format": FILE_FORMAT, "spec": resolved.to_dict(), "manifest": current_manifest(model)}
    tensors = _state_for_safetensors(model)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(header)})
    return path


def read_header(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """The spec and manifest of a file written by :func:`save`, without reading the weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise PoolswapError(f"{path} is not a safetensors file: {first_line(exc)}") from exc
    if _META_KEY not in meta:
        raise PoolswapError(f"{path} is not a poolswap model file (no '{_META_KEY}' header); convert a model first")
    header = json.loads(meta[_META_KEY])
    if header.get("format") != FILE_FORMAT:
        raise PoolswapError(f"{path} has format {header.get('format')!r}; this poolswap reads {FILE_FORMAT!r}")
    return header


def load(path: Union[str, os.PathLike]) -> nn.Module:
    """Rebuild a model written by :func:`save`: architecture, swapped sites, temperatures, weights."""
    from safetensors.torch import load_file

    from .swap import apply_manifest

    header = read_header(path)
    model = ModelSpec.from_dict(header["spec"]).build()
    if header.get("manifest"):
        model = apply_manifest(model, header["manifest"])
    load_weights(model, load_file(str(path)), what=str(path))
    if header.get("manifest"):
        _restore_betas(model, header["manifest"])
        setattr(model, MANIFEST_ATTR, header["manifest"])
    model.eval()
    return model


def _restore_betas(model: nn.Module, data: Mapping[str, Any]) -> None:
    for entry in data["sites"]:
        if entry.get("action") != "swap" or entry.get("learn_beta"):
            continue
        module = model.get_submodule(entry["name"])
        if entry.get("beta") is not None and hasattr(module, "initial_beta"):
            module.initial_beta = float(entry["beta"])


def build_from_checkpoint(
    spec: Union[str, ModelSpec],
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    *,
    num_classes: Optional[int] = None,
    model_kwargs: Optional[Mapping[str, Any]] = None,
    use_ema: bool = False,
) -> nn.Module:
    """Build ``spec`` and load ``checkpoint`` into it, reading num_classes / in_chans off the checkpoint."""
    from .model_spec import infer_kwargs

    resolved = parse_spec(spec, model_kwargs)
    if num_classes is not None:
        resolved = resolved.with_kwargs(num_classes=int(num_classes))
    state = load_state_dict_file(checkpoint, use_ema=use_ema) if checkpoint is not None else None
    if state is not None:
        inferred = infer_kwargs(resolved, state)
        if inferred:
            resolved = resolved.with_kwargs(**inferred)
    model = resolved.build()
    if state is not None:
        load_weights(model, state, what=f"checkpoint {Path(checkpoint).name}")
    model.eval()
    return model
