"""Pure-PyTorch SoftPool: the readable statement of the contract and the fallback kernel.

Windows are gathered with ``unfold`` over an input padded with ``-inf`` (an absent
position gets weight exactly 0), so any layout, dtype and device works. It keeps
every rule of ``docs/softpool.md``: per-window max shift, NaN and
``+inf`` propagation, ``-inf`` weight 0, float32 accumulation for half types.
It is memory-hungry (one copy of the input per window element); the fused
kernels replace it where they are built.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import PoolswapValueError
from ._geometry import PoolGeometry

__all__ = ["soft_pool_reference", "soft_pool_backward_reference", "accumulation_dtype", "output_memory_format"]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other floating type accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout SoftPool returns for ``x``: channels-last stays channels-last (as max pooling does).

    The C++ front-ends apply the same rule, so fake and real kernels agree on strides.
    """
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
        return torch.channels_last_3d
    return torch.contiguous_format


def _geometry(kernel_size: Sequence[int], stride, padding, dilation, ceil_mode) -> PoolGeometry:
    return PoolGeometry(tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation), bool(ceil_mode))


def _windows(x: torch.Tensor, geom: PoolGeometry) -> torch.Tensor:
    """(N, C, *S) -> (N, C, *out, K): every window's positions, ``-inf`` where absent."""
    nd = geom.ndim
    spatial = x.shape[2:]
    out = geom.output_size(spatial)
    pads: list[int] = []
    for i in reversed(range(nd)):
        extent = geom.dilation[i] * (geom.kernel_size[i] - 1) + 1
        right = max(0, (out[i] - 1) * geom.stride[i] + extent - spatial[i] - geom.padding[i])
        pads += [geom.padding[i], right]
    win = F.pad(x, pads, value=-math.inf)
    for i in range(nd):
        extent = geom.dilation[i] * (geom.kernel_size[i] - 1) + 1
        win = win.unfold(2 + i, extent, geom.stride[i])[..., :: geom.dilation[i]]
        win = win.narrow(2 + i, 0, out[i])
    # (N, C, *out, k_1..k_nd): the window dims were appended in order.
    return win.flatten(-nd)


def _beta_view(beta: float, beta_tensor: Optional[torch.Tensor], channels: int, nd: int, dtype: torch.dtype, device) -> torch.Tensor | float:
    if beta_tensor is None:
        return beta
    b = beta_tensor.to(device=device, dtype=dtype).reshape(-1)
    if b.numel() == 1:
        return b.reshape(())
    if b.numel() != channels:
        raise PoolswapValueError(f"a per-channel beta needs {channels} values (one per channel), got {b.numel()}")
    return b.reshape((1, channels) + (1,) * (nd + 1))


def _window_softmax(win: torch.Tensor, beta):
    """Shifted weights ``exp(beta*(x-m))`` (NaN/inf-safe), their sum and ``y``."""
    m = win.amax(-1, keepdim=True)
    d = torch.where(win == m, torch.zeros_like(win), win - m)
    e = torch.exp(beta * d)
    s = e.sum(-1, keepdim=True)
    t = torch.where(e == 0, torch.zeros_like(e), e * d).sum(-1, keepdim=True)
    return e, s, m + t / s


def _batched(x: torch.Tensor, nd: int) -> tuple[torch.Tensor, bool]:
    return (x, False) if x.dim() == nd + 2 else (x.unsqueeze(0), True)


def soft_pool_reference(
    x: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
    beta: float = 1.0,
    beta_tensor: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """SoftPool forward of a (N, C, *S) or (C, *S) input; returns the input's dtype."""
    geom = _geometry(kernel_size, stride, padding, dilation, ceil_mode)
    xb, unbatched = _batched(x, geom.ndim)
    acc = accumulation_dtype(x.dtype)
    win = _windows(xb.to(acc), geom)
    b = _beta_view(beta, beta_tensor, xb.shape[1], geom.ndim, acc, x.device)
    _, _, y = _window_softmax(win, b)
    y = y.squeeze(-1)
    if unbatched:
        return y.squeeze(0).to(x.dtype).contiguous()
    out = torch.empty(y.shape, dtype=x.dtype, device=x.device, memory_format=output_memory_format(x))
    return out.copy_(y)


def soft_pool_backward_reference(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
    beta: float = 1.0,
    beta_tensor: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact gradients: ``dy/dx_i = w_i (1 + beta (x_i - y))``, ``dy/dbeta = sum_i w_i (x_i - y)^2``."""
    geom = _geometry(kernel_size, stride, padding, dilation, ceil_mode)
    nd = geom.ndim
    xb, unbatched = _batched(x, nd)
    gb = grad_output.unsqueeze(0) if unbatched else grad_output
    acc = accumulation_dtype(x.dtype)
    with torch.enable_grad():
        x_leaf = xb.detach().to(acc).requires_grad_(True)
        win = _windows(x_leaf, geom)
    with torch.no_grad():
        b = _beta_view(beta, beta_tensor, xb.shape[1], nd, acc, x.device)
        e, s, y = _window_softmax(win.detach(), b)
        w = e / s
        dy = torch.where(win == y, torch.zeros_like(win), win - y)
        live = w != 0
        g = gb.to(acc).unsqueeze(-1)
        grad_win = torch.where(live, g * w * (1 + b * dy), torch.zeros_like(w))
        per_window_var = torch.where(live, w * dy * dy, torch.zeros_like(w)).sum(-1, keepdim=True)
    (grad_x,) = torch.autograd.grad(win, x_leaf, grad_win)
    grad_x = grad_x.to(x.dtype)
    if unbatched:
        grad_x = grad_x.squeeze(0)
    result = torch.empty_like(x)
    result.copy_(grad_x)
    if beta_tensor is None:
        return result, x.new_empty((0,))
    contrib = (g * per_window_var).squeeze(-1)  # (N, C, *out)
    if beta_tensor.numel() == 1:
        grad_beta = contrib.sum()
    else:
        grad_beta = contrib.sum(dim=[0] + list(range(2, contrib.dim())))
    return result, grad_beta.reshape(beta_tensor.shape).to(beta_tensor.dtype)
