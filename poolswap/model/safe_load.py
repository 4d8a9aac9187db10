"""Reading torch files with ``weights_only=True``, and saying in one line why one cannot be read.

torch's own message for a refused file is a paragraph whose first line advises
``weights_only=False``, which would run the file's pickled code: poolswap never
does that, so it names the cause and the safe way out instead.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any, Optional, Union

import torch

from ..errors import PoolswapError, first_line
from .file_kind import describe_kind, file_kind

__all__ = ["load_weights_only", "unreadable_reason"]

RESAVE_HINT = ("re-save it where it was made as a state_dict (torch.save(model.state_dict(), 'weights.pth')) "
               "or as .safetensors")


def _pickled_name(text: str) -> Optional[str]:
    """The global a weights-only unpickler refused (``posix.system``, ``argparse.Namespace``), if it says."""
    found = re.search(r"GLOBAL\s+([\w.]+)", text)
    return found.group(1) if found else None


def unreadable_reason(exc: BaseException, kind: Optional[str] = None) -> str:
    """What made ``torch.load(..., weights_only=True)`` fail, in one line (``kind``: see :func:`file_kind`)."""
    text = str(exc)
    if kind == "directory":
        return "it is a folder; give the file in it"
    if kind == "torchscript" or "TorchScript archives" in text:
        return f"it is a TorchScript archive (torch.jit.save), which poolswap does not load; {RESAVE_HINT}"
    if kind == "empty":
        return "the file is empty"
    if kind == "corrupt-zip":
        return "it is a truncated or corrupt torch checkpoint (its zip index is unreadable)"
    if kind in ("unknown", "zip", "onnx", "safetensors"):
        return f"it is {describe_kind(kind)}, not a torch checkpoint"
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        name = _pickled_name(text)
        what = f" ({name})" if name else ""
        return (f"it holds pickled code or objects beyond tensors{what}, which poolswap never unpickles; "
                f"{RESAVE_HINT}")
    first = first_line(exc)[:200]
    return f"{first} (a truncated or corrupt file?)" if isinstance(exc, (OSError, RuntimeError, EOFError)) else first


def load_weights_only(path: Union[str, os.PathLike], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file it refuses is a one-line :class:`PoolswapError`."""
    kind = file_kind(path)
    if kind in ("directory", "torchscript", "empty", "corrupt-zip", "onnx", "safetensors"):
        # Known not to be a torch checkpoint: say what it is without handing it to the unpickler.
        raise PoolswapError(f"cannot read {path} as {what}: {unreadable_reason(OSError(describe_kind(kind)), kind)}")
    try:
        with warnings.catch_warnings():
            # The weights-only unpickler warns about a pickle protocol it was not written for, then reads or
            # refuses the file: the outcome is what the user needs to hear, in one line.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PoolswapError(f"cannot read {path} as {what}: {unreadable_reason(exc, kind)}") from None

