"""``poolswap export``: a converted checkpoint to ONNX with poolswap::SoftPool nodes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ...errors import PoolswapError
from ...export.defaults import BODIES, DEFAULT_BODY, DEFAULT_OPSET

NAME = "export"
HELP = "export a converted checkpoint to ONNX (one poolswap::SoftPool node per SoftPool, a portable body)"
ORDER = 50

logger = logging.getLogger(__name__)


def parse_input_size(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` -> ``(3, 224, 224)``."""
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size must be C,H,W integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"--input-size must be positive integers C,H,W, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a model saved by poolswap.save / poolswap convert")
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    out.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"default-domain ONNX opset (>= 19; default {DEFAULT_OPSET})")
    batch = out.add_mutually_exclusive_group()
    batch.add_argument("--dynamic-batch", dest="dynamic_batch", action="store_true", default=True,
                       help="a symbolic batch dim")
    batch.add_argument("--static", dest="dynamic_batch", action="store_false", default=argparse.SUPPRESS,
                       help="batch fixed at 1")
    out.add_argument("--input-size", type=parse_input_size, default=None,
                     help="input C,H,W (default: the model's data config, else 3,224,224)")
    out.add_argument("--body", choices=BODIES, default=DEFAULT_BODY,
                     help="the SoftPool body runtimes without poolswap run (the custom-op library replaces it): exact "
                          "(per-window softmax, stable for any input) or fast (AvgPool ratio with a per-channel "
                          "shift: NaN where a window lies more than ~80/beta below its channel's max)")
    out.add_argument("--inline", action="store_true",
                     help="standard ONNX operators only (the body inlined, static shapes): for runtimes that do not "
                          "expand functions (OpenVINO, TensorRT); the default keeps poolswap::SoftPool nodes with the "
                          "function, for ONNX Runtime with poolswap's library")
    pre = parser.add_argument_group("preprocessing stored in the model (default: the model's data config)")
    pre.add_argument("--mean", metavar="R,G,B", help="normalisation mean")
    pre.add_argument("--std", metavar="R,G,B", help="normalisation std")
    pre.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"), help="resize interpolation")
    pre.add_argument("--crop-pct", type=float, help="centre-crop fraction of the resized image (1: no border)")
    out.add_argument("--class-names", type=Path, default=None,
                     help="a text file with one class name per line, stored in the model for `poolswap predict`")
    check = parser.add_argument_group("validation")
    check.add_argument("--validate", action="store_true", help="compare PyTorch with every runtime at hand after export")
    check.add_argument("--n", type=int, default=8, help="random inputs for --validate")
    check.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance for --validate")
    check.add_argument("--strict", action="store_true", help="fail when a runtime (the ORT library, openvino) is missing")


def _data_config(args: argparse.Namespace) -> dict:
    from ..arguments import _floats

    config = {"mean": _floats(args.mean, "--mean"), "std": _floats(args.std, "--std"), "interpolation": args.interpolation}
    if args.crop_pct is not None:
        if not 0 < args.crop_pct <= 1:
            raise PoolswapError(f"--crop-pct must be in (0, 1], got {args.crop_pct}")
        config["crop_pct"] = args.crop_pct
    return {k: v for k, v in config.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from ...export import export_onnx, validate
    from ...model import load

    model = load(args.checkpoint)
    class_names = None
    if args.class_names is not None:
        if not args.class_names.is_file():
            raise FileNotFoundError(f"--class-names {args.class_names} does not exist")
        class_names = [line.strip() for line in args.class_names.read_text(encoding="utf-8").splitlines() if line.strip()]
    path = export_onnx(
        model,
        args.output,
        input_size=args.input_size,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        body=args.body,
        inline=args.inline,
        class_names=class_names,
        data_config=_data_config(args),
    )
    print(f"wrote {path}")
    if not args.validate:
        return 0
    report = validate(path, model, n=args.n, atol=args.atol, strict=args.strict)
    print(report.format())
    if not report.ok:
        raise PoolswapError(f"validation failed beyond the tolerance (atol {args.atol:g}); see the table above")
    return 0
