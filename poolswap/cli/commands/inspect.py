"""``poolswap inspect``: list a model's pooling sites and what convert would do with each."""

from __future__ import annotations

import argparse
import json

from ..arguments import add_agreement_data_arguments, add_model_arguments, agreement_data, build_model, positive_number

NAME = "inspect"
HELP = "list a model's pooling sites: kind, geometry, role, action and reason"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, checkpoint_required=False)
    parser.add_argument("--json", action="store_true", help="print a JSON object (sites, summary, untraced) (default: a table)")
    add_agreement_data_arguments(parser)
    parser.add_argument("--beta", type=positive_number, default=1.0, help="with --data: the beta each site is measured at")


def run(args: argparse.Namespace) -> int:
    from ...surgery import inspect

    model, example = build_model(args)
    if args.data is not None:
        report = inspect(model, example, beta=args.beta, **agreement_data(args, model))
    else:
        report = inspect(model, example)
    if args.json:
        data = report.to_dict()
        data["model"] = args.model
        print(json.dumps(data, indent=2))
    else:
        print(report.table())
    return 0
