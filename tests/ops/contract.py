"""A float64 brute-force SoftPool written straight from docs/softpool.md.

Deliberately naive (Python loops over output positions, no shared code with
poolswap): the fused kernels and the reference are both checked against it.
"""

from __future__ import annotations

import itertools
import math

import torch


def output_length(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch.nn.MaxPoolNd's formula."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _window_positions(o, size, kernel, stride, padding, dilation):
    positions = [o * stride - padding + k * dilation for k in range(kernel)]
    return [p for p in positions if 0 <= p < size]


def _pool_one(values: torch.Tensor, beta: torch.Tensor):
    """values: (..., K) float64 window of valid positions; beta broadcastable to (...)."""
    m = values.max(-1, keepdim=True).values
    has_nan = values.isnan().any(-1)
    has_pos_inf = (values == math.inf).any(-1)
    all_neg_inf = (values == -math.inf).all(-1)
    finite_shift = torch.where(values == m, torch.zeros_like(values), values - m)
    e = torch.exp(beta.unsqueeze(-1) * finite_shift)
    w = e / e.sum(-1, keepdim=True)
    y = torch.where(w > 0, w * values, torch.zeros_like(values)).sum(-1)
    y = torch.where(all_neg_inf, torch.full_like(y, -math.inf), y)
    y = torch.where(has_pos_inf, torch.full_like(y, math.inf), y)
    y = torch.where(has_nan, torch.full_like(y, math.nan), y)
    return y, w


def _beta_grid(beta, n: int, c: int) -> torch.Tensor:
    b = torch.as_tensor(beta, dtype=torch.float64).reshape(-1)
    return b.reshape(1, -1).expand(n, c) if b.numel() == c else b.reshape(1, 1).expand(n, c)


def _index_sets(shape, kernel, stride, padding, dilation, ceil_mode):
    spatial = shape[2:]
    outs = [output_length(*args, ceil_mode) for args in zip(spatial, kernel, stride, padding, dilation)]
    for o in itertools.product(*[range(v) for v in outs]):
        per_dim = [_window_positions(oi, *args) for oi, args in zip(o, zip(spatial, kernel, stride, padding, dilation))]
        yield outs, o, list(itertools.product(*per_dim))


def soft_pool_brute_force(x, kernel, stride, padding, dilation, ceil_mode, beta=1.0):
    """y for a batched (N, C, *S) tensor, in float64."""
    x = x.detach().to(torch.float64)
    n, c = x.shape[:2]
    b = _beta_grid(beta, n, c)
    y = None
    for outs, o, idx in _index_sets(x.shape, kernel, stride, padding, dilation, ceil_mode):
        if y is None:
            y = torch.empty((n, c, *outs), dtype=torch.float64)
        values = torch.stack([x[(slice(None), slice(None)) + i] for i in idx], -1)
        y[(slice(None), slice(None)) + o] = _pool_one(values, b)[0]
    return y


def soft_pool_grad_brute_force(x, grad_y, kernel, stride, padding, dilation, ceil_mode, beta=1.0):
    """(dL/dx, dL/dbeta per (N, C)) for upstream gradient grad_y, from the contract's formulas."""
    x = x.detach().to(torch.float64)
    grad_y = grad_y.detach().to(torch.float64)
    n, c = x.shape[:2]
    b = _beta_grid(beta, n, c)
    grad_x = torch.zeros_like(x)
    grad_beta = torch.zeros((n, c), dtype=torch.float64)
    for _, o, idx in _index_sets(x.shape, kernel, stride, padding, dilation, ceil_mode):
        values = torch.stack([x[(slice(None), slice(None)) + i] for i in idx], -1)
        y, w = _pool_one(values, b)
        g = grad_y[(slice(None), slice(None)) + o]
        dy = values - y.unsqueeze(-1)
        for k, i in enumerate(idx):
            grad_x[(slice(None), slice(None)) + i] += g * w[..., k] * (1 + b * dy[..., k])
        grad_beta += g * (w * dy * dy).sum(-1)
    return grad_x, grad_beta
