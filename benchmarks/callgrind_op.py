#!/usr/bin/env python3
"""Instructions per input element of the fused SoftPool forward and of max_pool2d, counted by callgrind.

    python benchmarks/callgrind_op.py [--batch 1 --channels 64 --size 112 --kernel 3 --stride 2 --padding 1]

Runs itself under ``valgrind --tool=callgrind`` (valgrind must be installed), on one
thread, calling each op ``--calls`` times on the same float32 input (one run for
NCHW, one for channels-last), then reads each op's inclusive instruction count from
``callgrind_annotate --inclusive=yes``: the kernel's own function for SoftPool
(``soft_pool_cpu``: no Python, no dispatcher) and the dispatcher entry
``at::_ops::max_pool2d::call`` for max pooling. Instructions are not time (a vector
instruction does 8 lanes' work, memory stalls are not counted) but they do not depend on
the machine's load, and they say where an exponential-bound kernel stands: the vector
exponential alone (``exp_nonpositive``) is about 2 instructions per element.
Valgrind does not decode AVX-512, so the extension is counted as built without it (AVX2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: function (a regular expression on callgrind_annotate's names) -> what it counts
FUNCTIONS = {
    "softpool_fused": r"poolswap::\(anonymous namespace\)::soft_pool_cpu\(",
    "max_pool2d": r"at::_ops::max_pool2d::call\(",
}


def _inner(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    import poolswap

    torch.set_num_threads(1)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    if args.layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    k, s, p = args.kernel, args.stride, args.padding
    with torch.no_grad():
        poolswap.soft_pool2d(x, k, s, p)  # loads the extension: not counted
        F.max_pool2d(x, k, s, p)
        # Instrumentation is off until here (--instr-atstart=no); the outer process turns it on.
        ready, go = Path(args.handshake + ".ready"), Path(args.handshake + ".go")
        ready.write_text(str(os.getpid()))
        while not go.exists():
            time.sleep(0.05)
        for _ in range(args.calls):
            poolswap.soft_pool2d(x, k, s, p)
            F.max_pool2d(x, k, s, p)


def _inclusive(annotate_output: str, pattern: str) -> int:
    """The largest inclusive Ir of a function matching ``pattern`` (a name may appear once per object file)."""
    best = 0
    for line in annotate_output.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(\(\s*[\d.]+%\)\s+)?(.*)", line)
        if m and re.search(pattern, m.group(3)):
            best = max(best, int(m.group(1).replace(",", "")))
    return best


def _count(args: argparse.Namespace, layout: str, folder: Path) -> str:
    """callgrind_annotate's inclusive listing of ``--calls`` calls of the ops on ``layout`` input.

    Valgrind runs the Python start-up (torch's import, the extension's load) without
    instrumentation, which would take most of the time; it is turned on for the calls only.
    """
    out = folder / f"callgrind.{layout}.out"
    handshake = str(folder / layout)
    inner = [sys.executable, __file__, "--inner", "--layout", layout, "--batch", str(args.batch),
             "--channels", str(args.channels), "--size", str(args.size), "--kernel", str(args.kernel),
             "--stride", str(args.stride), "--padding", str(args.padding), "--calls", str(args.calls),
             "--handshake", handshake]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                             *inner], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = Path(handshake + ".ready")
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit(f"callgrind_op: the {layout} run ended before its calls (exit {proc.returncode})")
        time.sleep(0.2)
    subprocess.run(["callgrind_control", "--instr=on", str(proc.pid)], check=True, stdout=subprocess.DEVNULL)
    Path(handshake + ".go").write_text("")
    if proc.wait() != 0:
        raise SystemExit(f"callgrind_op: valgrind exited with {proc.returncode}")
    return subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)], check=True,
                          capture_output=True, text=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--padding", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2, help="calls of each op per layout")
    parser.add_argument("--layout", choices=["nchw", "channels_last", "both"], default="both")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--handshake", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        _inner(args)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("callgrind_op: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    # Valgrind 3.19 does not decode AVX-512, and the extension is built with -march=native: count a
    # build without it (an AVX2 build of the same source: the kernel's vectors are 8 floats wide either way),
    # through a compiler wrapper, which gives the build a cache entry of its own.
    folder = Path(tempfile.gettempdir()) / "poolswap-callgrind-cxx"  # a fixed path: the build's key holds it
    folder.mkdir(exist_ok=True)
    wrapper = folder / "c++"
    cxx = os.environ.get("CXX") or shutil.which("c++") or "c++"
    wrapper.write_text(f'#!/bin/sh\nexec {cxx} "$@" -mno-avx512f\n')
    wrapper.chmod(0o755)
    os.environ["CXX"] = str(wrapper)
    import poolswap.kernels

    poolswap.kernels.build_cpu()  # compile outside valgrind
    results = {}
    elements = args.batch * args.channels * args.size * args.size
    layouts = ["nchw", "channels_last"] if args.layout == "both" else [args.layout]
    with tempfile.TemporaryDirectory(prefix="poolswap-callgrind-") as tmp:
        for layout in layouts:
            listing = _count(args, layout, Path(tmp))
            for name, pattern in FUNCTIONS.items():
                total = _inclusive(listing, pattern)
                results[f"{name} {layout}"] = {"instructions": total,
                                               "per_input_element": total / args.calls / elements}
    shape = f"N={args.batch} C={args.channels} {args.size}x{args.size} k{args.kernel} s{args.stride} p{args.padding}"
    print(f"callgrind, 1 thread, float32, {shape}: instructions per input element")
    for key, value in results.items():
        print(f"  {key:32s} {value['per_input_element']:7.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"shape": shape, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
