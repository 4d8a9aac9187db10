"""``poolswap inspect``: list a model's pooling sites and what convert would do with each."""

from __future__ import annotations

import argparse
import json

from ..arguments import add_model_arguments, build_model, parse_input_size

NAME = "inspect"
HELP = "list a model's pooling sites: kind, geometry, role, action and reason"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, checkpoint_required=False)
    parser.add_argument("--json", action="store_true", help="print a JSON object (sites, summary, untraced) (default: a table)")
    add_agreement_data_arguments(parser)
    parser.add_argument("--beta", type=float, default=1.0, help="with --data: the beta each site is measured at")


def add_agreement_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --batches, --batch-size: the images agreement with the original is measured on."""
    group = parser.add_argument_group("agreement with the original")
    group.add_argument("--data", metavar="DIR",
                       help="images (an ImageFolder tree or a folder of images; labels unused), read with the model's "
                            "preprocessing and --input-size (default: none)")
    group.add_argument("--batches", type=int, default=8, metavar="N", help="with --data: use N batches of images")
    group.add_argument("--batch-size", type=int, default=32, help="with --data: images per batch")


def agreement_data(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``inspect``/``convert`` that the --data flags give."""
    size = parse_input_size(args.input_size)
    return {"data": args.data, "num_batches": args.batches, "batch_size": args.batch_size,
            "data_config": {"input_size": size} if size is not None else None}


def run(args: argparse.Namespace) -> int:
    from ...surgery import inspect

    model, example = build_model(args)
    if args.data is not None:
        report = inspect(model, example, beta=args.beta, **agreement_data(args))
    else:
        report = inspect(model, example)
    if args.json:
        data = report.to_dict()
        data["model"] = args.model
        print(json.dumps(data, indent=2))
    else:
        print(report.table())
    return 0
