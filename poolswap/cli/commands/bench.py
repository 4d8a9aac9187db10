"""``poolswap bench``: benchmarks with ratios against baselines measured in the same run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..._atomic import atomic_write_text, check_output
from ..arguments import integer, positive_number

NAME = "bench"
HELP = "benchmark the SoftPool op, whole models or ONNX Runtime sessions (ratios against baselines of the same run)"
ORDER = 70

DEFAULT_MODELS = {"model": ["torchvision:resnet50", "torchvision:googlenet"],
                  "ort": ["torchvision:resnet18", "torchvision:googlenet", "op"]}
DEFAULT_SIZE = {"op": 112, "model": 112, "ort": 224}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", default="op", choices=["op", "model", "ort"],
                        help="op: SoftPool vs max_pool2d, the AvgPool decomposition and the reference; "
                        "model: a training step and inference, original vs converted; "
                        "ort: ONNX Runtime latency, original vs converted with poolswap's library and with each body")
    models = parser.add_argument_group("model and ort")
    models.add_argument("--models", nargs="+", default=None,
                        help="model specs; `ort` also takes `op` (the stem pool alone) "
                        f"(default: {DEFAULT_MODELS['model']} for model, {DEFAULT_MODELS['ort']} for ort)")
    models.add_argument("--batches", type=integer(1), nargs="+", default=[1, 32], help="batch sizes for `ort`")
    models.add_argument("--providers", default="cpu", help="`ort`: cpu, cuda or auto")
    models.add_argument("--spin", action="store_true",
                        help="`ort`: let idle ORT threads spin (ORT's default; skews round-robin timings on few cores)")
    models.add_argument("--profile-runs", type=integer(0), default=10,
                        help="`ort`: runs of ORT's per-op profile per session and batch (time in SoftPool nodes, "
                        "reorders and the rest; 0: none)")
    shape = parser.add_argument_group("problem")
    shape.add_argument("--batch", type=integer(1), default=8, help="N (op and model)")
    shape.add_argument("--channels", type=integer(1), default=64, help="C")
    shape.add_argument("--size", type=integer(1), default=None, help="H = W (default: 112 for op and model, 224 for ort)")
    shape.add_argument("--kernel", type=integer(1), default=3, help="kernel size")
    shape.add_argument("--stride", type=integer(1), default=2, help="stride")
    shape.add_argument("--padding", type=integer(0), default=1, help="padding")
    shape.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"], help="dtype")
    shape.add_argument("--device", default="cpu", help="cpu or cuda")
    run = parser.add_argument_group("run")
    run.add_argument("--threads", type=integer(1), default=None,
                     help="intra-op threads of every variant (default: all cores, torch.get_num_threads())")
    run.add_argument("--min-run-time", type=positive_number, default=1.0, help="seconds of timing per measurement")
    run.add_argument("--no-reference", action="store_true", help="skip the slow pure-PyTorch reference")
    run.add_argument("--builds", action="store_true",
                     help="`op` on the CPU: the dispatched kernels (as a wheel ships them) against a -march=native "
                     "build of the same sources, each in its own process, alternating rounds")
    run.add_argument("--rounds", type=integer(1), default=3, help="`--builds`: alternating rounds per build")
    run.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    run.add_argument("--plot", type=Path, default=None, help="also draw the ratios as a PNG chart here")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --json or --plot file")


def run(args: argparse.Namespace) -> int:
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:  # checked before minutes of timing, not after
            check_output(path, overwrite=args.overwrite, flag=flag)
    size = args.size or DEFAULT_SIZE[args.what]
    models = args.models or DEFAULT_MODELS.get(args.what)
    if args.what == "ort":
        from ...bench.ort import OrtBenchConfig, format_ort_table, run_ort_benchmark

        result = run_ort_benchmark(OrtBenchConfig(models=models, batches=args.batches, size=size,
                                                  providers=args.providers, threads=args.threads, spin=args.spin,
                                                  min_seconds=args.min_run_time,
                                                  profile_runs=args.profile_runs))
        print(format_ort_table(result))
        _write_outputs(result, args)
        return 0
    if args.what == "model":
        from ...bench.model import ModelBenchConfig, format_model_table, run_model_benchmark

        result = run_model_benchmark(ModelBenchConfig(models=models, batch=args.batch, size=size,
                                                      device=args.device, min_run_time=args.min_run_time,
                                                      threads=args.threads))
        print(format_model_table(result))
        _write_outputs(result, args)
        return 0
    from ...bench.op import OpBenchConfig, format_op_table, run_op_benchmark

    config = OpBenchConfig(
        batch=args.batch, channels=args.channels, size=size, kernel=args.kernel, stride=args.stride,
        padding=args.padding, dtype=args.dtype, device=args.device, min_run_time=args.min_run_time,
        include_reference=not args.no_reference, threads=args.threads,
    )
    if args.builds:
        from ...bench.builds import format_builds_table, run_builds_benchmark
        from ...errors import PoolswapValueError

        if args.device != "cpu":
            raise PoolswapValueError("--builds compares CPU builds; drop --device or use --device cpu")
        if args.plot is not None:
            raise PoolswapValueError("--builds draws no chart; drop --plot (its table and --json hold the figures)")
        result = run_builds_benchmark(config, rounds=args.rounds)
        print(format_builds_table(result))
        _write_outputs(result, args)
        return 0
    result = run_op_benchmark(config)
    print(format_op_table(result))
    _write_outputs(result, args)
    return 0


def _write_outputs(result: dict, args: argparse.Namespace) -> None:
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    if args.plot is not None:
        from ...bench.plot import plot_result

        plot_result(result, args.plot)
