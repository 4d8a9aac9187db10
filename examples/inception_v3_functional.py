"""torchvision's inception_v3 pools inside its blocks with functional calls (F.max_pool2d, F.avg_pool2d).

poolswap finds them by tracing each block's forward and rewrites the calls in
the traced graph: no model file is forked.

    python examples/inception_v3_functional.py --input-size 299
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch

import poolswap
from poolswap.model import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=299, help="height and width (inception_v3 needs >= 75)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("inception_v3_softpool.safetensors"))
    args = parser.parse_args()

    # The spec lets poolswap.load rebuild the architecture later; aux_logits=False keeps one output.
    model = create_model("torchvision:inception_v3", aux_logits=False, init_weights=False,
                         num_classes=args.num_classes).eval()
    x = torch.randn(1, 3, args.input_size, args.input_size)

    report = poolswap.inspect(model, x)
    print(report.table())
    print("sites by how they are called:", dict(Counter(site.source for site in report)))

    converted = poolswap.convert(model, example_input=x)
    with torch.no_grad():
        before, after = model(x), converted(x)
    print(f"output shape {tuple(after.shape)} (unchanged: {before.shape == after.shape}); "
          f"max |change| of the logits {float((after - before).abs().max()):.3g}")
    path = poolswap.save(converted, args.out)
    restored = poolswap.load(path)
    with torch.no_grad():
        same = torch.equal(restored(x), converted(x))
    print(f"wrote {path}; reloaded model gives identical outputs: {same}")
    if not same or before.shape != after.shape:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
