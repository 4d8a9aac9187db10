"""SoftPool modules, constructor-compatible with ``torch.nn.MaxPool{1,2,3}d``.

``SoftPool2d(**maxpool.__dict__-style kwargs)`` builds a layer of the same
geometry. With a fixed ``beta`` the module has no parameters (its state_dict is
empty); ``learn_beta="scalar"`` or ``"channel"`` adds one parameter, ``log_beta``
(the temperature is ``exp(log_beta)``, so it stays positive while it learns).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import PoolswapValueError
from ._geometry import IntOrTuple, PoolGeometry
from .functional import soft_pool
from .temperature import LearnBeta, SoftPoolBase

__all__ = ["SoftPool1d", "SoftPool2d", "SoftPool3d", "SoftPoolNd"]


class SoftPoolNd(SoftPoolBase):
    """The local SoftPool of ``ndim`` spatial dims (the base of ``SoftPool1d/2d/3d``)."""

    ndim: int = 0

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: Optional[IntOrTuple] = None,
        padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        *,
        beta: float = 1.0,
        learn_beta: LearnBeta = False,
        num_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        if return_indices:
            raise PoolswapValueError(
                "SoftPool has no argmax indices (return_indices=True); keep this layer a MaxPool"
            )
        geometry = PoolGeometry.create(self.ndim, kernel_size, stride, padding, dilation, ceil_mode)
        self.kernel_size = geometry.kernel_size
        self.stride = geometry.stride
        self.padding = geometry.padding
        self.dilation = geometry.dilation
        self.ceil_mode = geometry.ceil_mode
        self._init_temperature(beta, learn_beta, num_channels)

    @property
    def geometry(self) -> PoolGeometry:
        return PoolGeometry(self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return soft_pool(
            input, self.ndim, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            beta=self.temperature(), validate_beta=False,
        )

    def extra_repr(self) -> str:
        return f"{self.geometry}, {self._beta_repr()}"


class SoftPool1d(SoftPoolNd):
    """1-d SoftPool over (N, C, L) or (C, L) inputs."""

    ndim = 1


class SoftPool2d(SoftPoolNd):
    """2-d SoftPool over (N, C, H, W) or (C, H, W) inputs."""

    ndim = 2


class SoftPool3d(SoftPoolNd):
    """3-d SoftPool over (N, C, D, H, W) or (C, D, H, W) inputs."""

    ndim = 3
