"""``poolswap study``: does SoftPool help this model on this data? A fair, resumable A/B over seeds."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ...errors import PoolswapError
from ...options import add_options, from_args
from ..arguments import add_preprocessing_arguments, data_overrides, integer, parse_model_kwargs

NAME = "study"
HELP = "fair A/B of a model against its SoftPool conversions: same recipe, images and seeds, held-out evaluation"
DESCRIPTION = (
    "Fine-tune MODEL and each of its SoftPool conversions (--variants) with the same recipe, images and seeds, and "
    "measure them on images held out by a deterministic, class-balanced split of DIR (DIR/train and DIR/val are "
    "pooled where they exist): top-1, agreement with the original, shift consistency and latency, as mean ± spread "
    "over seeds with a verdict against the original fine-tuned alike. Writes OUT/study.json, study.md and study.png; "
    "rerun the same command to continue a study that stopped."
)
ORDER = 37

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...study.config import StudyConfig

    parser.add_argument("model", metavar="MODEL",
                        help="timm:NAME, torchvision:NAME or package.module:factory (with --checkpoint), or a "
                             "poolswap model file of an unconverted model")
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="FILE", help="weights for a MODEL spec (default: none, random weights)")
    group.add_argument("--num-classes", type=integer(1), metavar="N", help="classes of the checkpoint's head")
    group.add_argument("--model-kwargs", metavar="JSON", help="extra keyword arguments for the model factory")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR", help="the image pool: class folders (or DIR/train and DIR/val)")
    add_preprocessing_arguments(data)
    parser.add_argument("-o", "--output", metavar="OUT", help="the study's folder")
    parser.add_argument("--overwrite", action="store_true", help="discard a study of other settings in OUT")
    add_options(parser, StudyConfig)


def run(args: argparse.Namespace) -> int:
    import os

    from ...study import StudyConfig, run_study

    if not args.data or not args.output:
        raise PoolswapError("study needs --data DIR and -o OUT")
    config = from_args(StudyConfig, args, data_config=data_overrides(args))  # settings first: typos before loading
    if os.path.exists(args.model):
        if args.checkpoint:
            raise PoolswapError(f"{args.model} is a model file; --checkpoint applies to a spec such as torchvision:NAME")
        model = args.model
    else:
        from ...model import build_from_checkpoint

        model = build_from_checkpoint(args.model, args.checkpoint, num_classes=args.num_classes,
                                      model_kwargs=parse_model_kwargs(args.model_kwargs))
    # a spec without --checkpoint is random: a study from scratch, with no agreement with the original
    trained = os.path.exists(args.model) or args.checkpoint is not None
    result = run_study(model, args.data, args.output, config, overwrite=args.overwrite, trained=trained)
    print((Path(args.output) / "study.md").read_text(encoding="utf-8"), end="")
    logger.info("wrote %s: study.json, study.md, study.png", result.out)
    return 0
