#!/usr/bin/env python3
"""SoftPool op benchmark (same as `poolswap bench op`): python benchmarks/bench_op.py [--batch 8 ...]."""

import sys

from poolswap.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "op", *sys.argv[1:]]))
