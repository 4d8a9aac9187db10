"""``poolswap bench``: benchmarks with ratios against baselines measured in the same run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._atomic import atomic_write_text

NAME = "bench"
HELP = "benchmark the SoftPool op or whole models (ratios against baselines measured in the same run)"
ORDER = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", default="op", choices=["op", "model"],
                        help="op: SoftPool vs max_pool2d, the AvgPool decomposition and the reference; "
                        "model: a training step and inference, original vs converted")
    models = parser.add_argument_group("model")
    models.add_argument("--models", nargs="+", default=["torchvision:resnet50", "torchvision:googlenet"],
                        help="model specs for `bench model`")
    shape = parser.add_argument_group("problem")
    shape.add_argument("--batch", type=int, default=8, help="N (op and model)")
    shape.add_argument("--channels", type=int, default=64, help="C")
    shape.add_argument("--size", type=int, default=112, help="H = W (op and model)")
    shape.add_argument("--kernel", type=int, default=3, help="kernel size")
    shape.add_argument("--stride", type=int, default=2, help="stride")
    shape.add_argument("--padding", type=int, default=1, help="padding")
    shape.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"], help="dtype")
    shape.add_argument("--device", default="cpu", help="cpu or cuda")
    run = parser.add_argument_group("run")
    run.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per measurement")
    run.add_argument("--no-reference", action="store_true", help="skip the slow pure-PyTorch reference")
    run.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    run.add_argument("--plot", type=Path, default=None, help="also draw the ratios as a PNG chart here")


def run(args: argparse.Namespace) -> int:
    if args.what == "model":
        from ..bench.model import ModelBenchConfig, format_model_table, run_model_benchmark

        result = run_model_benchmark(ModelBenchConfig(models=args.models, batch=args.batch, size=args.size,
                                                      device=args.device, min_run_time=args.min_run_time))
        print(format_model_table(result))
        _write_outputs(result, args)
        return 0
    from ..bench.op import OpBenchConfig, format_op_table, run_op_benchmark

    config = OpBenchConfig(
        batch=args.batch, channels=args.channels, size=args.size, kernel=args.kernel, stride=args.stride,
        padding=args.padding, dtype=args.dtype, device=args.device, min_run_time=args.min_run_time,
        include_reference=not args.no_reference,
    )
    result = run_op_benchmark(config)
    print(format_op_table(result))
    _write_outputs(result, args)
    return 0


def _write_outputs(result: dict, args: argparse.Namespace) -> None:
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    if args.plot is not None:
        from ..bench.plot import plot_result

        plot_result(result, args.plot)
