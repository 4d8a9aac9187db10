"""Reading torch files with ``weights_only=True``, and saying in one line why one cannot be read.

torch's own message for a refused file is a paragraph whose first line advises
``weights_only=False``, which would run the file's pickled code: poolswap never
does that, so it names the cause and the safe way out instead.
"""

from __future__ import annotations

import os
import re
from typing import Any, Union

import torch

from ..errors import PoolswapError, first_line

__all__ = ["load_weights_only", "unreadable_reason"]


def unreadable_reason(exc: BaseException) -> str:
    """What made ``torch.load(..., weights_only=True)`` fail, in one line."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return (f"it pickles {found.group(1)}, and poolswap never unpickles code; "
                "save the model's state_dict() (or a .safetensors file) instead")
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", text, re.S)
    if found:
        return f"not a torch checkpoint, or a corrupt one ({' '.join(found.group(1).split())})"
    first = first_line(exc)[:200]
    return f"{first} (a truncated or corrupt file?)" if isinstance(exc, (OSError, RuntimeError, EOFError)) else first


def load_weights_only(path: Union[str, os.PathLike], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file it refuses is a one-line :class:`PoolswapError`."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PoolswapError(f"cannot read {path} as {what}: {unreadable_reason(exc)}") from None
