"""Arguments several commands share: a model with its checkpoint, data preprocessing, input sizes."""

from __future__ import annotations

import argparse
import json
import logging
import math
from typing import Any, Callable, Optional

from ..errors import PoolswapError

logger = logging.getLogger(__name__)

__all__ = [
    "add_data_arguments", "add_model_arguments", "build_model", "data_overrides", "parse_input_size",
    "parse_model_kwargs", "integer", "fraction", "positive_number", "add_preprocessing_arguments",
    "add_agreement_data_arguments", "agreement_data", "add_trust_argument", "agreement",
]


def integer(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value
    return parse


def _finite(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = _finite(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = _finite(text)
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def agreement(text: str) -> float:
    """An argparse type: a minimum agreement, in (0, 1] (the range every --min-agreement states)."""
    from ..options import AGREEMENT_RANGE, agreement_ok

    value = _finite(text)
    if value is None or not agreement_ok(value):
        raise argparse.ArgumentTypeError(f"{AGREEMENT_RANGE}, got {text!r}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, checkpoint_required: bool) -> None:
    parser.add_argument("model", metavar="MODEL", help="timm:NAME, torchvision:NAME or package.module:factory")
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="FILE", required=checkpoint_required,
                       help=".pth/.pth.tar/.pt/.bin (read weights-only) or .safetensors; num_classes and in_chans "
                            "are read off its head and stem (default: none, random weights)")
    group.add_argument("--num-classes", type=integer(1), metavar="N", help="classes of the checkpoint's head (default: inferred)")
    group.add_argument("--model-kwargs", metavar="JSON", help="extra keyword arguments for the model factory (default: none)")
    group.add_argument("--use-ema", action="store_true", help="prefer the checkpoint's state_dict_ema (default: off)")
    group.add_argument("--input-size", metavar="C,H,W", help="example input size for shapes (default: the model's own)")


def add_trust_argument(parser: Any) -> None:
    """``--trust-module MODULE`` (repeatable): a model file's ``MODULE:factory`` spec may run that module's code."""
    parser.add_argument("--trust-module", action="append", default=None, metavar="MODULE", dest="trust_module",
                        help="let a model file build its architecture with MODULE's factory (package.module:factory "
                             "specs run that module's code; repeatable; default: only timm, torchvision and "
                             "poolswap's own factories)")


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


def parse_input_size(text: Optional[str], flag: str = "--input-size") -> Optional[tuple[int, ...]]:
    """``"3,224,224"`` (or ``3x224x224``) -> ``(3, 224, 224)``; ``"224,224"`` means 3 channels. None stays None."""
    if text is None or text == "":
        return None
    from ..input_size import check_input_size

    try:
        size = tuple(int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        size = ()
    if len(size) not in (2, 3):
        raise PoolswapError(f"{flag} must look like C,H,W (e.g. 3,224,224) or H,W, got {text!r}")
    return check_input_size((3, *size) if len(size) == 2 else size, flag)


def build_model(args: argparse.Namespace):
    """(model, example input or None) from the parsed arguments."""
    import torch

    from ..model import build_from_checkpoint

    model = build_from_checkpoint(
        args.model, args.checkpoint, num_classes=args.num_classes,
        model_kwargs=parse_model_kwargs(args.model_kwargs), use_ema=args.use_ema,
    )
    size = parse_input_size(args.input_size)
    example = torch.randn((1, *size)) if size is not None else None
    return model, example


def add_agreement_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--data, --batches, --batch-size: the images agreement with the original is measured on (inspect, convert)."""
    group = parser.add_argument_group("agreement with the original")
    group.add_argument("--data", metavar="DIR",
                       help="images (an ImageFolder tree or a folder of images; labels unused), read with the model's "
                            "preprocessing and --input-size (default: none)")
    group.add_argument("--batches", type=integer(1), default=8, metavar="N", help="with --data: use N batches of images")
    group.add_argument("--batch-size", type=integer(1), default=32, help="with --data: images per batch")
    group.add_argument("--skip-bad-images", action="store_true",
                       help="with --data: skip image files that cannot be decoded, with a warning (default: stop at "
                            "the first)")
    return group


def _stated_input_size(model: Any) -> bool:
    """Whether the model (or its spec) says what input size it takes: timm's pretrained_cfg, a torchvision spec."""
    from ..model import spec_of

    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    spec = spec_of(model)
    return bool(isinstance(cfg, dict) and cfg.get("input_size")) or (spec is not None and spec.source != "python")


def agreement_data(args: argparse.Namespace, model: Any) -> dict:
    """The keyword arguments of ``inspect``/``convert`` that the --data flags give: the images, read as ``model``
    takes them (its data config, --input-size on top), the preprocessing said in one log line."""
    from ..model import spec_of
    from ..data.datasets import build_transform, image_dataset, resolve_data_config

    size = parse_input_size(args.input_size)
    spec = spec_of(model)
    config = resolve_data_config(model, spec=spec.text if spec else None,
                                 overrides={"input_size": size} if size is not None else None)
    shape = "x".join(str(v) for v in config["input_size"])
    if size is not None:
        origin = "--input-size"
    elif _stated_input_size(model):
        origin = "the model's data config"
    else:
        origin = "a default: the model states no input size; give --input-size C,H,W if it takes another"
    logger.info("--data images read at %s (%s), resize %s to crop %g, mean %s, std %s", shape, origin,
                config["interpolation"], config["crop_pct"], _short(config["mean"]), _short(config["std"]))
    dataset = image_dataset(args.data, build_transform(config), channels=int(config["input_size"][0]),
                            skip_bad_images=args.skip_bad_images)
    return {"data": dataset, "num_batches": args.batches, "batch_size": args.batch_size}


def _short(values: Any) -> str:
    return ",".join(f"{float(v):.3g}" for v in values)


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Preprocessing overrides of the model's own data config (shared with ``poolswap eval``)."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", metavar="DIR", required=False,
                       help="ImageFolder root with train/ and val/ (class folders, or images alone: no labels)")
    group.add_argument("--batch-size", type=integer(1), default=32, help="images per step (per process)")
    group.add_argument("--workers", type=integer(0), default=0, help="data-loading worker processes")
    add_preprocessing_arguments(group)
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (this rank's GPU where there is one)")
    group.add_argument("--skip-bad-images", action="store_true",
                       help="skip image files that cannot be decoded, with a warning (default: stop at the first)")
    return group


def add_preprocessing_arguments(group: Any) -> None:
    """The model's data-config overrides: input size, crop, interpolation, mean and std (see data_overrides)."""
    group.add_argument("--input-size", metavar="C,H,W", help="input size (default: the model's data config)")
    group.add_argument("--crop-pct", type=float, help="center-crop fraction; 1 resizes to the input size (default: the model's)")
    group.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"), help="resize interpolation (default: the model's)")
    group.add_argument("--mean", metavar="R,G,B", help="normalisation mean (default: the model's)")
    group.add_argument("--std", metavar="R,G,B", help="normalisation std (default: the model's)")


def _floats(text: Optional[str], name: str, count: int = 3, positive: bool = False):
    if text is None:
        return None
    values = tuple(_finite(v) for v in text.split(","))
    if len(values) != count or None in values or (positive and min(values) <= 0):
        what = "positive numbers" if positive else "finite numbers"
        raise PoolswapError(f"{name} must be {count} comma-separated {what}, got {text!r}")
    return values


def data_overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    if args.input_size:
        overrides["input_size"] = parse_input_size(args.input_size)
    if args.crop_pct is not None:
        if not 0 < args.crop_pct <= 1:
            raise PoolswapError(f"--crop-pct must be in (0, 1], got {args.crop_pct}")
        overrides["crop_pct"] = args.crop_pct
    if args.interpolation:
        overrides["interpolation"] = args.interpolation
    if args.mean:
        overrides["mean"] = _floats(args.mean, "--mean")
    if args.std:
        overrides["std"] = _floats(args.std, "--std", positive=True)
    return overrides
