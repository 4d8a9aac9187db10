"""Users' input checkpoints: a state_dict read safely, fitted to the model a spec builds.

``.pth`` / ``.pth.tar`` / ``.pt`` / ``.bin`` (a state_dict, or a dict holding one
under ``state_dict``, ``model`` or ``state_dict_ema``), always read with
``weights_only=True``, or ``.safetensors`` (told apart by content, not by name).
Every tensor must be finite: NaN or inf weights are refused at load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from ..errors import PoolswapError, first_line
from .file_kind import CHECKPOINT_SUFFIXES, describe_kind, file_kind, folder_hint
from .safe_load import load_weights_only
from .spec import ModelSpec, infer_kwargs, parse_spec

__all__ = ["build_from_checkpoint", "check_finite", "load_state_dict_file", "load_weights"]

_PREFIXES = ("module.", "_orig_mod.")


def load_state_dict_file(path: Union[str, os.PathLike], *, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint file (safetensors or torch, read with ``weights_only=True``)."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if kind == "directory":
        raise PoolswapError(
            f"checkpoint {path} is a folder; give the checkpoint file in it "
            f"({', '.join(CHECKPOINT_SUFFIXES)}){folder_hint(path)}"
        )
    if path.suffix == ".safetensors" and kind != "safetensors":
        raise PoolswapError(f"{path} is named .safetensors but is {describe_kind(kind)}")
    if kind == "safetensors":
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


def _dtype_kind(tensor: torch.Tensor) -> str:
    """complex, floating, bool or integer: loading a tensor of another kind into a model's is a misfit."""
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "floating"
    return "bool" if tensor.dtype == torch.bool else "integer"


def _check_fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "the checkpoint") -> None:
    """Raise a one-line error naming the first missing / unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    # a cast across kinds loses values silently (complex drops its imaginary part, bool/int a weight's fraction)
    wrong_kind = [
        f"{k} {str(state_dict[k].dtype).removeprefix('torch.')} vs model {str(v.dtype).removeprefix('torch.')}"
        for k, v in own.items() if k in state_dict and _dtype_kind(state_dict[k]) != _dtype_kind(v)
    ]
    if not (missing or unexpected or mismatched or wrong_kind):
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched),
                         ("dtype mismatch", wrong_kind)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    raise PoolswapError(f"{what} does not fit the model: {'; '.join(parts)}")


def check_finite(state_dict: Mapping[str, torch.Tensor], what: str = "the checkpoint") -> None:
    """Raise a one-line error naming the first tensor holding NaN or inf, and how many values do.

    Weights like that come from a diverged run or a damaged file; a model built on
    them outputs NaN, so poolswap refuses them where they enter, with no opt-out.
    """
    bad_tensors, bad_values, first = 0, 0, None
    for name, tensor in state_dict.items():
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        if tensor.is_floating_point() and tensor.element_size() == 1:
            tensor = tensor.float()  # float8 kinds: torch has no isfinite for them
        if bool(torch.isfinite(tensor).all()):
            continue
        bad_tensors += 1
        bad_values += int((~torch.isfinite(tensor)).sum())
        first = first or name
    if first is not None:
        others = f" (and {bad_tensors - 1} more tensor{'s' if bad_tensors > 2 else ''})" if bad_tensors > 1 else ""
        raise PoolswapError(
            f"{what} holds {bad_values} non-finite (NaN or inf) weight values, first in {first!r}{others}; "
            "it comes from a diverged run or a damaged file: use an earlier checkpoint"
        )


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "the checkpoint") -> nn.Module:
    """Load ``state_dict`` strictly, after one-line errors naming every kind of misfit and non-finite weights."""
    _check_fit(model, state_dict, what)
    check_finite(state_dict, what)
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def build_from_checkpoint(
    spec: Union[str, ModelSpec],
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    *,
    num_classes: Optional[int] = None,
    model_kwargs: Optional[Mapping[str, Any]] = None,
    use_ema: bool = False,
) -> nn.Module:
    """Build ``spec`` and load ``checkpoint`` into it, reading num_classes / in_chans off the checkpoint."""
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
