"""Timing and peak-memory measurement shared by the benchmarks."""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

# torch.utils.benchmark imports torch's extension builder, which notes on CPU-only machines that no CUDA
# runtime is found: true, and nothing a benchmark user needs to read.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils.benchmark import Timer  # noqa: E402

__all__ = ["median_seconds", "peak_memory", "resolve_threads"]


def resolve_threads(threads: Optional[int]) -> int:
    """The intra-op thread count a benchmark runs with: ``threads``, else torch's current one (all cores)."""
    if threads is None:
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return threads


def median_seconds(fn: Callable[[], object], min_run_time: float, device: str, threads: int) -> float:
    """Median wall time of ``fn`` on ``threads`` intra-op threads, after one warm-up call (builds, caches).

    ``torch.utils.benchmark.Timer`` runs on one thread unless told otherwise: every
    benchmark passes the thread count it reports, and the same to every variant.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    finally:
        torch.set_num_threads(previous)
    timer = Timer("fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def peak_memory(fn: Callable[[], object], device: str) -> Optional[int]:
    """Peak CUDA memory of one call of ``fn``; None on the CPU (no allocator statistics there)."""
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()
