"""A PNG chart of a benchmark result (matplotlib, the ``demo`` extra)."""

from __future__ import annotations

import os
from typing import Union

from .._atomic import atomic_path
from ..errors import PoolswapError

__all__ = ["plot_result"]


def _bars(result: dict) -> tuple[str, list[str], dict[str, list[float]]]:
    rows = result["rows"]
    if "variant" in rows[0]:
        labels = [r["variant"] for r in rows]
        nan = float("nan")  # ONNX Runtime rows have no backward
        series = {"forward / fastest max": [r["forward_vs_max"] for r in rows],
                  "fwd+bwd / fastest max": [nan if r["forward_backward_vs_max"] is None else r["forward_backward_vs_max"]
                                            for r in rows]}
        fastest = result.get("fastest_max", {}).get("forward", "max_pool2d")
        return f"time relative to the fastest max pooling ({fastest}; lower is faster)", labels, series
    if "library/original" in rows[0]:
        labels = [f"{r['model']} (batch {r['batch']})" for r in rows]
        series = {key: [r[key] for r in rows] for key in ("library/original", "fast body/library", "exact body/library")}
        return "latency ratio (library/original: lower is better)", labels, series
    labels = [r["model"] for r in rows]
    series = {"train step": [r["train_step_ratio"] for r in rows], "inference": [r["inference_ratio"] for r in rows]}
    return "SoftPool time / original time", labels, series


def plot_result(result: dict, path: Union[str, "os.PathLike[str]"]) -> None:
    """Grouped bars of the ratios of an op, model or ONNX Runtime benchmark, written atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PoolswapError("the chart needs matplotlib: pip install 'poolswap[demo]'") from exc
    ylabel, labels, series = _bars(result)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(labels), 3.6))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        positions = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(positions, values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{result.get('device_name', '')}, {result.get('threads', '?')} threads", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
