"""``poolswap demo``: the whole pipeline on an embedded dataset, from a trained checkpoint to ONNX Runtime.

Trains :func:`poolswap.demo.model.digits_cnn` on scikit-learn's digits, saves it as
an ordinary ``.pth`` state_dict, then runs poolswap's public API on that file:
inspect, convert, calibrate, fine-tune by distillation, save/load, export to
ONNX and run it in ONNX Runtime with the custom-op library. Everything is
seeded; on CPU the numbers repeat run to run (latencies aside).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .. import __version__
from .._atomic import atomic_path, atomic_write_text
from ..errors import PoolswapError
from ..train.loop import seed_everything
from .data import DigitsData, load_digits_data, require_demo_extras

__all__ = ["DemoConfig", "MODEL_SPEC", "run_demo", "format_report", "next_steps"]

logger = logging.getLogger(__name__)

MODEL_SPEC = "poolswap.demo.model:digits_cnn"

CHECKPOINT = "digits_cnn.pth"
CONVERTED = "digits_cnn_softpool.safetensors"
FINETUNED = "digits_cnn_softpool_finetuned.safetensors"
ONNX_ORIGINAL = "digits_cnn.onnx"
ONNX_CONVERTED = "digits_cnn_softpool.onnx"
RUN_DIR = "finetune"


@dataclass
class DemoConfig:
    """The demo's knobs; the defaults finish in about a minute on 2 CPU cores."""

    train_epochs: int = 6  # training of the original (max/avg pooling) network
    finetune_epochs: int = 2  # distillation of the converted network
    seed: int = 0
    size: int = 16  # the 8x8 digits are upsampled to size x size
    width: int = 16  # channels of the first conv block
    batch_size: int = 64
    calibrate_batches: int = 4
    latency_runs: int = 50  # timed ORT runs per model and batch size
    threads: int = 1  # torch CPU threads while the demo runs: the network is tiny, more threads only contend

    def validate(self) -> None:
        for name in ("train_epochs", "finetune_epochs", "size", "width", "batch_size", "calibrate_batches", "latency_runs", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PoolswapError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise PoolswapError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.size < 8:
            raise PoolswapError(f"size must be >= 8 (the digits are 8x8), got {self.size}")


@torch.no_grad()
def _accuracy(model: nn.Module, data: TensorDataset) -> float:
    model.eval()
    images, labels = data.tensors
    return float((model(images).argmax(1) == labels).float().mean())


def train_original(data: DigitsData, config: DemoConfig) -> tuple[nn.Module, list[dict]]:
    """Train the max/avg-pooling network from scratch (Adam, cosine); returns it and one row per epoch."""
    from .model import digits_cnn

    seed_everything(config.seed)
    model = digits_cnn(width=config.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader_gen = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(data.train, batch_size=config.batch_size, shuffle=True, generator=loader_gen)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.train_epochs * len(loader))
    history = []
    for epoch in range(config.train_epochs):
        model.train()
        total, count = 0.0, 0
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(labels)
            count += len(labels)
        row = {"epoch": epoch + 1, "train_loss": total / count, "test_top1": _accuracy(model, data.test)}
        logger.info("train original: epoch %d/%d loss %.4f test top-1 %.4f", epoch + 1, config.train_epochs,
                    row["train_loss"], row["test_top1"])
        history.append(row)
    return model.eval(), history


def _save_state_dict(model: nn.Module, path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return path


def _run_ort(sess, images: np.ndarray) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: images})[0]


def _median_ms(sess, images: np.ndarray, runs: int) -> float:
    name = sess.get_inputs()[0].name
    for _ in range(max(3, runs // 10)):
        sess.run(None, {name: images})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: images})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run_demo(out_dir: Union[str, os.PathLike], config: Optional[DemoConfig] = None) -> dict[str, Any]:
    """Run the demo into ``out_dir``; returns the report (also written as ``report.json`` and ``report.png``)."""
    require_demo_extras()
    config = config or DemoConfig()
    config.validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(Path(out_dir), config)
    finally:
        torch.set_num_threads(threads)


def _run(out: Path, config: DemoConfig) -> dict[str, Any]:
    import poolswap
    from ..deploy import session
    from ..model import build_from_checkpoint
    from ..train import FinetuneConfig, calibrate, evaluate, finetune

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stages: dict[str, float] = {}
    mark = [started]

    def done(stage: str) -> None:
        now = time.perf_counter()
        stages[stage] = now - mark[0]
        mark[0] = now
        logger.info("demo stage %s: %.1f s", stage, stages[stage])
    spec = MODEL_SPEC
    model_kwargs = {"width": config.width}

    # 1. an ordinary trained checkpoint
    data = load_digits_data(size=config.size, seed=config.seed)
    trained, train_history = train_original(data, config)
    checkpoint = _save_state_dict(trained, out / CHECKPOINT)
    logger.info("wrote %s", checkpoint)
    done("train")

    # 2. rebuild it from its spec, as `poolswap inspect/convert MODEL --checkpoint FILE` do
    original = build_from_checkpoint(spec, checkpoint, model_kwargs=model_kwargs)
    example = data.test.tensors[0][:2]
    sites = poolswap.inspect(original, example)
    logger.info("pooling sites:\n%s", sites.table())

    # 3. convert: every local max/avg pool becomes a SoftPool of the same geometry
    converted = poolswap.convert(original, example_input=example)
    swapped = [s.name for s in sites if s.action == "swap"]
    poolswap.save(converted, out / CONVERTED)
    done("inspect_convert")
    acc_original = evaluate(original, data.test).top1
    before = evaluate(converted, data.test, against=original)

    # 4. calibrate each site's temperature (no weight changes)
    cal_loader = DataLoader(data.train, batch_size=config.batch_size, shuffle=False)
    calibration = calibrate(converted, original, cal_loader, num_batches=config.calibrate_batches)
    logger.info("%s", calibration.summary())
    after_cal = evaluate(converted, data.test, against=original)
    done("calibrate")

    # 5. fine-tune by distillation from the original
    ft_config = FinetuneConfig(epochs=config.finetune_epochs, batch_size=config.batch_size, optimizer="adamw",
                               lr=2e-3, weight_decay=1e-4, alpha=0.5, temperature=2.0, seed=config.seed,
                               device="cpu", log_every=10)
    result = finetune(converted, teacher=original, train_data=data.train, val_data=data.test, config=ft_config,
                      run_dir=out / RUN_DIR, overwrite=True, progress=False)
    tuned = result.model.eval()
    after_ft = evaluate(tuned, data.test, against=original)
    poolswap.save(tuned, out / FINETUNED)
    done("finetune")

    # 6. export (from the saved file, as `poolswap export` does) and run in ONNX Runtime
    reloaded = poolswap.load(out / FINETUNED)
    images = data.test.tensors[0]
    with torch.no_grad():
        reload_diff = float((reloaded(images) - tuned(images)).abs().max())
        torch_logits = reloaded(images).numpy()
        original_logits = original(images).numpy()
    input_size = (1, config.size, config.size)
    # the exact body: the portable model stays finite at any calibrated beta (see report["ort"])
    poolswap.export_onnx(reloaded, out / ONNX_CONVERTED, input_size=input_size, class_names=data.classes, body="exact")
    poolswap.export_onnx(original, out / ONNX_ORIGINAL, input_size=input_size, class_names=data.classes)
    done("export")
    batch = images.numpy()
    sess = session(out / ONNX_CONVERTED, providers="cpu")
    library = sess.poolswap_library is not None
    ort_logits = _run_ort(sess, batch)
    body_logits = _run_ort(session(out / ONNX_CONVERTED, providers="cpu", library=False), batch)
    sess_original = session(out / ONNX_ORIGINAL, providers="cpu")
    ort_original_diff = float(np.abs(_run_ort(sess_original, batch) - original_logits).max())
    labels = data.test.tensors[1].numpy()

    # 7. latency in ORT, one thread, batch 1 and the training batch size
    latency: dict[str, dict[str, float]] = {}
    for label, path in (("original", out / ONNX_ORIGINAL), ("softpool", out / ONNX_CONVERTED)):
        timed = session(path, providers="cpu", intra_op_threads=1)
        latency[label] = {
            "batch_1": _median_ms(timed, batch[:1], config.latency_runs),
            f"batch_{config.batch_size}": _median_ms(timed, batch[: config.batch_size], config.latency_runs),
        }

    done("ort")

    report = {
        "poolswap_version": __version__,
        "config": asdict(config),
        "model_spec": spec,
        "model_kwargs": model_kwargs,
        "data": {"source": "sklearn.datasets.load_digits", "train": len(data.train), "test": len(data.test),
                 "input_size": list(input_size)},
        "sites": {"found": len(sites), "swapped": swapped,
                  "skipped": {s.name: s.reason for s in sites if s.action != "swap"}},
        "accuracy": {
            "original": acc_original,
            "converted": before.top1,
            "calibrated": after_cal.top1,
            "finetuned": after_ft.top1,
            "finetuned_ort": float((ort_logits.argmax(1) == labels).mean()),
        },
        "agreement": {"converted": before.agreement, "calibrated": after_cal.agreement,
                      "finetuned": after_ft.agreement},
        "calibration": {"betas": calibration.betas, "kl_before": calibration.kl_before,
                        "kl_after": calibration.kl_after},
        "history": {
            "original": train_history,
            "finetune": [{k: row.get(k) for k in ("epoch", "train_loss", "train_agreement", "val_top1", "val_agreement",
                                                  "beta_mean")} for row in result.history],
        },
        "ort": {
            "library": library,
            "max_abs_diff": float(np.abs(ort_logits - torch_logits).max()),
            "max_abs_diff_body": float(np.abs(body_logits - torch_logits).max()),
            "body": "exact",
            "max_abs_diff_original": ort_original_diff,
            "save_load_max_abs_diff": reload_diff,
        },
        "latency_ms": latency,
        "files": {"checkpoint": CHECKPOINT, "converted": CONVERTED, "finetuned": FINETUNED, "run_dir": RUN_DIR,
                  "onnx_original": ONNX_ORIGINAL, "onnx_softpool": ONNX_CONVERTED,
                  "report_json": "report.json", "report_png": "report.png"},
    }
    report["stages_s"] = stages
    report["wall_s"] = time.perf_counter() - started
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    plot_report(report, out / "report.png")
    return report


def plot_report(report: dict[str, Any], path: Union[str, os.PathLike]) -> Path:
    """Accuracy per epoch (training of the original, then fine-tuning) and ORT latency bars, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_acc, ax_lat = fig.subplots(1, 2)

    orig = report["history"]["original"]
    ft = report["history"]["finetune"]
    n = len(orig)
    ax_acc.plot([r["epoch"] for r in orig], [r["test_top1"] for r in orig], "o-", label="original (max/avg pool)")
    acc = report["accuracy"]
    ax_acc.plot([n, n], [acc["converted"], acc["calibrated"]], "s", color="tab:red", label="converted / calibrated")
    ft_points = [(n + r["epoch"], r["val_top1"]) for r in ft if r.get("val_top1") is not None]
    if ft_points:
        xs, ys = zip(*([(n, acc["calibrated"])] + ft_points))
        ax_acc.plot(xs, ys, "o-", color="tab:green", label="SoftPool fine-tune")
    ax_acc.axvline(n + 0.5 if not ft_points else n, color="grey", lw=0.8, ls=":")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test top-1")
    ax_acc.set_title("accuracy per epoch")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="lower right", fontsize=8)

    latency = report["latency_ms"]
    batches = list(next(iter(latency.values())))
    width = 0.38
    xs = np.arange(len(batches))
    for i, (label, values) in enumerate(latency.items()):
        bars = ax_lat.bar(xs + (i - 0.5) * width, [values[b] for b in batches], width, label=label)
        ax_lat.bar_label(bars, fmt="%.3g", fontsize=8)
    ax_lat.set_xticks(xs, [b.replace("_", " ") for b in batches])
    ax_lat.set_ylabel("median latency (ms), ONNX Runtime CPU, 1 thread")
    ax_lat.set_title("latency")
    ax_lat.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def _pct(value: Optional[float]) -> str:
    return "   n/a" if value is None else f"{value:6.1%}"


def format_report(report: dict[str, Any]) -> str:
    """The compact text report ``poolswap demo`` prints."""
    acc, agree, ort, lat = report["accuracy"], report["agreement"], report["ort"], report["latency_ms"]
    betas = ", ".join(f"{k}={v:.3g}" for k, v in report["calibration"]["betas"].items())
    lines = [
        f"poolswap demo: {report['model_spec']} on digits ({report['data']['train']} train / "
        f"{report['data']['test']} test, {'x'.join(map(str, report['data']['input_size']))})",
        f"swapped {len(report['sites']['swapped'])} of {report['sites']['found']} pooling sites: "
        f"{', '.join(report['sites']['swapped'])}",
        "",
        "                         test top-1   agreement with original",
        f"  original (max/avg)       {_pct(acc['original'])}",
        f"  converted, untrained     {_pct(acc['converted'])}       {_pct(agree['converted'])}",
        f"  after calibrate          {_pct(acc['calibrated'])}       {_pct(agree['calibrated'])}   betas {betas}",
        f"  after fine-tune          {_pct(acc['finetuned'])}       {_pct(agree['finetuned'])}",
        f"  fine-tuned, in ORT       {_pct(acc['finetuned_ort'])}",
        "",
        f"ORT vs PyTorch max abs diff: {ort['max_abs_diff']:.2e} "
        f"({'poolswap custom-op library' if ort['library'] else 'function body: library not found'}); "
        f"function body {ort['max_abs_diff_body']:.2e}",
    ]
    for batch in next(iter(lat.values())):
        o, s = lat["original"][batch], lat["softpool"][batch]
        lines.append(f"ORT latency {batch.replace('_', ' '):>9}: original {o:.3f} ms, SoftPool {s:.3f} ms "
                     f"({s / o:.2f}x)")
    lines.append(f"wall time {report['wall_s']:.1f} s")
    return "\n".join(lines)


def next_steps(out_dir: Union[str, os.PathLike, None] = None) -> str:
    """The commands that do the same on the user's own checkpoint (placeholders in capitals)."""
    return "\n".join([
        "The same on your own checkpoint (MODEL: timm:NAME, torchvision:NAME or package.module:factory):",
        "  poolswap inspect MODEL --checkpoint CKPT.pth",
        "  poolswap convert MODEL --checkpoint CKPT.pth -o converted.safetensors",
        "  poolswap finetune converted.safetensors --data DATA_DIR --calibrate 8 --epochs 2 -o runs/ft",
        "  poolswap export runs/ft/best.safetensors -o model.onnx --input-size 3,224,224",
        "  poolswap validate model.onnx --against runs/ft/best.safetensors --data DATA_DIR/val",
        "(DATA_DIR holds train/ and val/ ImageFolder trees.)",
    ])
