#!/usr/bin/env python3
"""ONNX Runtime latency of the demo's network, original against SoftPool, per node kind and whole model.

    poolswap demo -o demo_out
    python benchmarks/demo_ort_latency.py demo_out [--library LIB.so] [--runs 300] [--clock cpu|wall]

One intra-op thread (as ``poolswap demo`` times it), batch 1 and 64, the two models
run in turn (ABAB...) so that drift and load hit both alike. ``--clock cpu`` times
each run by the process's CPU time: on a shared machine it does not count the time
other jobs held the core (it still counts their cache damage). ``--library``: a custom-op
library other than the one ``poolswap.deploy.library_path()`` builds (an older build, to
compare). Prints the medians and the ratio SoftPool / original.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _session(path: Path, library):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if library is not None:
        options.register_custom_ops_library(str(library))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="the folder `poolswap demo -o` wrote")
    parser.add_argument("--library", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
