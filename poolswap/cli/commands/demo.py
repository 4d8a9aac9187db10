"""``poolswap demo``: the whole pipeline on scikit-learn's embedded digits, in about a minute on a CPU."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ...errors import PoolswapError
from ..arguments import integer

NAME = "demo"
HELP = "train a small CNN on embedded digits, then convert, calibrate, fine-tune, export and run it in ORT"
DESCRIPTION = (
    "Trains a small CNN with max and average pooling on scikit-learn's handwritten digits (no download), "
    "saves it as an ordinary .pth checkpoint, then runs poolswap's pipeline on it: inspect, convert, calibrate, "
    "fine-tune by distillation, export to ONNX and run it in ONNX Runtime with the custom-op library. Prints a "
    "report and writes report.json and report.png into the output folder. Needs pip install 'poolswap[demo]'."
)
ORDER = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="poolswap-demo", metavar="OUT_DIR",
                        help="folder for the checkpoints, ONNX models, run directory and report")
    parser.add_argument("--overwrite", action="store_true", help="replace what an earlier demo wrote into OUT_DIR")
    parser.add_argument("--epochs", type=integer(1), default=2, help="fine-tune epochs of the converted network")
    parser.add_argument("--train-epochs", type=integer(1), default=6, help="training epochs of the original network")
    parser.add_argument("--seed", type=integer(0), default=0, help="seed of the data split, initialisation and order")
    parser.add_argument("--size", type=integer(8), default=16, help="the 8x8 digits are upsampled to SIZE x SIZE")
    parser.add_argument("--latency-runs", type=integer(1), default=50, help="timed ONNX Runtime runs per model and batch")


def run(args: argparse.Namespace) -> int:
    from ...demo import DemoConfig, format_report, next_steps, require_demo_extras, run_demo

    require_demo_extras()
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise PoolswapError(f"-o {out} is a file; give a folder for the demo's outputs")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise PoolswapError(f"-o {out} already holds files; pass --overwrite to replace them, or choose another folder")
    for noisy in ("onnxscript", "onnx_ir"):  # the exporter's optimiser logs every pass at INFO
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    config = DemoConfig(train_epochs=args.train_epochs, finetune_epochs=args.epochs, seed=args.seed, size=args.size,
                        latency_runs=args.latency_runs)
    report = run_demo(args.output, config)
    print(format_report(report))
    print(f"wrote {args.output}/report.json, {args.output}/report.png")
    print()
    print(next_steps())
    return 0
