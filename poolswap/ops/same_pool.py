"""SoftPool with TensorFlow 'SAME' padding computed at run time (timm's ``*Pool2dSame``).

timm pads the input (with -inf for max, zeros for avg) so that the output is
``ceil(size / stride)``, the extra padding position going to the bottom/right.
SoftPool must treat padding as absent, not as values, and the op only pads
symmetrically, so the padding is split per spatial dim:

* even total padding ``2p``: the op's own symmetric ``padding=p``;
* odd total ``2p + 1`` with stride >= 2: ``padding=p`` and ``ceil_mode=True``:
  the last window reaches one position past the padded input, which the op
  counts as absent (exactly the one extra padding position of 'SAME');
* odd total with stride 1: ``padding=p + 1`` and the first output dropped
  (every window then starts one position early, the first one is surplus).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..errors import PoolswapValueError
from ._geometry import to_tuple
from .functional import soft_pool
from .temperature import LearnBeta, SoftPoolBase

__all__ = ["SoftPool2dSame", "same_padding_plan", "soft_pool2d_same"]


def same_padding_plan(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, bool, bool]:
    """(symmetric padding, needs ceil_mode, drop the first output) for one spatial dim."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    half, odd = divmod(total, 2)
    if odd and stride == 1:
        return half + 1, False, True
    return half, bool(odd), False


def soft_pool2d_same(input: torch.Tensor, kernel_size, stride, dilation=1, beta=1.0, *,
                     validate_beta: bool = True) -> torch.Tensor:
    """2-d SoftPool with 'SAME' padding whose padded positions are absent (weight 0)."""
    kernel, strides, dils = (to_tuple(v, 2, name) for v, name in
                             ((kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
    plans = [same_padding_plan(int(s), k, st, d) for s, k, st, d in zip(input.shape[-2:], kernel, strides, dils)]
    padding = tuple(p for p, _, _ in plans)
    ceil_mode = any(c for _, c, _ in plans)
    y = soft_pool(input, 2, kernel, strides, padding, dils, ceil_mode, beta=beta, validate_beta=validate_beta)
    if plans[0][2]:
        y = y[..., 1:, :]
    if plans[1][2]:
        y = y[..., 1:]
    return y


class SoftPool2dSame(SoftPoolBase):
    """SoftPool replacing timm's ``MaxPool2dSame`` / ``AvgPool2dSame`` (output ``ceil(size / stride)``)."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        dilation=1,
        *,
        beta: float = 1.0,
        learn_beta: LearnBeta = False,
        num_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.kernel_size = to_tuple(kernel_size, 2, "kernel_size")
        self.stride = self.kernel_size if stride is None else to_tuple(stride, 2, "stride")
        self.dilation = to_tuple(dilation, 2, "dilation")
        for k, d in zip(self.kernel_size, self.dilation):
            if d != 1 and math.ceil((k - 1) * d / 2) * 2 > k:
                raise PoolswapValueError(f"'same' padding of kernel {k} with dilation {d} exceeds half the kernel; SoftPool cannot pad that much")
        self._init_temperature(beta, learn_beta, num_channels)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return soft_pool2d_same(input, self.kernel_size, self.stride, self.dilation, beta=self.temperature(),
                                validate_beta=False)

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding='same'"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        return f"{text}, {self._beta_repr()}"
