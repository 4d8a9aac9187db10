"""Where compiled kernels are cached, and what a build is keyed on. Imports no torch.

Shared by the PyTorch extension builder and the ONNX Runtime library builder (which
must stay importable with onnxruntime and numpy alone).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cache_dir", "cpu_signature"]


def cache_dir() -> Path:
    """``$POOLSWAP_CACHE``, else ``$XDG_CACHE_HOME/poolswap`` (``~/.cache/poolswap``)."""
    root = os.environ.get("POOLSWAP_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "poolswap"


def cpu_signature() -> str:
    """The machine and its instruction-set flags: builds use -march=native, so they key on it."""
    flags = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return flags + line
    except OSError:
        pass
    return flags + platform.processor()
