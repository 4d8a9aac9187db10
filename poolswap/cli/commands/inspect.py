"""``poolswap inspect``: list a model's pooling sites and what convert would do with each."""

from __future__ import annotations

import argparse
import json

from ..arguments import add_model_arguments, build_model

NAME = "inspect"
HELP = "list a model's pooling sites: kind, geometry, role, action and reason"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, checkpoint_required=False)
    parser.add_argument("--json", action="store_true", help="print a JSON object (sites, summary, untraced) (default: a table)")


def run(args: argparse.Namespace) -> int:
    from ...surgery import inspect

    model, example = build_model(args)
    report = inspect(model, example)
    if args.json:
        data = report.to_dict()
        data["model"] = args.model
        print(json.dumps(data, indent=2))
    else:
        print(report.table())
    return 0
