#!/usr/bin/env python3
"""Forward times of the fused SoftPool and the max-pooling baselines, interleaved, best of many rounds.

    python benchmarks/interleaved_op.py [--threads 2] [--rounds 40] [--backward] [--shapes 8x64x112:3:2:1 ...]

For a machine shared with other work: each round times one call of every variant in
turn (after a warm-up), so a burst of load hits them all alike, and the table gives
each variant's fastest round (the least disturbed) next to its median. Ratios are
against the fastest max pooling of the same shape. ``--clock cpu`` (with ``--threads 1``,
where every variant runs in the calling thread, ONNX Runtime included) times the CPU the
thread used instead of the wall clock: time spent descheduled by other work does not count.
``--backward`` times forward+backward instead (PyTorch's variants only: ONNX Runtime has no
backward), with a copy of as many bytes as the fused forward+backward moves. `poolswap bench op`
is the full benchmark (the floor, thread scaling); this is the part made robust to load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _variants(x, k: int, s: int, p: int, threads: int, backward: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    import poolswap
    from poolswap.bench.op import OpBenchConfig, _ort_pools

    x_cl = x.contiguous(memory_format=torch.channels_last)
    out = F.max_pool2d(x[:1, :1], k, s, p).numel() * x.shape[0] * x.shape[1]
    if backward:
        # the floor: x read twice, y written, grad_y read, grad_x written
        moved = 3 * x.numel() + 2 * out
        src, dst = torch.randn(moved // 2), torch.empty(moved // 2)
        grad = torch.randn(x.shape[0], x.shape[1], *F.max_pool2d(x[:1, :1], k, s, p).shape[2:])

        def step(fn, inp, grad_y):
            leaf = inp.detach().requires_grad_(True)

            def run():
                leaf.grad = None
                fn(leaf).backward(grad_y)
            return run

        grad_cl = grad.contiguous(memory_format=torch.channels_last)
        return {
            "copy of the forward+backward's bytes": lambda: dst.copy_(src),
            "max_pool2d": step(lambda t: F.max_pool2d(t, k, s, p), x, grad),
            "max_pool2d channels_last": step(lambda t: F.max_pool2d(t, k, s, p), x_cl, grad_cl),
            "softpool_fused": step(lambda t: poolswap.soft_pool2d(t, k, s, p), x, grad),
            "softpool_fused channels_last": step(lambda t: poolswap.soft_pool2d(t, k, s, p), x_cl, grad_cl),
        }
    config = OpBenchConfig(batch=x.shape[0], channels=x.shape[1], size=x.shape[2], kernel=k, stride=s, padding=p)
    ort, _ = _ort_pools(config, threads, x)
    # the floor: a copy of as many bytes as the fused forward moves (x read, y written)
    moved = x.numel() + out
    src, dst = torch.randn(moved // 2), torch.empty(moved // 2)
    exps = torch.empty_like(x)
    return {
        "copy of the forward's bytes": lambda: dst.copy_(src),
        # one vector exponential per input, PyTorch's (its x read, its result written): the exp's floor
        "torch.exp of the input": lambda: torch.exp(x, out=exps),
        "max_pool2d": lambda: F.max_pool2d(x, k, s, p),
        "max_pool2d channels_last": lambda: F.max_pool2d(x_cl, k, s, p),
        "ort MaxPool": ort.get("ort MaxPool"),
        "softpool_fused": lambda: poolswap.soft_pool2d(x, k, s, p),
        "softpool_fused channels_last": lambda: poolswap.soft_pool2d(x_cl, k, s, p),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--backward", action="store_true", help="time forward+backward (PyTorch's variants)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the calling thread's CPU time (needs --threads 1)")
    parser.add_argument("--shapes", nargs="+", default=["8x64x112:3:2:1", "8x64x112:3:1:1", "8x512x14:3:2:1",
                                                         "8x512x7:3:1:1"],
                        help="NxCxSIZE:kernel:stride:padding")
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu times the calling thread only: use it with --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    import torch

    torch.set_num_threads(args.threads)
    what = "CPU time of the calling thread" if args.clock == "cpu" else "wall time"
    timed = "forward+backward" if args.backward else "forward"
    print(f"{timed} ms ({what}), float32, {args.threads} threads, best (median) of {args.rounds} interleaved rounds")
    print()
    print("| shape | variant | best ms | median ms | best / fastest max |")
    print("|---|---|---:|---:|---:|")
    with torch.set_grad_enabled(args.backward):
        for shape in args.shapes:
            dims, k, s, p = shape.split(":")
            n, c, size = (int(v) for v in dims.split("x"))
            x = torch.randn(n, c, size, size)
            variants = {name: f for name, f in _variants(x, int(k), int(s), int(p), args.threads, args.backward).items()
                        if f}
            times: dict = {name: [] for name in variants}
            for f in variants.values():
                f()
            for _ in range(args.rounds):
                for name, f in variants.items():
                    t0 = clock()
                    f()
                    times[name].append(clock() - t0)
            best = {name: min(v) * 1e3 for name, v in times.items()}
            fastest = min((name for name in best if "max" in name.lower()), key=best.get)
            for name in variants:
                print(f"| {n}x{c}x{size}x{size} k{k}s{s}p{p} | {name} | {best[name]:.3f} | "
                      f"{statistics.median(times[name]) * 1e3:.3f} | {best[name] / best[fastest]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
