"""``poolswap validate``: PyTorch against each runtime (ORT with the body, ORT with the library, ONNX's reference evaluator, OpenVINO)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...errors import PoolswapError
from ...options import add_options, from_args
from ..arguments import add_trust_argument, integer

NAME = "validate"
HELP = "compare an exported model with its checkpoint on every runtime at hand (fails beyond tolerance)"
ORDER = 55


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...export.config import ValidateConfig

    parser.add_argument("model", metavar="MODEL.onnx", help="the exported model")
    parser.add_argument("--against", metavar="CHECKPOINT", default=None,
                        help="the PyTorch checkpoint it was exported from (poolswap.save); without it only the "
                             "runtimes are compared with each other")
    add_trust_argument(parser)
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--data", type=Path, default=None,
                        help="a folder of images (searched recursively) instead of random inputs")
    inputs.add_argument("--limit", type=integer(1), default=64, help="at most this many images from --data")
    inputs.add_argument("--skip-bad-images", action="store_true",
                        help="skip image files that cannot be decoded, with a warning (default: stop at the first)")
    add_options(parser, ValidateConfig, groups={"inputs": inputs})


def run(args: argparse.Namespace) -> int:
    from ...deploy.images import images_for_model
    from ...deploy import validate
    from ...export.config import ValidateConfig
    from ...surgery import load

    config = from_args(ValidateConfig, args)
    if not Path(args.model).is_file():
        what = "is a folder" if Path(args.model).is_dir() else "does not exist"
        raise PoolswapError(f"{args.model} {what}; give the exported .onnx file")
    model = load(args.against, trust_module=args.trust_module) if args.against else None
    inputs = None
    if args.data is not None:
        inputs = images_for_model(args.model, args.data, args.limit, skip_bad_images=args.skip_bad_images)
    report = validate(args.model, model, inputs, **config.to_kwargs())
    print(report.format())
    if not report.ok:
        raise PoolswapError("outputs disagree beyond the tolerance; see the table above")
    return 0
