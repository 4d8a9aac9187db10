"""The dispatched CPU kernels (what a wheel ships) against a ``-march=native`` build of the same sources.

Each build runs in a child process (two builds of one op cannot load into one
process); the rounds alternate between them so that a shared machine's load falls
on both alike, and each build's figure is its median over the rounds.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
from dataclasses import asdict

from ._table import markdown_table
from .op import OpBenchConfig

logger = logging.getLogger(__name__)

__all__ = ["format_builds_table", "run_builds_benchmark"]

BUILDS = {"dispatched": {}, "native": {"POOLSWAP_CPU_NATIVE": "1"}}


def _child(config: dict) -> dict:
    """In the child: time the fused op's forward and forward+backward on this process's build."""
    import torch

    import poolswap
    from poolswap.kernels import cpu_isa, kernel_status

    from ._timing import median_seconds, resolve_threads

    c = OpBenchConfig(**config)
    threads = resolve_threads(c.threads)
    x = torch.randn(c.batch, c.channels, c.size, c.size, dtype=getattr(torch, c.dtype))
    xg = x.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            poolswap.soft_pool2d(x, c.kernel, c.stride, c.padding)

    def forward_backward():
        xg.grad = None
        poolswap.soft_pool2d(xg, c.kernel, c.stride, c.padding).sum().backward()

    return {"isa": cpu_isa(), "kernel": kernel_status()["cpu"].detail, "threads": threads,
            "forward_ms": median_seconds(forward, c.min_run_time, "cpu", threads) * 1e3,
            "forward_backward_ms": median_seconds(forward_backward, c.min_run_time, "cpu", threads) * 1e3}


def run_builds_benchmark(config: OpBenchConfig, rounds: int = 3) -> dict:
    """Median forward / forward+backward ms of each build over ``rounds`` alternating child runs."""
    runs: dict[str, list[dict]] = {name: [] for name in BUILDS}
    for r in range(rounds):
        for name, extra in BUILDS.items():
            env = dict(os.environ, **extra)
            env.pop("POOLSWAP_CPU_ISA", None)
            result = subprocess.run([sys.executable, "-m", "poolswap.bench.builds", json.dumps(asdict(config))],
                                    env=env, capture_output=True, text=True)
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines()
                raise RuntimeError(f"the {name} build's run failed: {lines[-1] if lines else result.returncode}")
            runs[name].append(json.loads(result.stdout.strip().splitlines()[-1]))
            logger.info("round %d %-10s %s", r + 1, name, runs[name][-1])
    rows = []
    for name, results in runs.items():
        rows.append({"build": name, "isa": results[0]["isa"], "kernel": results[0]["kernel"],
                     "forward_ms": statistics.median(x["forward_ms"] for x in results),
                     "forward_backward_ms": statistics.median(x["forward_backward_ms"] for x in results)})
    native = rows[-1]
    for row in rows:
        row["forward_vs_native"] = row["forward_ms"] / native["forward_ms"]
        row["forward_backward_vs_native"] = row["forward_backward_ms"] / native["forward_backward_ms"]
    return {"config": asdict(config), "rounds": rounds, "threads": runs["native"][0]["threads"], "rows": rows,
            "runs": runs}


def format_builds_table(result: dict) -> str:
    c = result["config"]
    title = (f"fused SoftPool op, dispatched vs -march=native build: N={c['batch']} C={c['channels']} "
             f"{c['size']}x{c['size']}, k{c['kernel']} s{c['stride']} p{c['padding']}, {c['dtype']}, "
             f"{result['threads']} threads, median of {result['rounds']} alternating rounds")
    header = ["build", "ISA", "forward ms", "fwd+bwd ms", "forward / native", "fwd+bwd / native"]
    rows = [[r["build"], r["isa"], f"{r['forward_ms']:.3f}", f"{r['forward_backward_ms']:.3f}",
             f"{r['forward_vs_native']:.3f}", f"{r['forward_backward_vs_native']:.3f}"] for r in result["rows"]]
    return markdown_table(title, header, rows)


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
