"""``poolswap eval``: top-1/top-5 of a model on an image folder, and its agreement with another."""

from __future__ import annotations

import argparse
import json
import logging

from ...errors import PoolswapError
from ..arguments import add_data_arguments, add_trust_argument, agreement, data_overrides

NAME = "eval"
HELP = "top-1/top-5 of a model or checkpoint on an image folder, agreement with another model, shift consistency"
ORDER = 35

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_OR_CHECKPOINT",
                        help="a poolswap model file (convert/finetune output) or a spec such as timm:NAME")
    parser.add_argument("--weights", metavar="FILE", help="checkpoint for a MODEL spec (default: none)")
    parser.add_argument("--against", metavar="OTHER",
                        help="a second model (file or spec) to measure agreement with; 'original' for MODEL's "
                             "unconverted original (default: none)")
    parser.add_argument("--against-weights", metavar="FILE", help="checkpoint for an --against spec (default: none)")
    add_trust_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--min-agreement", type=agreement,
                        help="fail (exit 1) when the agreement with --against is below this fraction (default: off)")
    shift = parser.add_argument_group("shift consistency (antialiased-cnns' protocol, adapted to the input size)")
    shift.add_argument("--consistency", action="store_true",
                       help="also measure how often two random crops of an image, offset by up to --max-shift "
                            "pixels, get the same top-1 (default: off)")
    shift.add_argument("--passes", type=int, default=5, metavar="N",
                       help="passes over the images, fresh offsets each (default: 5)")
    shift.add_argument("--max-shift", type=int, default=None, metavar="S",
                       help="offsets in [0, S) pixels (default: 32 scaled to the input size, i.e. height/7)")
    shift.add_argument("--seed", type=int, default=0, help="seed of the crop offsets (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from ...device import resolve_device
    from ...model import spec_of
    from ...surgery import load_model
    from ...train import evaluate
    from ...data.datasets import build_transform, image_dataset, resolve_data_config, split_dir
    from ...train.distill import original_of

    if not args.data:
        raise PoolswapError("eval needs --data DIR (an image folder; DIR/val is used when it exists)")
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights, trust_module=args.trust_module)
    other = None
    if args.against == "original":
        other = original_of(model)
    elif args.against:
        other = load_model(args.against, args.against_weights, trust_module=args.trust_module)
    if args.min_agreement is not None and other is None:
        raise PoolswapError("--min-agreement needs --against OTHER")
    if args.passes < 1:
        raise PoolswapError(f"--passes must be an integer >= 1, got {args.passes}")
    if args.max_shift is not None and args.max_shift < 1:
        raise PoolswapError(f"--max-shift must be an integer >= 1, got {args.max_shift}")
    if not args.consistency and (args.passes != 5 or args.max_shift is not None):
        raise PoolswapError("--passes and --max-shift need --consistency")
    folder = split_dir(args.data, "val", required=False) or split_dir(args.data, "train")
    spec = spec_of(model)
    config = resolve_data_config(model, spec=spec.text if spec else None, overrides=data_overrides(args))
    dataset = image_dataset(folder, build_transform(config), channels=config["input_size"][0],
                            skip_bad_images=args.skip_bad_images)
    model.to(device)
    if other is not None:
        other.to(device)
    with torch.inference_mode():
        result = evaluate(model, dataset, against=other, batch_size=args.batch_size, workers=args.workers,
                          device=device, progress=not args.json)
        consistency = None
        if args.consistency:
            from ...train.consistency import consistency_dataset, default_max_shift, shift_consistency

            height, width = (int(v) for v in config["input_size"][1:])
            max_shift = args.max_shift or default_max_shift(height)
            shifted = consistency_dataset(folder, config, max_shift, skip_bad_images=args.skip_bad_images)
            consistency = shift_consistency(model, shifted, crop=(height, width), passes=args.passes,
                                            max_shift=max_shift, batch_size=args.batch_size, workers=args.workers,
                                            device=device, seed=args.seed)
    if args.json:
        extra = {"consistency": consistency.as_dict()} if consistency is not None else {}
        print(json.dumps({"model": args.model, "against": args.against, "data": str(folder), **result.as_dict(),
                          **extra}))
    else:
        print(f"{args.model} on {folder}: {result.summary()}")
        if consistency is not None:
            print(f"{args.model} on {folder}: {consistency.summary()}")
    if args.min_agreement is not None and (result.agreement or 0.0) < args.min_agreement:
        logger.error("agreement %.4f is below --min-agreement %.4f", result.agreement or 0.0, args.min_agreement)
        return 1
    return 0
