"""A SoftPool op with constant temperatures, used only while exporting.

ONNX attributes are constants, but a SoftPool with a learnt beta computes its
temperature from a parameter (``exp(log_beta)``). Before export, every SoftPool
module of a deep copy of the model is swapped for :class:`FrozenSoftPool`, whose
op ``poolswap::soft_pool_frozen`` takes the temperatures as a ``float[]``: the
exporter sees them as constants and writes them as the ``beta``/``betas``
attributes of the ``poolswap::SoftPool`` node.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from ..errors import PoolswapError
from ..ops import SOFT_POOL, SoftPoolBase, SoftPoolNd, empty_soft_pool_output

__all__ = ["FrozenSoftPool", "SOFT_POOL_FROZEN", "freeze_softpools"]

_lib = torch.library.Library("poolswap", "FRAGMENT")
_lib.define(
    "soft_pool_frozen(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode,"
    " float beta, float[] betas) -> Tensor"
)


def _soft_pool_frozen(x, kernel_size, stride, padding, dilation, ceil_mode, beta, betas):
    beta_tensor = torch.tensor(list(betas), dtype=torch.float32, device=x.device) if len(betas) else None
    return SOFT_POOL(x, kernel_size, stride, padding, dilation, ceil_mode, beta, beta_tensor)


def _soft_pool_frozen_fake(x, kernel_size, stride, padding, dilation, ceil_mode, beta, betas):
    return empty_soft_pool_output(x, kernel_size, stride, padding, dilation, ceil_mode)


_lib.impl("soft_pool_frozen", _soft_pool_frozen, "CompositeExplicitAutograd")
torch.library.register_fake("poolswap::soft_pool_frozen", _soft_pool_frozen_fake, lib=_lib)

SOFT_POOL_FROZEN = torch.ops.poolswap.soft_pool_frozen.default


class FrozenSoftPool(nn.Module):
    """A SoftPool whose temperature(s) are plain floats (no parameter)."""

    def __init__(self, source: SoftPoolNd) -> None:
        super().__init__()
        self.ndim = source.ndim
        self.kernel_size = list(source.kernel_size)
        self.stride = list(source.stride)
        self.padding = list(source.padding)
        self.dilation = list(source.dilation)
        self.ceil_mode = bool(source.ceil_mode)
        beta = source.beta
        if isinstance(beta, torch.Tensor):
            values = [float(v) for v in beta.detach().double().reshape(-1).cpu()]
            self.beta = values[0] if len(values) == 1 else 1.0
            self.betas: list[float] = values if len(values) > 1 else []
        else:
            self.beta = float(beta)
            self.betas = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SOFT_POOL_FROZEN(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.beta, self.betas
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, beta={self.beta:g}, betas={len(self.betas)}"


def _parent(root: nn.Module, qualname: str) -> tuple[nn.Module, str]:
    parent_name, _, name = qualname.rpartition(".")
    return (root.get_submodule(parent_name) if parent_name else root), name


def freeze_softpools(model: nn.Module) -> tuple[nn.Module, int]:
    """A deep copy of ``model`` in eval mode with every SoftPool module frozen; and how many there were."""
    frozen = copy.deepcopy(model).eval()
    for name, m in frozen.named_modules():
        # 'Same'-padded and global SoftPools export through the functional op: a learnt scalar
        # temperature becomes their fixed float; a per-channel one has no float form there.
        if isinstance(m, SoftPoolBase) and not isinstance(m, SoftPoolNd) and m.log_beta is not None:
            if m.log_beta.numel() != 1:
                raise PoolswapError(
                    f"{name or 'the model'}: a per-channel learnt beta on a {type(m).__name__} cannot be exported; "
                    "convert that site with learn_beta='scalar' or exclude it"
                )
            m.initial_beta = float(m.log_beta.detach().exp())
            m.learn_beta = None
            m.log_beta = None
    sites: Sequence[str] = [name for name, m in frozen.named_modules() if isinstance(m, SoftPoolNd)]
    for name in sites:
        if not name:  # the model is itself a SoftPool
            return FrozenSoftPool(frozen), 1
        parent, attr = _parent(frozen, name)
        setattr(parent, attr, FrozenSoftPool(getattr(parent, attr)))
    if hasattr(frozen, "recompile") and sites:  # a torch.fx GraphModule: call_module targets are unchanged
        frozen.recompile()
    return frozen, len(sites)
