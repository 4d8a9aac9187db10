"""Global SoftPool: one SoftPool window over the whole spatial extent of its input.

Replaces a global or adaptive-(1) pool on request (``x.mean((2, 3))``,
``nn.AdaptiveAvgPool2d(1)``, ``x.amax((2, 3), keepdim=True)``...) and keeps the
output shape of the pool it replaces: ``keepdim=True`` gives ``(N, C, 1, 1)``,
``keepdim=False`` gives ``(N, C)``. It calls :func:`poolswap.ops.soft_pool` with
``kernel_size`` = the input's spatial size, so every SoftPool back-end serves it.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import PoolswapValueError
from .functional import soft_pool
from .temperature import LearnBeta, SoftPoolBase

__all__ = ["GlobalSoftPool", "global_soft_pool"]


def global_soft_pool(input: torch.Tensor, ndim: int = 2, keepdim: bool = True, beta=1.0, *,
                     validate_beta: bool = True) -> torch.Tensor:
    """SoftPool over all ``ndim`` trailing spatial dims of ``input``."""
    spatial = tuple(int(s) for s in input.shape[input.dim() - ndim :])
    y = soft_pool(input, ndim, spatial, spatial, 0, 1, False, beta=beta, validate_beta=validate_beta)
    if keepdim:
        return y
    return y.reshape(y.shape[: y.dim() - ndim])


class GlobalSoftPool(SoftPoolBase):
    """Global SoftPool over ``ndim`` spatial dims; the temperature API of :class:`SoftPool2d`."""

    def __init__(
        self,
        ndim: int = 2,
        keepdim: bool = True,
        *,
        beta: float = 1.0,
        learn_beta: LearnBeta = False,
        num_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        if ndim not in (1, 2, 3):
            raise PoolswapValueError(f"GlobalSoftPool supports 1, 2 or 3 spatial dims, got {ndim}")
        self.ndim = int(ndim)
        self.keepdim = bool(keepdim)
        self._init_temperature(beta, learn_beta, num_channels)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return global_soft_pool(input, self.ndim, self.keepdim, beta=self.temperature(), validate_beta=False)

    def extra_repr(self) -> str:
        return f"ndim={self.ndim}, keepdim={self.keepdim}, {self._beta_repr()}"
