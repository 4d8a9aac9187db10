"""Hypothesis strategies: random valid SoftPool problems (geometry, layout, beta)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from hypothesis import assume
from hypothesis import strategies as st

from .contract import output_length


@dataclass
class Problem:
    x: torch.Tensor  # as given to the op (maybe unbatched, channels_last or non-contiguous)
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool
    beta: float
    beta_tensor: Optional[torch.Tensor]

    @property
    def args(self):
        return (list(self.kernel), list(self.stride), list(self.padding), list(self.dilation), self.ceil_mode)

    @property
    def batched_x(self) -> torch.Tensor:
        return self.x if self.x.dim() == len(self.kernel) + 2 else self.x.unsqueeze(0)

    @property
    def effective_beta(self):
        return self.beta if self.beta_tensor is None else self.beta_tensor.detach()


def _window_has_input(size, k, s, p, d, out) -> bool:
    for o in range(out):
        start = o * s - p
        if not any(0 <= start + i * d < size for i in range(k)):
            return False
    return True


@st.composite
def problems(draw, dtype=torch.float64, max_spatial=None, wide_rows=False) -> Problem:
    """A random problem; ``wide_rows`` makes the last dim long enough for the kernels' vector path."""
    nd = draw(st.sampled_from([1, 2, 3]))
    limit = max_spatial or {1: 12, 2: 9, 3: 6}[nd]
    kernel, stride, padding, dilation, sizes = [], [], [], [], []
    ceil_mode = draw(st.booleans())
    for dim in range(nd):
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        d = draw(st.integers(1, 2))
        p = draw(st.integers(0, k // 2))
        last = dim == nd - 1
        size = draw(st.integers(16 * s + k * d, 24 * s + k * d) if (wide_rows and last) else st.integers(1, 3 if wide_rows else limit))
        out = output_length(size, k, s, p, d, ceil_mode)
        assume(out >= 1 and _window_has_input(size, k, s, p, d, out))
        kernel.append(k), stride.append(s), padding.append(p), dilation.append(d), sizes.append(size)
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    # Ties are where naive kernels go wrong: sometimes draw from a few levels only.
    if draw(st.booleans()):
        x = torch.randn((n, c, *sizes), generator=gen, dtype=torch.float64) * scale
    else:
        x = torch.randint(-2, 3, (n, c, *sizes), generator=gen).to(torch.float64) * scale
    x = x.to(dtype)
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided", "unbatched"]))
    if layout == "channels_last" and nd in (2, 3):
        x = x.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    elif layout == "strided":
        wide = torch.zeros((n, c, *sizes[:-1], 2 * sizes[-1]), dtype=dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    elif layout == "unbatched":
        x = x[0]
    beta_kind = draw(st.sampled_from(["float", "scalar_tensor", "channel_tensor"]))
    beta = draw(st.sampled_from([0.25, 1.0, 3.0]))
    beta_tensor = None
    if beta_kind == "scalar_tensor":
        beta_tensor = torch.tensor(beta, dtype=dtype)
    elif beta_kind == "channel_tensor":
        beta_tensor = torch.rand(c, generator=gen, dtype=torch.float64).mul(2.5).add(0.25).to(dtype)
    return Problem(x, tuple(kernel), tuple(stride), tuple(padding), tuple(dilation), ceil_mode, beta, beta_tensor)
