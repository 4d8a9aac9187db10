"""Mean and spread over seeds, and the verdict rule: a difference only where the seeds' ranges do not overlap."""

from __future__ import annotations

import statistics
from typing import Sequence

__all__ = ["ONE_SEED", "spread", "verdict"]

ONE_SEED = "one seed"


def spread(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and count of ``values``."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def verdict(row: dict, baseline: dict) -> str:
    """``'higher'`` / ``'lower'`` when every seed of ``row`` is above / below every seed of ``baseline``
    (two :func:`spread` results), else ``'within spread'``; ``'one seed'`` where either has a single value
    (no spread to judge a difference by)."""
    if row["n"] < 2 or baseline["n"] < 2:
        return ONE_SEED
    if row["min"] > baseline["max"]:
        return "higher"
    if row["max"] < baseline["min"]:
        return "lower"
    return "within spread"
