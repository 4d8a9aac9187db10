"""Global SoftPool: one SoftPool window over the whole spatial extent of its input.

Replaces a global or adaptive-(1) pool on request (``x.mean((2, 3))``,
``nn.AdaptiveAvgPool2d(1)``, ``x.amax((2, 3), keepdim=True)``...) and keeps the
output shape of the pool it replaces: ``keepdim=True`` gives ``(N, C, 1, 1)``,
``keepdim=False`` gives ``(N, C)``. It calls :func:`poolswap.ops.soft_pool` with
``kernel_size`` = the input's spatial size, so every SoftPool back-end serves it.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from .functional import check_beta, soft_pool
from .modules import LearnBeta, _learn_beta_mode

__all__ = ["GlobalSoftPool", "global_soft_pool", "init_temperature"]


def init_temperature(module: nn.Module, beta: float, learn_beta: LearnBeta, num_channels: Optional[int]) -> None:
    """Give ``module`` the temperature attributes every SoftPool module has.

    ``initial_beta`` (float), ``learn_beta`` (None, 'scalar' or 'channel') and the
    parameter ``log_beta`` (None unless the temperature is learnt).
    """
    module.initial_beta = check_beta(beta)
    module.learn_beta = _learn_beta_mode(learn_beta)
    if module.learn_beta == "channel":
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError("learn_beta='channel' needs num_channels (the number of input channels)")
        shape: tuple[int, ...] = (num_channels,)
    else:
        shape = ()
    if module.learn_beta is None:
        module.register_parameter("log_beta", None)
    else:
        module.log_beta = nn.Parameter(torch.full(shape, math.log(module.initial_beta)))


def global_soft_pool(input: torch.Tensor, ndim: int = 2, keepdim: bool = True, beta=1.0) -> torch.Tensor:
    """SoftPool over all ``ndim`` trailing spatial dims of ``input``."""
    spatial = tuple(int(s) for s in input.shape[input.dim() - ndim :])
    y = soft_pool(input, ndim, spatial, spatial, 0, 1, False, beta=beta)
    if keepdim:
        return y
    return y.reshape(y.shape[: y.dim() - ndim])


class GlobalSoftPool(nn.Module):
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
            raise ValueError(f"GlobalSoftPool supports 1, 2 or 3 spatial dims, got {ndim}")
        self.ndim = int(ndim)
        self.keepdim = bool(keepdim)
        init_temperature(self, beta, learn_beta, num_channels)

    @property
    def beta(self) -> Union[float, torch.Tensor]:
        if self.log_beta is None:
            return self.initial_beta
        return self.log_beta.detach().exp()

    def temperature(self) -> Union[float, torch.Tensor]:
        return self.initial_beta if self.log_beta is None else self.log_beta.exp()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return global_soft_pool(input, self.ndim, self.keepdim, beta=self.temperature())

    def extra_repr(self) -> str:
        text = f"ndim={self.ndim}, keepdim={self.keepdim}, beta={self.initial_beta:g}"
        return text if self.learn_beta is None else f"{text}, learn_beta={self.learn_beta!r}"
