"""SoftPool op benchmark: the fused kernel against the fastest max pooling on the machine, and against the floor.

Every variant runs in the same process, on the same threads, shape and dtype:

* the baselines a user could run instead: ``max_pool2d`` on NCHW (PyTorch's
  path with indices) and on channels-last input (its vectorised path), and on
  the CPU ONNX Runtime's ``MaxPool`` and ``AveragePool`` (one-node models, every
  graph optimisation on, NCHWc included; forward only);
* SoftPool: the fused kernel on NCHW and on channels-last input, the original
  two-AvgPool decomposition and the pure-PyTorch reference.

Ratios are against the **fastest** max pooling measured (named in the result).
The floor: each fused row's bytes moved (forward: the input read and the output
written; forward+backward adds grad_y read, the input read again and grad_x
written) and the time a copy of as many bytes takes in the same run, so
``floor fraction`` = that copy's time / the row's time (1.0: as fast as memory allows).
"""

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

__all__ = ["MAX_POOLS", "OpBenchConfig", "format_op_table", "run_op_benchmark"]

#: The max-pooling baselines; the fastest of those measured is every ratio's denominator.
MAX_POOLS = ("max_pool2d", "max_pool2d channels_last", "ort MaxPool")
#: The fused kernel's rows, with their floor columns.
FUSED = ("softpool_fused", "softpool_fused channels_last")


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
    include_ort: bool = True  # ONNX Runtime's MaxPool and AveragePool (CPU, float32, onnxruntime installed)
    threads: Optional[int] = None  # intra-op threads of every variant (default: torch's, all cores)


def _decomposition(x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """The original SoftPool formulation: avg_pool(x * e^x) / avg_pool(e^x) (no shift: overflows past ~88)."""
    e = torch.exp(x)
    return F.avg_pool2d(x * e, k, s, p) / F.avg_pool2d(e, k, s, p)


def _ort_pools(config: OpBenchConfig, threads: int, x: torch.Tensor) -> tuple[dict[str, Callable[[], object]], str]:
    """One-node ONNX Runtime sessions of MaxPool and AveragePool on ``x``'s shape; ({}, why) where they cannot run."""
    if config.device != "cpu" or config.dtype != "float32":
        return {}, "ONNX Runtime rows: CPU and float32 only"
    try:
        import onnx
        import onnxruntime
    except ImportError:
        return {}, "ONNX Runtime rows: onnxruntime is not installed (pip install 'poolswap[onnx]')"
    k, s, p = config.kernel, config.stride, config.padding
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL  # NCHWc layout included
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads leave the cores to torch
    feed = x.detach().cpu().contiguous().numpy()
    runs = {}
    for op in ("MaxPool", "AveragePool"):
        node = onnx.helper.make_node(op, ["X"], ["Y"], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
        graph = onnx.helper.make_graph([node], "pool", [onnx.helper.make_tensor_value_info(
            "X", onnx.TensorProto.FLOAT, list(feed.shape))], [onnx.helper.make_tensor_value_info(
                "Y", onnx.TensorProto.FLOAT, None)])
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20)])
        model.ir_version = 10
        sess = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        runs[f"ort {op}"] = (lambda sess=sess: sess.run(None, {"X": feed}))
    return runs, ""


def _bytes_moved(x: torch.Tensor, out_numel: int) -> tuple[int, int]:
    """Bytes the fused kernel must move at least: forward (x read, y written) and forward+backward
    (also grad_y read, x read again, grad_x written)."""
    size = x.element_size()
    forward = (x.numel() + out_numel) * size
    return forward, forward + (out_numel + 2 * x.numel()) * size


def run_op_benchmark(config: OpBenchConfig) -> dict:
    """Time forward and forward+backward of every variant, the bandwidth floor, and each row's ratio to the
    fastest max pooling.

    Every variant runs on the same ``threads``; on the CPU the fused kernel is also
    timed on one thread, for its speed-up from 1 thread to ``threads``.
    """
    import poolswap
    from poolswap.kernels import cpu_isa, cpu_parallel_backend, kernel_status
    from poolswap.ops import PoolGeometry, soft_pool_reference

    k, s, p = config.kernel, config.stride, config.padding
    # an impossible geometry is the user's error, said before any timing (and before max_pool2d says it its way)
    PoolGeometry.create(2, k, s, p).output_size((config.size, config.size))
    threads = resolve_threads(config.threads)
    resolve_device(config.device)  # a device that is not here: one line, before any tensor is made
    dtype = getattr(torch, config.dtype)
    x = torch.randn(config.batch, config.channels, config.size, config.size, device=config.device, dtype=dtype)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    inputs = {False: x, True: x_cl}
    grads = {cl: t.detach().clone().requires_grad_(True) for cl, t in inputs.items()}
    # name: (function of the input, channels-last input)
    variants: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], bool]] = {
        "max_pool2d": (lambda t: F.max_pool2d(t, k, s, p), False),
        "max_pool2d channels_last": (lambda t: F.max_pool2d(t, k, s, p), True),
        "avgpool_decomposition": (lambda t: _decomposition(t, k, s, p), False),
        "softpool_fused": (lambda t: poolswap.soft_pool2d(t, k, s, p), False),
        "softpool_fused channels_last": (lambda t: poolswap.soft_pool2d(t, k, s, p), True),
    }
    if config.include_reference:
        variants["softpool_reference"] = (lambda t: soft_pool_reference(t, [k, k], [s, s], [p, p], [1, 1], False),
                                          False)
    ort_runs, ort_skipped = _ort_pools(config, threads, x) if config.include_ort else ({}, "")
    if ort_skipped:
        logger.info("%s", ort_skipped)

    def forward_backward(f, channels_last: bool):
        xg = grads[channels_last]

        def run():
            xg.grad = None
            f(xg).sum().backward()

        return run

    def time_both(f, channels_last: bool, n_threads: int) -> tuple[float, float]:
        t = inputs[channels_last]
        with torch.no_grad():
            fwd = median_seconds(lambda: f(t), config.min_run_time, config.device, n_threads)
        return fwd, median_seconds(forward_backward(f, channels_last), config.min_run_time, config.device, n_threads)

    rows = []
    for name, (f, channels_last) in variants.items():
        fwd, fwd_bwd = time_both(f, channels_last, threads)
        rows.append({"variant": name, "forward_ms": fwd * 1e3, "forward_backward_ms": fwd_bwd * 1e3,
                     "peak_memory_bytes": peak_memory(forward_backward(f, channels_last), config.device)})
        logger.info("%-28s forward %8.2f ms   forward+backward %8.2f ms", name, fwd * 1e3, fwd_bwd * 1e3)
    for name, run in ort_runs.items():
        fwd = median_seconds(run, config.min_run_time, config.device, threads)
        rows.append({"variant": name, "forward_ms": fwd * 1e3, "forward_backward_ms": None, "peak_memory_bytes": None})
        logger.info("%-28s forward %8.2f ms", name, fwd * 1e3)
    base = {r["variant"]: r for r in rows}
    fastest_fwd = min((r for r in rows if r["variant"] in MAX_POOLS), key=lambda r: r["forward_ms"])["variant"]
    fastest_bwd = min((r for r in rows if r["variant"] in MAX_POOLS and r["forward_backward_ms"] is not None),
                      key=lambda r: r["forward_backward_ms"])["variant"]
    decomposition = base["avgpool_decomposition"]
    for r in rows:
        has_bwd = r["forward_backward_ms"] is not None
        r["forward_vs_max"] = r["forward_ms"] / base[fastest_fwd]["forward_ms"]
        r["forward_backward_vs_max"] = (r["forward_backward_ms"] / base[fastest_bwd]["forward_backward_ms"]
                                        if has_bwd else None)
        r["decomposition_speedup_forward"] = decomposition["forward_ms"] / r["forward_ms"]
        r["decomposition_speedup_forward_backward"] = (
            decomposition["forward_backward_ms"] / r["forward_backward_ms"] if has_bwd else None)
    # The floor: copies of as many bytes as each fused row must move, timed now.
    out_numel = F.max_pool2d(x[:1, :1], k, s, p).numel() * config.batch * config.channels
    bytes_fwd, bytes_fwd_bwd = _bytes_moved(x, out_numel)
    copies = {}
    for key, nbytes in (("forward", bytes_fwd), ("forward_backward", bytes_fwd_bwd)):
        n = max(1, nbytes // 2 // x.element_size())  # a copy reads n elements and writes n
        src, dst = torch.randn(n, device=config.device, dtype=dtype), torch.empty(n, device=config.device, dtype=dtype)
        seconds = median_seconds(lambda: dst.copy_(src), config.min_run_time, config.device, threads)
        copies[key] = {"bytes": nbytes, "copy_ms": seconds * 1e3, "gb_per_s": nbytes / seconds / 1e9}
    for name in FUSED:
        r = base[name]
        r["bytes_forward"], r["bytes_forward_backward"] = bytes_fwd, bytes_fwd_bwd
        r["floor_fraction_forward"] = copies["forward"]["copy_ms"] / r["forward_ms"]
        r["floor_fraction_forward_backward"] = copies["forward_backward"]["copy_ms"] / r["forward_backward_ms"]
    scaling = None
    if not config.device.startswith("cuda"):
        fused = base["softpool_fused"]
        one_fwd, one_fwd_bwd = time_both(variants["softpool_fused"][0], False, 1)
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
        "fastest_max": {"forward": fastest_fwd, "forward_backward": fastest_bwd},
        "bandwidth": copies,
        "skipped": [ort_skipped] if ort_skipped else [],
        "rows": rows,
    }


def _ratio(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _ms(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}"


def format_op_table(result: dict) -> str:
    """A markdown table of one run: every variant against the fastest max pooling, then the floor of the fused rows."""
    c = result["config"]
    fastest = result["fastest_max"]
    title = (f"SoftPool op, N={c['batch']} C={c['channels']} {c['size']}x{c['size']}, k{c['kernel']} s{c['stride']} "
             f"p{c['padding']}, {c['dtype']}, {result['device_name']}"
             f"{' (' + result['cpu_isa'] + ' kernels)' if result.get('cpu_isa') else ''}, {result['threads']} threads; "
             f"ratios against the fastest max pooling: {fastest['forward']} (forward), {fastest['forward_backward']} (fwd+bwd)")
    header = ["variant", "forward ms", "fwd+bwd ms", "forward / fastest max", "fwd+bwd / fastest max",
              "decomposition / this (fwd)", "decomposition / this (fwd+bwd)"]
    rows = [[r["variant"], _ms(r["forward_ms"]), _ms(r["forward_backward_ms"]), _ratio(r["forward_vs_max"]),
             _ratio(r["forward_backward_vs_max"]), _ratio(r["decomposition_speedup_forward"]),
             _ratio(r["decomposition_speedup_forward_backward"])] for r in result["rows"]]
    table = markdown_table(title, header, rows)
    bandwidth = result.get("bandwidth")
    if bandwidth:
        fwd, both = bandwidth["forward"], bandwidth["forward_backward"]
        floor_rows = [[r["variant"], f"{r['bytes_forward'] / 1e6:.1f}", f"{fwd['copy_ms']:.2f}",
                       f"{100 * r['floor_fraction_forward']:.0f}%", f"{r['bytes_forward_backward'] / 1e6:.1f}",
                       f"{both['copy_ms']:.2f}", f"{100 * r['floor_fraction_forward_backward']:.0f}%"]
                      for r in result["rows"] if "floor_fraction_forward" in r]
        table += "\n\n" + markdown_table(
            f"The floor: a copy of as many bytes as the fused kernel moves, same run ({fwd['gb_per_s']:.1f} GB/s "
            f"forward, {both['gb_per_s']:.1f} GB/s fwd+bwd)",
            ["variant", "fwd MB", "fwd copy ms", "fwd at floor", "fwd+bwd MB", "fwd+bwd copy ms", "fwd+bwd at floor"],
            floor_rows)
    for note in result.get("skipped", []):
        table += f"\n\n{note}"
    scaling = result.get("fused_thread_scaling")
    if scaling and scaling["threads"] > 1:
        table += (f"\n\nfused kernel, 1 -> {scaling['threads']} threads ({result.get('parallel_backend')}): "
                  f"forward {scaling['forward_1_thread_ms']:.2f} -> "
                  f"{scaling['forward_1_thread_ms'] / scaling['forward_speedup']:.2f} ms "
                  f"({scaling['forward_speedup']:.2f}x), forward+backward {scaling['forward_backward_1_thread_ms']:.2f} -> "
                  f"{scaling['forward_backward_1_thread_ms'] / scaling['forward_backward_speedup']:.2f} ms "
                  f"({scaling['forward_backward_speedup']:.2f}x)")
    return table
