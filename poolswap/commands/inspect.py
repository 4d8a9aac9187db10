"""``poolswap inspect``: list a model's pooling sites and what convert would do with each."""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from ..errors import PoolswapError

NAME = "inspect"
HELP = "list a model's pooling sites: kind, geometry, role, action and reason"
ORDER = 10


def add_model_arguments(parser: argparse.ArgumentParser, checkpoint_required: bool) -> None:
    parser.add_argument("model", metavar="MODEL", help="timm:NAME, torchvision:NAME or package.module:factory")
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="FILE", required=checkpoint_required,
                       help=".pth/.pth.tar/.pt/.bin (read weights-only) or .safetensors; num_classes and in_chans "
                            "are read off its head and stem (default: none, random weights)")
    group.add_argument("--num-classes", type=int, metavar="N", help="classes of the checkpoint's head (default: inferred)")
    group.add_argument("--model-kwargs", metavar="JSON", help="extra keyword arguments for the model factory (default: none)")
    group.add_argument("--use-ema", action="store_true", help="prefer the checkpoint's state_dict_ema (default: off)")
    group.add_argument("--input-size", metavar="C,H,W", help="example input size for shapes (default: the model's own)")


def parse_model_kwargs(text: Optional[str]) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PoolswapError(f"--model-kwargs is not valid JSON ({exc.msg} at column {exc.colno}); e.g. '{{\"drop_rate\": 0.1}}'") from exc
    if not isinstance(value, dict):
        raise PoolswapError("--model-kwargs must be a JSON object, e.g. '{\"drop_rate\": 0.1}'")
    return value


def parse_input_size(text: Optional[str]):
    if not text:
        return None
    try:
        size = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        size = ()
    if len(size) not in (2, 3, 4) or any(v < 1 for v in size):
        raise PoolswapError(f"--input-size must look like C,H,W (e.g. 3,224,224), got {text!r}")
    return size


def build_model(args: argparse.Namespace):
    """(model, example input or None) from the parsed arguments."""
    import torch

    from ..surgery import build_from_checkpoint

    model = build_from_checkpoint(
        args.model, args.checkpoint, num_classes=args.num_classes,
        model_kwargs=parse_model_kwargs(args.model_kwargs), use_ema=args.use_ema,
    )
    size = parse_input_size(args.input_size)
    example = None
    if size is not None:
        if len(size) == 2:
            size = (3, *size)
        example = torch.randn((1, *size))
    return model, example


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, checkpoint_required=False)
    parser.add_argument("--json", action="store_true", help="print a JSON object (sites, summary, untraced) (default: a table)")


def run(args: argparse.Namespace) -> int:
    from ..surgery import inspect

    model, example = build_model(args)
    report = inspect(model, example)
    if args.json:
        data = report.to_dict()
        data["model"] = args.model
        print(json.dumps(data, indent=2))
    else:
        print(report.table())
    return 0
