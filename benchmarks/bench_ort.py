#!/usr/bin/env python3
"""ONNX Runtime benchmark (same as `poolswap bench ort`): original vs converted with the library and each body.

    python benchmarks/bench_ort.py                                    # resnet18, googlenet and the pool alone, CPU
    python benchmarks/bench_ort.py --models torchvision:resnet18 --batches 1 --providers cuda

Prints median latencies and the two ratios the project aims at: library /
original (aim <= 1.05) and body / library (aim >= 1.5). See poolswap/bench/ort.py.
"""

import sys

from poolswap.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "ort", *sys.argv[1:]]))
