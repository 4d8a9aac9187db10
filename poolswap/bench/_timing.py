"""Timing and peak-memory measurement shared by the benchmarks."""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

# torch.utils.benchmark imports torch's extension builder, which notes on CPU-only machines that no CUDA
# runtime is found: true, and nothing a benchmark user needs to read.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils.benchmark import Timer  # noqa: E402

__all__ = ["median_seconds", "peak_memory"]


def median_seconds(fn: Callable[[], object], min_run_time: float, device: str) -> float:
    """Median wall time of ``fn`` after one warm-up call (kernel builds, caches)."""
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def peak_memory(fn: Callable[[], object], device: str) -> Optional[int]:
    """Peak CUDA memory of one call of ``fn``; None on the CPU (no allocator statistics there)."""
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()
