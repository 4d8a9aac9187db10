"""Device names from users (``--device``, ``device=``) resolved once, with a one-line error where none exists."""

from __future__ import annotations

from typing import Union

import torch

from .errors import PoolswapError

__all__ = ["resolve_device"]


def resolve_device(name: Union[str, torch.device, None] = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (or None): this rank's CUDA device where there is one, else the CPU; else the device named.

    A device that does not exist here (``cuda`` without a GPU or a CUDA build of
    torch, ``cuda:3`` on a two-GPU machine, a misspelt name) is a :class:`PoolswapError`.
    """
    if name is None or str(name) == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise PoolswapError(f"unknown device {str(name)!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise PoolswapError(f"device {str(name)!r} was asked for but {why}; use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if device.index is None:
            device = torch.device("cuda", local_rank % count)
        elif device.index >= count:
            raise PoolswapError(f"device {str(name)!r} does not exist: this machine has {count} CUDA device(s), "
                                f"cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise PoolswapError(f"device {str(name)!r} was asked for but MPS is not available here; use cpu")
    elif device.type not in ("cpu", "cuda", "mps", "meta"):
        raise PoolswapError(f"device {str(name)!r} is not supported by poolswap; use auto, cpu or cuda")
    return device
