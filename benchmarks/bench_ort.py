#!/usr/bin/env python3
"""ONNX Runtime latency: original model vs converted (SoftPool) with poolswap's library vs the function body.

    python benchmarks/bench_ort.py                       # resnet18 and googlenet, 224x224, batch 1 and 32, CPU
    python benchmarks/bench_ort.py --models resnet18 --batches 1 --providers cuda
    python benchmarks/bench_ort.py --op-only             # the pool alone (resnet18's stem pool)

For each model: the torchvision model with random weights (timing does not
depend on them) exported as it is ("original"), the same model with every
MaxPool2d swapped for a SoftPool2d of the same geometry (as ``poolswap convert``
does by default), exported once and run with the custom-op library
("library"), and run without it through the ``fast`` and ``exact`` function
bodies. Prints median latencies and the two ratios the project aims at:
library / original (aim <= 1.05) and body / library (aim >= 1.5).

In a whole network the pools are a small share of the time, so body / library
is close to 1 there; ``--op`` also times the pool alone (one node: MaxPool as
"original", SoftPool with the library or a body), where the kernels differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def swap_max_pools(model):
    """Every nn.MaxPool2d becomes a SoftPool2d of the same geometry (beta 1)."""
    from torch import nn

    from poolswap.ops import SoftPool2d

    for name, module in list(model.named_modules()):
        if isinstance(module, nn.MaxPool2d):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, SoftPool2d(module.kernel_size, module.stride, module.padding, module.dilation,
                                             ceil_mode=module.ceil_mode))
    return model


def build(name: str):
    import torchvision

    if name == "googlenet":
        return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    return getattr(torchvision.models, name)(weights=None).eval()


def options(args):
    """Session options; without --spin, idle intra-op threads sleep instead of spinning.

    The sessions are timed round-robin in one process: spinning threads of the
    idle sessions would take cores from the one being timed (seen here on 2
    cores: medians twice the best times, and the order of the sessions mattered).
    """
    import onnxruntime

    so = onnxruntime.SessionOptions()
    if not args.spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def time_sessions(sessions: dict, x: np.ndarray, warmup: int, repeats: int, min_seconds: float) -> dict:
    """Median latency in milliseconds of each session, timed round-robin so load changes hit all alike."""
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for _ in range(warmup):
        for k, s in sessions.items():
            s.run(None, feeds[k])
    times: dict = {k: [] for k in sessions}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or (time.perf_counter() - start < min_seconds and rounds < 10 * repeats):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append(time.perf_counter() - t0)
        rounds += 1
    return {k: 1000.0 * statistics.median(v) for k, v in times.items()}


def op_models(folder: Path, channels: int, size: int) -> dict:
    """One-node models of resnet18's stem pool (3x3, stride 2, pad 1): MaxPool and SoftPool (both bodies)."""
    import onnx

    from poolswap.export import attach_function

    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    paths = {}
    for key, node, body in (
        ("original", onnx.helper.make_node("MaxPool", ["X"], ["Y"], **attrs), None),
        ("fast", onnx.helper.make_node("SoftPool", ["X"], ["Y"], domain="poolswap", beta=1.0, **attrs), "fast"),
        ("exact", onnx.helper.make_node("SoftPool", ["X"], ["Y"], domain="poolswap", beta=1.0, **attrs), "exact"),
    ):
        out = (size + 2 - 3) // 2 + 1
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "googlenet"], help="torchvision model names")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes")
    parser.add_argument("--providers", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's)")
    parser.add_argument("--spin", action="store_true",
                        help="let ORT's idle threads spin (its default; skews round-robin timings on few cores)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs at least")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="keep timing at least this long (up to 10x repeats)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--op", action="store_true",
                        help="also time the pool alone: resnet18's stem pool on a (batch, 64, 112, 112) input")
    parser.add_argument("--op-only", action="store_true", help="only the pool alone")
    args = parser.parse_args(argv)

    import torch

    from poolswap.deploy import session
    from poolswap.export import export_onnx

    torch.manual_seed(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="poolswap-bench-") as tmp:
        jobs = [] if args.op_only else list(args.models)
        if args.op or args.op_only:
            jobs.append("op:softpool3x3s2")
        for name in jobs:
            if name.startswith("op:"):
                paths = op_models(Path(tmp), 64, args.size // 2)
                size = (64, args.size // 2, args.size // 2)
            else:
                original = build(name)
                converted = swap_max_pools(build(name))
                converted.load_state_dict(original.state_dict())
                size = (3, args.size, args.size)
                paths = {
                    "original": export_onnx(original, Path(tmp) / f"{name}_original.onnx", input_size=size),
                    "fast": export_onnx(converted, Path(tmp) / f"{name}_fast.onnx", input_size=size, body="fast"),
                    "exact": export_onnx(converted, Path(tmp) / f"{name}_exact.onnx", input_size=size, body="exact"),
                }
            common = {"intra_op_threads": args.threads}
            sessions = {
                "original": session(paths["original"], args.providers, library=False, options=options(args), **common),
                "library": session(paths["fast"], args.providers, strict=True, options=options(args), **common),
                "fast body": session(paths["fast"], args.providers, library=False, options=options(args), **common),
                "exact body": session(paths["exact"], args.providers, library=False, options=options(args), **common),
            }
            provider = sessions["original"].get_providers()[0]
            for batch in args.batches:
                x = np.random.default_rng(batch).standard_normal((batch, *size)).astype(np.float32)
                ms = time_sessions(sessions, x, args.warmup, args.repeats, args.min_seconds)
                row = {
                    "model": name, "batch": batch, "size": args.size, "provider": provider,
                    **{f"{k} ms": round(v, 3) for k, v in ms.items()},
                    "library/original": round(ms["library"] / ms["original"], 3),
                    "fast body/library": round(ms["fast body"] / ms["library"], 3),
                    "exact body/library": round(ms["exact body"] / ms["library"], 3),
                }
                results.append(row)
                print(
                    f"{name:<10} batch {batch:>3} {provider:<22} original {ms['original']:9.2f} ms  "
                    f"library {ms['library']:9.2f} ms  fast body {ms['fast body']:9.2f} ms  "
                    f"exact body {ms['exact body']:9.2f} ms | library/original {row['library/original']:.3f}  "
                    f"fast body/library {row['fast body/library']:.3f}  exact body/library {row['exact body/library']:.3f}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
