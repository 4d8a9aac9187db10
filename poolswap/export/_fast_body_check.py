"""Where the ``fast`` SoftPool body would give NaN: windows far below their channel's maximum at a large beta.

The fast body computes ``exp(beta * (x - m))`` with ``m`` the channel's maximum; where a
window's own maximum lies more than about ``80 / beta`` below ``m``, every term of the
window underflows in float32 and the window is ``0 / 0 = NaN``. A calibrated beta of 100
or more puts that bound under one unit of activation, which real activations exceed.
This check measures it on the export's example input, site by site.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._frozen import FrozenSoftPool

__all__ = ["UNDERFLOW_GAP", "fast_body_underflow"]

#: ``beta * (channel max - window max)`` beyond which the fast body's float32 ``exp`` underflows (about 80).
UNDERFLOW_GAP = 80.0

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _windows_below(module: FrozenSoftPool, x: torch.Tensor) -> tuple[int, int]:
    """(windows of ``x`` the fast body turns NaN at ``module``'s beta, all windows)."""
    n = module.ndim
    if x.dim() != n + 2 or not x.is_floating_point() or x.numel() == 0:
        return 0, 0
    x = x.detach().float()
    window_max = _MAX_POOL[n](x, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode)
    channel_max = x.flatten(2).amax(-1).reshape(*x.shape[:2], *([1] * n))
    betas = torch.tensor(module.betas or [module.beta], dtype=torch.float32).reshape(1, -1, *([1] * n))
    far = (channel_max - window_max) * betas > UNDERFLOW_GAP
    return int(far.sum()), far.numel()


def fast_body_underflow(frozen: nn.Module, example_input: Any) -> list[str]:
    """Each SoftPool site of ``frozen`` where the fast body gives NaN on ``example_input``, as ``name (beta B):
    K of N windows``; runs the model once."""
    found: list[str] = []
    handles = []

    def hook(name: str, module: FrozenSoftPool):
        def record(_module: nn.Module, args: tuple) -> None:
            bad, total = _windows_below(module, args[0])
            if bad:
                beta = f"{module.beta:g}" if not module.betas else f"up to {max(module.betas):g}"
                found.append(f"{name or 'the model'} (beta {beta}): {bad} of {total} windows")
        return record

    for name, module in frozen.named_modules():
        if isinstance(module, FrozenSoftPool):
            handles.append(module.register_forward_pre_hook(hook(name, module)))
    try:
        with torch.no_grad():
            frozen(example_input)
    finally:
        for h in handles:
            h.remove()
    return found
