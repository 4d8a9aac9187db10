"""Benchmarks behind ``poolswap bench``: each reports ratios against baselines measured in the same run."""
