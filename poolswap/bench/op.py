"""SoftPool op benchmark: fused kernel vs max pooling, the two-AvgPool decomposition and the reference."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..device import resolve_device
from ._timing import median_seconds, peak_memory, resolve_threads
from ._table import markdown_table

logger = logging.getLogger(__name__)

__all__ = ["OpBenchConfig", "run_op_benchmark", "format_op_table"]


@dataclass
class OpBenchConfig:
    batch: int = 8
    channels: int = 64
    size: int = 112
    kernel: int = 3
    stride: int = 2
    padding: int = 1
    dtype: str = "float32"
    device: str = "cpu"
    min_run_time: float = 1.0
    include_reference: bool = True
    threads: Optional[int] = None  # intra-op threads of every variant (default: torch's, all cores)


def _decomposition(x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """The original SoftPool formulation: avg_pool(x * e^x) / avg_pool(e^x) (no shift: overflows past ~88)."""
    e = torch.exp(x)
    return F.avg_pool2d(x * e, k, s, p) / F.avg_pool2d(e, k, s, p)


def run_op_benchmark(config: OpBenchConfig) -> dict:
    """Time forward and forward+backward of every variant; returns rows with ratios to max_pool2d.

    Every variant runs on the same ``threads``; on the CPU the fused kernel is also
    timed on one thread, for its speed-up from 1 thread to ``threads``.
    """
    import poolswap
    from poolswap.kernels import cpu_isa, cpu_parallel_backend, kernel_status
    from poolswap.ops import soft_pool_reference

    from poolswap.ops import PoolGeometry

    k, s, p = config.kernel, config.stride, config.padding
    # an impossible geometry is the user's error, said before any timing (and before max_pool2d says it its way)
    PoolGeometry.create(2, k, s, p).output_size((config.size, config.size))
    threads = resolve_threads(config.threads)
    resolve_device(config.device)  # a device that is not here: one line, before any tensor is made
    dtype = getattr(torch, config.dtype)
    x = torch.randn(config.batch, config.channels, config.size, config.size, device=config.device, dtype=dtype)
    xg = x.detach().clone().requires_grad_(True)
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "max_pool2d": lambda t: F.max_pool2d(t, k, s, p),
        "avgpool_decomposition": lambda t: _decomposition(t, k, s, p),
        "softpool_fused": lambda t: poolswap.soft_pool2d(t, k, s, p),
    }
    if config.include_reference:
        variants["softpool_reference"] = lambda t: soft_pool_reference(t, [k, k], [s, s], [p, p], [1, 1], False)

    def forward_backward(f):
        def run():
            xg.grad = None
            f(xg).sum().backward()

        return run

    def time_both(f, n_threads: int) -> tuple[float, float]:
        with torch.no_grad():
            fwd = median_seconds(lambda: f(x), config.min_run_time, config.device, n_threads)
        return fwd, median_seconds(forward_backward(f), config.min_run_time, config.device, n_threads)

    rows = []
    for name, f in variants.items():
        fwd, fwd_bwd = time_both(f, threads)
        rows.append({"variant": name, "forward_ms": fwd * 1e3, "forward_backward_ms": fwd_bwd * 1e3,
                     "peak_memory_bytes": peak_memory(forward_backward(f), config.device)})
        logger.info("%-22s forward %8.2f ms   forward+backward %8.2f ms", name, fwd * 1e3, fwd_bwd * 1e3)
    base = {r["variant"]: r for r in rows}
    for r in rows:
        r["forward_vs_max"] = r["forward_ms"] / base["max_pool2d"]["forward_ms"]
        r["forward_backward_vs_max"] = r["forward_backward_ms"] / base["max_pool2d"]["forward_backward_ms"]
        r["decomposition_speedup_forward"] = base["avgpool_decomposition"]["forward_ms"] / r["forward_ms"]
        r["decomposition_speedup_forward_backward"] = (
            base["avgpool_decomposition"]["forward_backward_ms"] / r["forward_backward_ms"]
        )
    scaling = None
    if not config.device.startswith("cuda"):
        fused = base["softpool_fused"]
        one_fwd, one_fwd_bwd = time_both(variants["softpool_fused"], 1)
        scaling = {"threads": threads, "forward_1_thread_ms": one_fwd * 1e3,
                   "forward_backward_1_thread_ms": one_fwd_bwd * 1e3,
                   "forward_speedup": one_fwd * 1e3 / fused["forward_ms"],
                   "forward_backward_speedup": one_fwd_bwd * 1e3 / fused["forward_backward_ms"]}
        logger.info("fused kernel, 1 -> %d threads: forward %.2fx, forward+backward %.2fx", threads,
                    scaling["forward_speedup"], scaling["forward_backward_speedup"])
    return {
        "config": asdict(config),
        "threads": threads,
        "parallel_backend": cpu_parallel_backend() if not config.device.startswith("cuda") else None,
        "cpu_isa": cpu_isa() if not config.device.startswith("cuda") else None,
        "fused_thread_scaling": scaling,
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(0) if config.device.startswith("cuda") else "cpu",
        "kernels": {key: v.active for key, v in kernel_status().items()},
        "rows": rows,
    }


def format_op_table(result: dict) -> str:
    """A markdown table of one run."""
    c = result["config"]
    title = (f"SoftPool op, N={c['batch']} C={c['channels']} {c['size']}x{c['size']}, k{c['kernel']} s{c['stride']} "
             f"p{c['padding']}, {c['dtype']}, {result['device_name']}"
             f"{' (' + result['cpu_isa'] + ' kernels)' if result.get('cpu_isa') else ''}, {result['threads']} threads")
    header = ["variant", "forward ms", "fwd+bwd ms", "forward / max_pool2d", "fwd+bwd / max_pool2d",
              "decomposition / this (fwd)", "decomposition / this (fwd+bwd)"]
    rows = [[r["variant"], f"{r['forward_ms']:.2f}", f"{r['forward_backward_ms']:.2f}", f"{r['forward_vs_max']:.2f}x",
             f"{r['forward_backward_vs_max']:.2f}x", f"{r['decomposition_speedup_forward']:.2f}x",
             f"{r['decomposition_speedup_forward_backward']:.2f}x"] for r in result["rows"]]
    table = markdown_table(title, header, rows)
    scaling = result.get("fused_thread_scaling")
    if scaling and scaling["threads"] > 1:
        table += (f"\n\nfused kernel, 1 -> {scaling['threads']} threads ({result.get('parallel_backend')}): "
                  f"forward {scaling['forward_1_thread_ms']:.2f} -> "
                  f"{scaling['forward_1_thread_ms'] / scaling['forward_speedup']:.2f} ms "
                  f"({scaling['forward_speedup']:.2f}x), forward+backward {scaling['forward_backward_1_thread_ms']:.2f} -> "
                  f"{scaling['forward_backward_1_thread_ms'] / scaling['forward_backward_speedup']:.2f} ms "
                  f"({scaling['forward_backward_speedup']:.2f}x)")
    return table
