"""Functional SoftPool: ``soft_pool1d``, ``soft_pool2d``, ``soft_pool3d``.

Arguments mean what they mean for ``torch.nn.functional.max_pool{1,2,3}d``;
``beta`` is the temperature (a float > 0, or a tensor of one value or one per
channel, e.g. a learnable parameter).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.fx
from torch._subclasses.fake_tensor import is_fake

from ..errors import PoolswapTypeError, PoolswapValueError
from ..kernels import ensure_loaded
from ._geometry import IntOrTuple, PoolGeometry
from ._library import soft_pool_op

__all__ = ["soft_pool1d", "soft_pool2d", "soft_pool3d", "soft_pool"]

Beta = Union[float, torch.Tensor]


_BETA_RULE = "beta must be a finite number > 0 (1.0 is the paper's SoftPool)"


def check_beta(beta: float) -> float:
    """Validate a fixed temperature; returns it as a float."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise PoolswapTypeError(f"beta must be a positive float or a tensor, got {type(beta).__name__}")
    beta = float(beta)
    if not (beta > 0 and math.isfinite(beta)):
        raise PoolswapValueError(f"{_BETA_RULE}, got {beta}")
    return beta


def _holds_values(t: torch.Tensor) -> bool:
    """Whether ``t`` has data to look at now: not a proxy, fake or meta tensor, nor one being traced or compiled.

    A check of a tensor's values must leave fx tracing, ``torch.compile`` and
    ``torch.export`` alone: each of those sees no values (or would record the check).
    """
    if not isinstance(t, torch.Tensor) or isinstance(t, torch.fx.Proxy) or t.device.type == "meta":
        return False
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._functorch.is_functorch_wrapped_tensor(t):
        return False
    return not is_fake(t)


def check_beta_values(beta: torch.Tensor) -> None:
    """The rule of a float beta for every value of a tensor beta: finite and > 0.

    One reduction (min and max: NaN propagates into both) and, on a GPU, one
    device sync; skipped while tracing or compiling (the values are not known then).
    """
    if not _holds_values(beta) or beta.numel() == 0:
        return
    low, high = beta.detach().aminmax()
    if float(low) > 0 and float(high) < math.inf:
        return
    values = beta.detach().reshape(-1)
    bad = values[~(torch.isfinite(values) & (values > 0))]
    where = "" if beta.numel() == 1 else f" ({bad.numel()} of {beta.numel()} values)"
    raise PoolswapValueError(f"{_BETA_RULE}, got {bad[0].item()}{where}")


def _split_beta(beta: Beta, channels: Optional[int], check_values: bool = True) -> tuple[float, Optional[torch.Tensor]]:
    """A float beta goes to the op as a float; a tensor beta (one value or one per channel) as a tensor."""
    if not isinstance(beta, (torch.Tensor, torch.fx.Proxy)):
        return check_beta(beta), None
    if channels is not None:
        if not beta.is_floating_point():
            raise PoolswapTypeError(f"a beta tensor must be floating point, got {beta.dtype}")
        if beta.dim() > 1 or beta.numel() not in (1, channels):
            raise PoolswapValueError(
                f"beta must hold one value or one per channel ({channels}), got shape {tuple(beta.shape)}"
            )
    if check_values:
        check_beta_values(beta)
    return 1.0, beta


def soft_pool(
    input: torch.Tensor,
    ndim: int,
    kernel_size: IntOrTuple,
    stride: Optional[IntOrTuple] = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    beta: Beta = 1.0,
    *,
    validate_beta: bool = True,
) -> torch.Tensor:
    """SoftPool over ``ndim`` spatial dims of a (N, C, *S) or (C, *S) input.

    ``validate_beta=False`` skips the check of a tensor beta's values (one device sync
    on a GPU), for callers whose beta is positive by construction, such as
    ``exp(log_beta)`` of a SoftPool module.
    """
    geometry = PoolGeometry.create(ndim, kernel_size, stride, padding, dilation, ceil_mode)
    ensure_loaded()
    channels = None
    if isinstance(input, torch.Tensor):  # not a torch.fx Proxy: validate now
        geometry.check_input(input)
        channels = input.shape[-ndim - 1]
    beta_value, beta_tensor = _split_beta(beta, channels, validate_beta)
    return soft_pool_op(input, geometry, beta_value, beta_tensor)


def soft_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, beta: Beta = 1.0):
    """1-d SoftPool of a (N, C, L) or (C, L) input."""
    return soft_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, beta)


def soft_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, beta: Beta = 1.0):
    """2-d SoftPool of a (N, C, H, W) or (C, H, W) input."""
    return soft_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, beta)


def soft_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, beta: Beta = 1.0):
    """3-d SoftPool of a (N, C, D, H, W) or (C, D, H, W) input."""
    return soft_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, beta)
