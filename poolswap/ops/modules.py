"""SoftPool modules, constructor-compatible with ``torch.nn.MaxPool{1,2,3}d``.

``SoftPool2d(**maxpool.__dict__-style kwargs)`` builds a layer of the same
geometry. With a fixed ``beta`` the module has no parameters (its state_dict is
empty); ``learn_beta="scalar"`` or ``"channel"`` adds one parameter, ``log_beta``
(the temperature is ``exp(log_beta)``, so it stays positive while it learns).
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

import torch
from torch import nn

from ._geometry import IntOrTuple, PoolGeometry
from .functional import check_beta, soft_pool

__all__ = ["SoftPool1d", "SoftPool2d", "SoftPool3d", "LearnBeta"]

LearnBeta = Union[bool, Literal["scalar", "channel"], None]


def _learn_beta_mode(learn_beta: LearnBeta) -> Optional[str]:
    if learn_beta in (False, None):
        return None
    if learn_beta is True or learn_beta == "scalar":
        return "scalar"
    if learn_beta == "channel":
        return "channel"
    raise ValueError(f"learn_beta must be False, True, 'scalar' or 'channel', got {learn_beta!r}")


class _SoftPoolNd(nn.Module):
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
            raise ValueError(
                "SoftPool has no argmax indices (return_indices=True); keep this layer a MaxPool"
            )
        geometry = PoolGeometry.create(self.ndim, kernel_size, stride, padding, dilation, ceil_mode)
        self.kernel_size = geometry.kernel_size
        self.stride = geometry.stride
        self.padding = geometry.padding
        self.dilation = geometry.dilation
        self.ceil_mode = geometry.ceil_mode
        self.initial_beta = check_beta(beta)
        self.learn_beta = _learn_beta_mode(learn_beta)
        if self.learn_beta == "channel":
            if not isinstance(num_channels, int) or num_channels < 1:
                raise ValueError("learn_beta='channel' needs num_channels (the number of input channels)")
            shape: tuple[int, ...] = (num_channels,)
        else:
            shape = ()
        if self.learn_beta is None:
            self.register_parameter("log_beta", None)
        else:
            self.log_beta = nn.Parameter(torch.full(shape, math.log(self.initial_beta)))

    @property
    def geometry(self) -> PoolGeometry:
        return PoolGeometry(self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    @property
    def beta(self) -> Union[float, torch.Tensor]:
        """The current temperature: a float, or a (detached) tensor when it is learnt."""
        if self.log_beta is None:
            return self.initial_beta
        return self.log_beta.detach().exp()

    def temperature(self) -> Union[float, torch.Tensor]:
        """What the op receives: the fixed float, or ``exp(log_beta)`` with its gradient."""
        return self.initial_beta if self.log_beta is None else self.log_beta.exp()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return soft_pool(
            input, self.ndim, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            beta=self.temperature(),
        )

    def extra_repr(self) -> str:
        text = f"{self.geometry}"
        if self.learn_beta is None:
            return f"{text}, beta={self.initial_beta:g}"
        return f"{text}, beta={self.initial_beta:g}, learn_beta={self.learn_beta!r}"


class SoftPool1d(_SoftPoolNd):
    """1-d SoftPool over (N, C, L) or (C, L) inputs."""

    ndim = 1


class SoftPool2d(_SoftPoolNd):
    """2-d SoftPool over (N, C, H, W) or (C, H, W) inputs."""

    ndim = 2


class SoftPool3d(_SoftPoolNd):
    """3-d SoftPool over (N, C, D, H, W) or (C, D, H, W) inputs."""

    ndim = 3
