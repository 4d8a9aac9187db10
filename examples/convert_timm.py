"""Convert a timm model's checkpoint to SoftPool with poolswap's Python API.

    python examples/convert_timm.py --model resnet18 --out-dir converted/

Stands in for your own training run by saving a randomly initialised timm model
as an ordinary state_dict; point --checkpoint at your real one instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import poolswap
from poolswap.model import build_from_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a timm model name")
    parser.add_argument("--checkpoint", type=Path, default=None, help="your .pth state_dict (default: make one)")
    parser.add_argument("--num-classes", type=int, default=10, help="head size of the stand-in checkpoint")
    parser.add_argument("--input-size", type=int, default=224, help="height and width of the example input")
    parser.add_argument("--out-dir", type=Path, default=Path("converted"))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    spec = f"timm:{args.model}"

    # 1. An ordinary checkpoint: what your training script saved.
    checkpoint = args.checkpoint
    if checkpoint is None:
        import timm

        checkpoint = args.out_dir / f"{args.model}.pth"
        torch.save(timm.create_model(args.model, pretrained=False, num_classes=args.num_classes).state_dict(), checkpoint)

    # 2. Rebuild the architecture and load the weights (num_classes is read off the head).
    model = build_from_checkpoint(spec, checkpoint)
    x = torch.randn(2, 3, args.input_size, args.input_size)

    # 3. Which pooling sites are there, and what would be swapped?
    report = poolswap.inspect(model, x)
    print(report.table())

    # 4. Swap them, save (safetensors + architecture spec + swap manifest), load in a fresh model.
    converted = poolswap.convert(model, example_input=x, beta=1.0)
    path = poolswap.save(converted, args.out_dir / f"{args.model}_softpool.safetensors")
    restored = poolswap.load(path)
    with torch.no_grad():
        same = torch.equal(converted.eval()(x), restored(x))
    print(f"wrote {path}; reloaded model gives identical outputs: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
