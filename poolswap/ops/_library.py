"""The SoftPool operator, declared once with ``torch.library``.

* ``poolswap::soft_pool`` and ``poolswap::soft_pool_backward`` are declared here.
* The pure-PyTorch reference is registered as the ``CompositeExplicitAutograd``
  kernel: it serves every device that has no fused kernel.
* The compiled extension (``poolswap/kernels``) adds ``CPU`` (and ``CUDA``) kernels
  for the same schema; a backend kernel takes precedence over the composite one.
* Fake kernels make the op traceable by torch.fx, ``torch.compile`` and
  ``torch.export``; autograd goes through the backward op.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._geometry import PoolGeometry
from .reference import output_memory_format, soft_pool_backward_reference, soft_pool_reference

__all__ = ["SOFT_POOL", "SOFT_POOL_BACKWARD", "empty_soft_pool_output", "soft_pool_op"]

_GEOMETRY_ARGS = "int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode"

_lib = torch.library.Library("poolswap", "DEF")
_lib.define(f"soft_pool(Tensor x, {_GEOMETRY_ARGS}, float beta, Tensor? beta_tensor) -> Tensor")
_lib.define(
    f"soft_pool_backward(Tensor grad_output, Tensor x, {_GEOMETRY_ARGS}, float beta, Tensor? beta_tensor)"
    " -> (Tensor, Tensor)"
)
_lib.impl("soft_pool", soft_pool_reference, "CompositeExplicitAutograd")
_lib.impl("soft_pool_backward", soft_pool_backward_reference, "CompositeExplicitAutograd")

SOFT_POOL = torch.ops.poolswap.soft_pool.default
SOFT_POOL_BACKWARD = torch.ops.poolswap.soft_pool_backward.default


def _output_shape(x: torch.Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> tuple:
    geom = PoolGeometry(tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation), bool(ceil_mode))
    nd = geom.ndim
    return tuple(x.shape[: x.dim() - nd]) + geom.output_size(tuple(x.shape[x.dim() - nd :]))


def empty_soft_pool_output(x: torch.Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> torch.Tensor:
    """An uninitialised output of SoftPool on ``x``: its shape, dtype and layout (for fake kernels)."""
    shape = _output_shape(x, kernel_size, stride, padding, dilation, ceil_mode)
    return x.new_empty(shape).contiguous(memory_format=output_memory_format(x))


@torch.library.register_fake("poolswap::soft_pool")
def _soft_pool_fake(x, kernel_size, stride, padding, dilation, ceil_mode, beta, beta_tensor):
    return empty_soft_pool_output(x, kernel_size, stride, padding, dilation, ceil_mode)


@torch.library.register_fake("poolswap::soft_pool_backward")
def _soft_pool_backward_fake(grad_output, x, kernel_size, stride, padding, dilation, ceil_mode, beta, beta_tensor):
    grad_beta = x.new_empty((0,)) if beta_tensor is None else beta_tensor.new_empty(beta_tensor.shape)
    return torch.empty_like(x), grad_beta


def _setup_context(ctx, inputs, output) -> None:
    x, kernel_size, stride, padding, dilation, ceil_mode, beta, beta_tensor = inputs
    ctx.geometry = (kernel_size, stride, padding, dilation, ceil_mode, beta)
    ctx.has_beta_tensor = beta_tensor is not None
    ctx.save_for_backward(x, beta_tensor)


def _backward(ctx, grad_output):
    x, beta_tensor = ctx.saved_tensors
    need_x = ctx.needs_input_grad[0]
    need_beta = ctx.has_beta_tensor and ctx.needs_input_grad[7]
    if not (need_x or need_beta):
        return (None,) * 8
    kernel_size, stride, padding, dilation, ceil_mode, beta = ctx.geometry
    grad_x, grad_beta = SOFT_POOL_BACKWARD(
        grad_output, x, kernel_size, stride, padding, dilation, ceil_mode, beta, beta_tensor
    )
    return (grad_x if need_x else None, None, None, None, None, None, None, grad_beta if need_beta else None)


torch.library.register_autograd("poolswap::soft_pool", _backward, setup_context=_setup_context)


def soft_pool_op(
    x: torch.Tensor,
    geometry: PoolGeometry,
    beta: float,
    beta_tensor: Optional[torch.Tensor],
) -> torch.Tensor:
    """Call the registered op with a normalised geometry."""
    return SOFT_POOL(
        x,
        list(geometry.kernel_size),
        list(geometry.stride),
        list(geometry.padding),
        list(geometry.dilation),
        geometry.ceil_mode,
        float(beta),
        beta_tensor,
    )
