"""ONNX Runtime benchmark: the original model vs the converted one, with poolswap's library and with each body.

For each model spec: the model with random weights (timing does not depend on
them) exported as it is ("original"), the same model converted as ``poolswap
convert`` does by default, exported once and run with the custom-op library
("library"), and run without it through the ``fast`` and ``exact`` function
bodies. The pool alone (``op``: resnet18's stem pool, MaxPool vs SoftPool) is
one more job, where the kernels differ most.

The sessions are timed round-robin, so that a change of load hits them all
alike, and their idle intra-op threads sleep instead of spinning (``spin=False``):
spinning threads of the idle sessions would take the cores of the one being timed.

Each row also holds a per-op profile (ORT's profiler, in sessions of their own, so
that profiling never slows the timed ones) of the original and the library
sessions: milliseconds per run in SoftPool nodes, in the other pools, in the layout
reorders ORT inserts around ops that do not take its blocked (NCHWc) layout, and in
the rest, with each op type's total, so the gap between them is explained in every run.
"""

from __future__ import annotations

import collections
import copy
import json
import logging
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ._table import markdown_table

logger = logging.getLogger(__name__)

__all__ = ["OP_JOB", "OrtBenchConfig", "format_ort_table", "run_ort_benchmark"]

OP_JOB = "op"
ONE_THREAD = "library 1 thread"
# Each variant: the exported file it runs, and how the session is made.
SESSIONS = {
    "original": ("original", {"library": False}),
    "library": ("fast", {"strict": True}),  # the node runs poolswap's kernel: the body is never used
    "fast body": ("fast", {"library": False}),
    "exact body": ("exact", {"library": False}),
}


@dataclass
class OrtBenchConfig:
    models: list[str] = field(default_factory=lambda: ["torchvision:resnet18", "torchvision:googlenet", OP_JOB])
    batches: list[int] = field(default_factory=lambda: [1, 32])
    size: int = 224
    providers: str = "cpu"
    threads: Optional[int] = None  # intra-op threads of every session (default: all cores, as torch counts them)
    spin: bool = False
    warmup: int = 3
    repeats: int = 10
    min_seconds: float = 2.0
    profile_runs: int = 10  # profiled runs per session (0: no profile)


def _session_options(config: OrtBenchConfig):
    import onnxruntime

    so = onnxruntime.SessionOptions()
    if not config.spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


#: How the per-op profile groups ORT's nodes by op type; everything else is "rest".
PROFILE_GROUPS = {"SoftPool": "softpool", "MaxPool": "pools", "AveragePool": "pools",
                  "ReorderInput": "reorders", "ReorderOutput": "reorders"}
PROFILED = ("original", "library")


def _profile_session(path: Path, how: dict, x: np.ndarray, config: OrtBenchConfig, threads: int, folder: Path) -> dict:
    """Milliseconds per run by group (softpool, pools, reorders, rest) and by op type, from ORT's profiler."""
    from ..deploy import session

    so = _session_options(config)
    so.enable_profiling = True
    so.profile_file_prefix = str(folder / "profile")
    sess = session(path, config.providers, options=so, intra_op_threads=threads, **how)
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(config.warmup):
        sess.run(None, feed)
    for _ in range(config.profile_runs):
        sess.run(None, feed)
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text(encoding="utf-8"))
    trace.unlink()
    # Only the runs after the warm-up ones: their model_run events, and the nodes that start after the last warm-up run.
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    timed = model_runs[config.warmup:]
    start = timed[0]["ts"] if timed else float("inf")
    ops: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time") and e["ts"] >= start:
            ops[e["args"]["op_name"]] += e["dur"]
    per_run = max(len(timed), 1) * 1000.0  # microseconds to milliseconds per run
    ms_ops = {op: us / per_run for op, us in ops.most_common()}
    run_ms = sum(e["dur"] for e in timed) / per_run
    groups = {"softpool": 0.0, "pools": 0.0, "reorders": 0.0, "rest": 0.0}
    for op, ms in ms_ops.items():
        groups[PROFILE_GROUPS.get(op, "rest")] += ms
    groups["between nodes"] = max(0.0, run_ms - sum(groups.values()))
    return {"run ms": run_ms, "ms": groups, "share": {k: v / run_ms for k, v in groups.items()} if run_ms else {},
            "ops ms": ms_ops}


def _time_sessions(sessions: dict, x: np.ndarray, config: OrtBenchConfig) -> dict:
    """Median latency in milliseconds of each session, timed round-robin."""
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for _ in range(config.warmup):
        for k, s in sessions.items():
            s.run(None, feeds[k])
    times: dict = {k: [] for k in sessions}
    start = time.perf_counter()
    rounds = 0
    while rounds < config.repeats or (time.perf_counter() - start < config.min_seconds and rounds < 10 * config.repeats):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append(time.perf_counter() - t0)
        rounds += 1
    return {k: 1000.0 * statistics.median(v) for k, v in times.items()}


def _op_models(folder: Path, channels: int, size: int) -> dict:
    """One-node models of resnet18's stem pool (3x3, stride 2, pad 1): MaxPool, and SoftPool with each body."""
    import onnx

    from ..export import attach_function

    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    out = (size + 2 - 3) // 2 + 1
    paths = {}
    for key, op, body in (("original", "MaxPool", None), ("fast", "SoftPool", "fast"), ("exact", "SoftPool", "exact")):
        node = (onnx.helper.make_node(op, ["X"], ["Y"], **attrs) if body is None else
                onnx.helper.make_node(op, ["X"], ["Y"], domain="poolswap", beta=1.0, **attrs))
        graph = onnx.helper.make_graph(
            [node], "pool",
            [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, ["batch", channels, size, size])],
            [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["batch", channels, out, out])],
        )
        opsets = [onnx.helper.make_opsetid("", 20)] + ([onnx.helper.make_opsetid("poolswap", 1)] if body else [])
        model = onnx.helper.make_model(graph, opset_imports=opsets)
        model.ir_version = 10
        if body:
            attach_function(model, body)
        paths[key] = folder / f"op_{key}.onnx"
        onnx.save(model, str(paths[key]))
    return paths


def _model_files(spec: str, folder: Path, size: int) -> tuple[dict, tuple[int, ...]]:
    """The original and the converted model of ``spec``, exported (converted: once per body)."""
    import torch

    from ..export import export_onnx
    from ..model import create_model
    from ..surgery import convert

    torch.manual_seed(0)
    original = create_model(spec).eval()
    converted = convert(copy.deepcopy(original)).eval()
    first_conv = next((m for m in original.modules() if isinstance(m, torch.nn.Conv2d)), None)
    input_size = (first_conv.in_channels if first_conv is not None else 3, size, size)  # the demo's network: 1
    stem = spec.replace(":", "_").replace("/", "_")
    paths = {
        "original": export_onnx(original, folder / f"{stem}_original.onnx", input_size=input_size),
        "fast": export_onnx(converted, folder / f"{stem}_fast.onnx", input_size=input_size, body="fast"),
        "exact": export_onnx(converted, folder / f"{stem}_exact.onnx", input_size=input_size, body="exact"),
    }
    return paths, input_size


def run_ort_benchmark(config: OrtBenchConfig) -> dict:
    """Rows per (model, batch): each variant's median latency and the ratios the project aims at."""
    import onnxruntime

    from ..deploy import session

    from ._timing import resolve_threads

    threads = resolve_threads(config.threads)
    rows = []
    provider = config.providers
    with tempfile.TemporaryDirectory(prefix="poolswap-bench-ort-") as tmp:
        for spec in config.models:
            if spec == OP_JOB:
                paths = _op_models(Path(tmp), 64, config.size // 2)
                input_size: tuple[int, ...] = (64, config.size // 2, config.size // 2)
            else:
                paths, input_size = _model_files(spec, Path(tmp), config.size)
            sessions = {
                variant: session(paths[file], config.providers, options=_session_options(config),
                                 intra_op_threads=threads, **how)
                for variant, (file, how) in SESSIONS.items()
            }
            if spec == OP_JOB and threads > 1:  # the library's kernel alone, 1 thread against `threads`
                sessions[ONE_THREAD] = session(paths["fast"], config.providers, options=_session_options(config),
                                               intra_op_threads=1, strict=True)
            provider = sessions["original"].get_providers()[0]
            for batch in config.batches:
                x = np.random.default_rng(batch).standard_normal((batch, *input_size)).astype(np.float32)
                ms = _time_sessions(sessions, x, config)
                row = {"model": spec, "batch": batch, "provider": provider, "ms": ms,
                       "library/original": ms["library"] / ms["original"],
                       "fast body/library": ms["fast body"] / ms["library"],
                       "exact body/library": ms["exact body"] / ms["library"]}
                if ONE_THREAD in ms:
                    row["library thread speedup"] = ms[ONE_THREAD] / ms["library"]
                if config.profile_runs > 0:
                    row["profile"] = {
                        variant: _profile_session(paths[SESSIONS[variant][0]], SESSIONS[variant][1], x, config, threads,
                                                  Path(tmp))
                        for variant in PROFILED
                    }
                logger.info("%s batch %d: %s", spec, batch, ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
                rows.append(row)
    return {"config": asdict(config), "onnxruntime": onnxruntime.__version__, "device_name": provider,
            "threads": threads, "rows": rows}


def format_ort_table(result: dict) -> str:
    c = result["config"]
    title = (f"ONNX Runtime {result['onnxruntime']}, {result['device_name']}, {c['size']}x{c['size']} "
             f"(op: the stem pool on its 64x{c['size'] // 2}x{c['size'] // 2} input), threads: {result['threads']}")
    header = ["model", "batch", *(f"{v} ms" for v in SESSIONS), "library / original", "fast body / library",
              "exact body / library"]
    rows = [[r["model"], str(r["batch"]), *(f"{r['ms'][v]:.2f}" for v in SESSIONS), f"{r['library/original']:.2f}x",
             f"{r['fast body/library']:.2f}x", f"{r['exact body/library']:.2f}x"] for r in result["rows"]]
    table = markdown_table(title, header, rows)
    profiled = [r for r in result["rows"] if "profile" in r]
    if profiled:
        groups = ("softpool", "pools", "reorders", "rest", "between nodes")
        prof_rows = [[r["model"], str(r["batch"]), v, f"{r['profile'][v]['run ms']:.2f}",
                      *(f"{r['profile'][v]['ms'][k]:.2f} ({100 * r['profile'][v]['share'].get(k, 0):.0f}%)" for k in groups)]
                     for r in profiled for v in PROFILED]
        table += "\n\n" + markdown_table("ORT profile, ms per run (share of the run)",
                                          ["model", "batch", "session", "run ms", *groups], prof_rows)
    scaling = [r for r in result["rows"] if "library thread speedup" in r]
    if scaling:
        table += "\n\nlibrary kernel alone (op), 1 -> {} threads: {}".format(result["threads"], ", ".join(
            f"batch {r['batch']} {r['ms'][ONE_THREAD]:.2f} -> {r['ms']['library']:.2f} ms "
            f"({r['library thread speedup']:.2f}x)" for r in scaling))
    return table
