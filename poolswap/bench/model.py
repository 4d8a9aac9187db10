"""Model benchmark: one training step and one inference pass, original vs converted to SoftPool."""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch

from ..device import resolve_device
from ._timing import median_seconds, peak_memory, resolve_threads
from ._table import markdown_table

logger = logging.getLogger(__name__)

__all__ = ["ModelBenchConfig", "run_model_benchmark", "format_model_table"]


@dataclass
class ModelBenchConfig:
    models: list[str] = field(default_factory=lambda: ["torchvision:resnet50", "torchvision:googlenet"])
    batch: int = 8
    size: int = 112
    device: str = "cpu"
    min_run_time: float = 1.0
    threads: Optional[int] = None  # intra-op threads of every model (default: torch's, all cores)


def _logits(out):
    """googlenet/inception return (logits, aux...) tuples in training mode."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _measure(model: torch.nn.Module, x: torch.Tensor, config: ModelBenchConfig, threads: int) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    target = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(_logits(model(x)), target)
        loss.backward()
        optimizer.step()

    def infer():
        with torch.no_grad():
            model(x)

    model.train()
    train = median_seconds(train_step, config.min_run_time, config.device, threads)
    train_peak = peak_memory(train_step, config.device)
    model.eval()
    inference = median_seconds(infer, config.min_run_time, config.device, threads)
    return {"train_step_ms": train * 1e3, "train_peak_bytes": train_peak, "inference_ms": inference * 1e3}


def run_model_benchmark(config: ModelBenchConfig) -> dict:
    """Rows per model: original and converted timings, and their ratios."""
    from ..model import create_model
    from ..surgery import convert

    threads = resolve_threads(config.threads)
    resolve_device(config.device)  # a device that is not here: one line, before any model is built
    rows = []
    for spec in config.models:
        torch.manual_seed(0)
        original = create_model(spec).to(config.device)
        converted = convert(copy.deepcopy(original)).to(config.device)
        x = torch.randn(config.batch, 3, config.size, config.size, device=config.device)
        a = _measure(original, x, config, threads)
        b = _measure(converted, x, config, threads)
        row = {"model": spec, "original": a, "converted": b,
               "train_step_ratio": b["train_step_ms"] / a["train_step_ms"],
               "inference_ratio": b["inference_ms"] / a["inference_ms"]}
        if a["train_peak_bytes"]:
            row["train_peak_ratio"] = b["train_peak_bytes"] / a["train_peak_bytes"]
        logger.info("%s: train step %.1f -> %.1f ms, inference %.1f -> %.1f ms", spec, a["train_step_ms"],
                    b["train_step_ms"], a["inference_ms"], b["inference_ms"])
        rows.append(row)
    return {"config": asdict(config), "threads": threads, "torch": torch.__version__,
            "device_name": torch.cuda.get_device_name(0) if config.device.startswith("cuda") else "cpu", "rows": rows}


def format_model_table(result: dict) -> str:
    c = result["config"]
    title = f"Models, batch {c['batch']}, {c['size']}x{c['size']}, {result['device_name']}, {result['threads']} threads"
    header = ["model", "train step ms (original -> SoftPool)", "ratio", "inference ms (original -> SoftPool)", "ratio",
              "peak train memory ratio"]
    rows = [[r["model"], f"{r['original']['train_step_ms']:.1f} -> {r['converted']['train_step_ms']:.1f}",
             f"{r['train_step_ratio']:.2f}x",
             f"{r['original']['inference_ms']:.1f} -> {r['converted']['inference_ms']:.1f}",
             f"{r['inference_ratio']:.2f}x",
             f"{r['train_peak_ratio']:.2f}x" if "train_peak_ratio" in r else "n/a (CPU)"] for r in result["rows"]]
    return markdown_table(title, header, rows)
