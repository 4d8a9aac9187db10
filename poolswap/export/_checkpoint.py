"""Load a converted model for the CLI through ``poolswap.load`` (the find-and-swap stage's format)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from ..errors import PoolswapError

__all__ = ["load_checkpoint"]


def load_checkpoint(path: Union[str, Path]):
    """The ``torch.nn.Module`` saved at ``path`` by ``poolswap.save`` (eval mode, on the CPU)."""
    from torch import nn

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        from ..surgery import load
    except ImportError as exc:
        raise PoolswapError(f"poolswap.load is not available in this installation ({exc})") from exc
    loaded = load(path)
    model = loaded[0] if isinstance(loaded, tuple) else getattr(loaded, "model", loaded)
    if not isinstance(model, nn.Module):
        raise PoolswapError(f"{path} did not load as a torch.nn.Module (got {type(model).__name__})")
    return model.cpu().eval()
