"""``poolswap export``: a converted checkpoint to ONNX with poolswap::SoftPool nodes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..._atomic import check_output
from ...errors import PoolswapError

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
    out.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    out.add_argument("--opset", type=int, default=20, help="default-domain ONNX opset (>= 19)")
    batch = out.add_mutually_exclusive_group()
    batch.add_argument("--dynamic-batch", dest="dynamic_batch", action="store_true", default=True,
                       help="a symbolic batch dim")
    batch.add_argument("--static", dest="dynamic_batch", action="store_false", default=argparse.SUPPRESS,
                       help="batch fixed at 1")
    out.add_argument("--input-size", type=parse_input_size, default="3,224,224", help="input C,H,W")
    out.add_argument("--body", choices=("fast", "exact"), default="exact",
                     help="the function body plain ONNX runtimes run (the custom-op library replaces it): exact "
                          "(per-window softmax, stable for any input) or fast (AvgPool ratio with a per-channel "
                          "shift: NaN where a window lies more than ~80/beta below its channel's max)")
    out.add_argument("--class-names", type=Path, default=None,
                     help="a text file with one class name per line, stored in the model for `poolswap predict`")
    check = parser.add_argument_group("validation")
    check.add_argument("--validate", action="store_true", help="compare PyTorch, ORT body and ORT library after export")
    check.add_argument("--n", type=int, default=8, help="random inputs for --validate")
    check.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance for --validate")
    check.add_argument("--strict", action="store_true", help="fail when the ORT library is unusable")


def run(args: argparse.Namespace) -> int:
    from ...export import export_onnx, validate
    from ...model import load

    check_output(args.output, overwrite=args.overwrite, inputs=[args.checkpoint])
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
        class_names=class_names,
    )
    print(f"wrote {path}")
    if not args.validate:
        return 0
    report = validate(path, model, n=args.n, atol=args.atol, strict=args.strict)
    print(report.format())
    if not report.ok:
        raise PoolswapError(f"validation failed beyond the tolerance (atol {args.atol:g}); see the table above")
    return 0
