#!/usr/bin/env python3
"""ONNX Runtime latency of the demo's network, original against SoftPool, per node kind and whole model.

    poolswap demo -o demo_out
    python benchmarks/demo_ort_latency.py demo_out [--library LIB.so] [--runs 300] [--clock cpu|wall] [--profile]

One intra-op thread (as ``poolswap demo`` times it), batch 1 and 64, the two models
run in turn (ABAB...) so that drift and load hit both alike. ``--clock cpu`` times
each run by the process's CPU time: on a shared machine it does not count the time
other jobs held the core (it still counts their cache damage). ``--library``: a custom-op
library other than the one ``poolswap.deploy.library_path()`` builds (an older build, to
compare). Prints the medians and the ratio SoftPool / original. ``--profile``: then each
model's nodes by kind, from ONNX Runtime's own profiler (microseconds of kernel time per
run, averaged over --runs runs; the reorders ORT inserts around nodes that leave its
blocked layout show up as ReorderInput / ReorderOutput).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _session(path: Path, library, profile_prefix=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if library is not None:
        options.register_custom_ops_library(str(library))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="the folder `poolswap demo -o` wrote")
    parser.add_argument("--library", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--profile", action="store_true", help="then each model's kernel time by node kind")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from poolswap.deploy import library_path

    library = args.library or library_path()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    models = {"original": _session(args.demo / "digits_cnn.onnx", None),
              "softpool": _session(args.demo / "digits_cnn_softpool.onnx", library)}
    rng = np.random.default_rng(0)
    print(f"library {library}; 1 thread; {args.runs} runs each, alternating; {args.clock} time; median ms")
    for batch in (1, 64):
        x = rng.random((batch, 1, 16, 16), dtype=np.float32)
        times = {name: [] for name in models}
        for name, sess in models.items():
            for _ in range(10):
                sess.run(None, {"input": x})
        for _ in range(args.runs):
            for name, sess in models.items():
                start = clock()
                sess.run(None, {"input": x})
                times[name].append(clock() - start)
        med = {name: 1000 * statistics.median(v) for name, v in times.items()}
        print(f"batch {batch:3d}: original {med['original']:.3f} ms, SoftPool {med['softpool']:.3f} ms, "
              f"ratio {med['softpool'] / med['original']:.2f}")
    if args.profile:
        _profile(args.demo, library, args.runs, rng)
    return 0


def _profile(demo: Path, library, runs: int, rng) -> None:
    """Kernel time per run by node kind, from ONNX Runtime's profiler, for each model and batch."""
    import json
    import tempfile
    from collections import defaultdict

    print(f"kernel time by node kind, microseconds per run (ONNX Runtime's profiler, {runs} runs)")
    with tempfile.TemporaryDirectory() as folder:
        for batch in (1, 64):
            x = rng.random((batch, 1, 16, 16), dtype=np.float32)
            for name, file, lib in (("original", "digits_cnn.onnx", None),
                                    ("softpool", "digits_cnn_softpool.onnx", library)):
                sess = _session(demo / file, lib, profile_prefix=str(Path(folder) / f"{name}_{batch}"))
                for _ in range(runs):
                    sess.run(None, {"input": x})
                with open(sess.end_profiling()) as handle:
                    events = json.load(handle)
                by_kind = defaultdict(float)
                for event in events:
                    if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                        by_kind[event["args"]["op_name"]] += event["dur"] / runs
                kinds = ", ".join(f"{kind} {us:.1f}" for kind, us in sorted(by_kind.items(), key=lambda kv: -kv[1]))
                print(f"batch {batch:3d} {name}: total {sum(by_kind.values()):.1f}: {kinds}")


if __name__ == "__main__":
    raise SystemExit(main())
