"""``poolswap convert``: swap a trained model's pooling sites for SoftPool and save it."""

from __future__ import annotations

import argparse
import logging
import warnings

from ..._atomic import check_output
from ...errors import PoolswapError
from ...options import add_options, from_args
from ..arguments import add_agreement_data_arguments, add_model_arguments, agreement_data, build_model

NAME = "convert"
HELP = "replace a trained model's pooling sites by SoftPool and write it (safetensors + manifest)"
ORDER = 20

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...surgery.config import ConvertConfig

    add_model_arguments(parser, checkpoint_required=True)
    parser.add_argument("-o", "--output", metavar="OUT", help="the converted model file, .safetensors (required unless --dry-run)")
    groups = {"agreement with the original": add_agreement_data_arguments(parser)}
    add_options(parser, ConvertConfig, groups=groups)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT (never the input checkpoint)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be swapped; write nothing (default: off)")


def run(args: argparse.Namespace) -> int:
    from ...model import spec_of
    from ...surgery import Report, Site, convert, save
    from ...surgery.config import ConvertConfig

    if not args.dry_run and not args.output:
        raise PoolswapError("convert needs -o OUT (a .safetensors file), or --dry-run")
    if args.output and not str(args.output).endswith(".safetensors"):
        raise PoolswapError(f"-o {args.output}: the converted model is written as .safetensors; name it OUT.safetensors")
    config = from_args(ConvertConfig, args)  # settings first: a typo is said before minutes of loading
    if (args.data is None) != (config.min_agreement is None):
        raise PoolswapError("--min-agreement and --data go together: --data DIR --min-agreement 0.995")
    if args.output and not args.dry_run:
        check_output(args.output, overwrite=args.overwrite, inputs=[args.checkpoint])
    model, example = build_model(args)
    targeted = agreement_data(args, model) if args.data is not None else {}
    spec = spec_of(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "poolswap: convert swapped no pooling site", UserWarning)  # refused below instead
        converted = convert(model, example_input=example, inplace=True, **config.to_kwargs(), **targeted)
    data = converted.poolswap_manifest
    report = Report([Site.from_dict(s) for s in data["sites"]], untraced=data.get("untraced"))
    print(report.table())
    if not report.swapped() and not args.dry_run:
        raise PoolswapError(f"no pooling site to swap ({len(report)} found, none chosen; see the table above): "
                            "nothing written, as the output would be the original model")
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
