"""The temperature every SoftPool module carries: a fixed float, or a learnt ``log_beta``."""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

import torch
from torch import nn

from ..errors import PoolswapValueError
from .functional import check_beta

__all__ = ["SoftPoolBase", "LearnBeta", "fixed_betas", "learn_beta_mode", "restore_fixed_betas", "softpool_modules"]

LearnBeta = Union[bool, Literal["scalar", "channel"], None]


def learn_beta_mode(learn_beta: LearnBeta) -> Optional[str]:
    """Normalise ``learn_beta`` to None, ``"scalar"`` or ``"channel"``."""
    if learn_beta in (False, None):
        return None
    if learn_beta is True or learn_beta == "scalar":
        return "scalar"
    if learn_beta == "channel":
        return "channel"
    raise PoolswapValueError(f"learn_beta must be False, True, 'scalar' or 'channel', got {learn_beta!r}")


class SoftPoolBase(nn.Module):
    """Base of every SoftPool module (local, same-padded, global).

    Attributes: ``initial_beta`` (float), ``learn_beta`` (None, 'scalar' or 'channel')
    and the parameter ``log_beta`` (None unless learnt; the temperature is
    ``exp(log_beta)``, so it stays positive). A fixed temperature adds no parameter.
    """

    def _init_temperature(self, beta: float, learn_beta: LearnBeta, num_channels: Optional[int]) -> None:
        self.initial_beta = check_beta(beta)
        self.learn_beta = learn_beta_mode(learn_beta)
        if self.learn_beta == "channel":
            if not isinstance(num_channels, int) or num_channels < 1:
                raise PoolswapValueError("learn_beta='channel' needs num_channels (the number of input channels)")
            shape: tuple[int, ...] = (num_channels,)
        else:
            shape = ()
        if self.learn_beta is None:
            self.register_parameter("log_beta", None)
        else:
            self.log_beta = nn.Parameter(torch.full(shape, math.log(self.initial_beta)))

    @property
    def beta(self) -> Union[float, torch.Tensor]:
        """The current temperature: a float, or a (detached) tensor when it is learnt."""
        if self.log_beta is None:
            return self.initial_beta
        return self.log_beta.detach().exp()

    def temperature(self) -> Union[float, torch.Tensor]:
        """What the op receives: the fixed float, or ``exp(log_beta)`` with its gradient.

        ``exp`` keeps a learnt temperature positive, so the modules skip the op's check of
        a tensor beta's values (a device sync per call on a GPU); a non-finite ``log_beta``
        is refused where it can come from: loading weights, and fine-tuning's loss check.
        """
        return self.initial_beta if self.log_beta is None else self.log_beta.exp()

    def _beta_repr(self) -> str:
        text = f"beta={self.initial_beta:g}"
        return text if self.learn_beta is None else f"{text}, learn_beta={self.learn_beta!r}"


def softpool_modules(model: nn.Module) -> dict[str, SoftPoolBase]:
    """Every SoftPool layer of ``model`` (local, 'same'-padded, global) by module path, in module order.

    A converted model's swapped sites are named by their site names (see ``poolswap.manifest``).
    """
    return {name: m for name, m in model.named_modules() if isinstance(m, SoftPoolBase)}


def fixed_betas(model: nn.Module) -> dict[str, float]:
    """The fixed (not learnt) temperature of each SoftPool layer: module attributes, not in the state_dict."""
    return {name: float(m.initial_beta) for name, m in softpool_modules(model).items() if m.log_beta is None}


def restore_fixed_betas(model: nn.Module, betas: dict[str, float]) -> None:
    """Set the fixed temperatures recorded by :func:`fixed_betas` (calibration may have changed them)."""
    for name, module in softpool_modules(model).items():
        if name in betas and module.log_beta is None:
            module.initial_beta = float(betas[name])
