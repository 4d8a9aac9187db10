"""``poolswap convert``: swap a trained model's pooling sites for SoftPool and save it."""

from __future__ import annotations

import argparse
import logging

from ...errors import PoolswapError
from ..arguments import add_model_arguments, build_model
from .inspect import add_agreement_data_arguments, agreement_data

NAME = "convert"
HELP = "replace a trained model's pooling sites by SoftPool and write it (safetensors + manifest)"
ORDER = 20

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, checkpoint_required=True)
    parser.add_argument("-o", "--output", metavar="OUT", help="the converted model file, .safetensors (required unless --dry-run)")
    rules = parser.add_argument_group("which sites")
    rules.add_argument("--include", nargs="+", action="extend", metavar="GLOB",
                       help="swap only sites whose name matches a glob (or a kind / role name) (default: all)")
    rules.add_argument("--exclude", nargs="+", action="extend", metavar="GLOB",
                       help="never swap sites matching a glob, kind or role (default: none)")
    rules.add_argument("--kinds", nargs="+", action="extend", metavar="KIND",
                       help="kinds to swap: max avg global_max global_avg adaptive_max adaptive_avg, local, global, all "
                            "(default: max avg)")
    rules.add_argument("--strict", action="store_true", help="a rule that matches no site is an error (default: off)")
    soft = parser.add_argument_group("SoftPool")
    soft.add_argument("--beta", type=float, default=1.0, help="temperature of every SoftPool")
    soft.add_argument("--learn-beta", nargs="?", const="scalar", choices=("scalar", "channel"),
                      help="make beta a parameter, one per site or per channel (default: fixed)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be swapped; write nothing (default: off)")
    add_agreement_data_arguments(parser)
    parser.add_argument("--min-agreement", type=float, metavar="A",
                        help="with --data: calibrate, and leave as they are the fewest sites needed to keep top-1 "
                             "agreement with the original at or above A (e.g. 0.995) on those images (default: off)")


def run(args: argparse.Namespace) -> int:
    from ...model import save, spec_of
    from ...surgery import Report, Site, convert

    if not args.dry_run and not args.output:
        raise PoolswapError("convert needs -o OUT (a .safetensors file), or --dry-run")
    if args.output and not str(args.output).endswith(".safetensors"):
        raise PoolswapError(f"-o {args.output}: the converted model is written as .safetensors; name it OUT.safetensors")
    if (args.data is None) != (args.min_agreement is None):
        raise PoolswapError("--min-agreement and --data go together: --data DIR --min-agreement 0.995")
    targeted = agreement_data(args) if args.data is not None else {}
    model, example = build_model(args)
    spec = spec_of(model)
    converted = convert(
        model, kinds=args.kinds, include=args.include, exclude=args.exclude, beta=args.beta,
        learn_beta=args.learn_beta or False, strict=args.strict, example_input=example, inplace=True,
        min_agreement=args.min_agreement, **targeted,
    )
    data = converted.poolswap_manifest
    report = Report([Site.from_dict(s) for s in data["sites"]], untraced=data.get("untraced"))
    print(report.table())
    if "agreement" in data:
        a = data["agreement"]
        print(f"agreement with the original on {a['samples']} images: {a['reached']:.4f} (target {a['target']:g}; "
              f"{a['all_swapped']:.4f} with every chosen site swapped); kept {len(a['kept'])}: "
              f"{', '.join(a['kept']) or 'none'}")
    if args.dry_run:
        logger.info("dry run: nothing written")
        return 0
    path = save(converted, args.output, spec=spec)
    logger.info("wrote %s (%d of %d sites swapped)", path, len(report.swapped()), len(report))
    return 0
