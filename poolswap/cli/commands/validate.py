"""``poolswap validate``: PyTorch vs ORT (function body) vs ORT (custom-op library)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...errors import PoolswapError

NAME = "validate"
HELP = "compare an exported model with its checkpoint: PyTorch, ORT body, ORT library (fails beyond tolerance)"
ORDER = 55


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="the exported model")
    parser.add_argument("--against", metavar="CHECKPOINT", default=None,
                        help="the PyTorch checkpoint it was exported from (poolswap.save); without it only ORT runs compare")
    data = parser.add_argument_group("inputs")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, default=None, help="a folder of images (searched recursively)")
    source.add_argument("--n", type=int, default=8, help="number of random standard-normal inputs")
    data.add_argument("--limit", type=int, default=64, help="at most this many images from --data")
    data.add_argument("--skip-bad-images", action="store_true",
                      help="skip image files that cannot be decoded, with a warning (default: stop at the first)")
    data.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    tol = parser.add_argument_group("tolerance")
    tol.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance")
    tol.add_argument("--rtol", type=float, default=1e-4, help="tolerance relative to the output's largest magnitude")
    tol.add_argument("--min-top1", type=float, default=None, help="also fail when top-1 agreement is below this")
    run_group = parser.add_argument_group("runtime")
    run_group.add_argument("--providers", default="cpu", help="auto, cpu, cuda or a comma-separated ORT provider list")
    run_group.add_argument("--strict", action="store_true", help="fail when the ORT library is missing or unusable")


def _providers(text: str):
    return text if text in ("auto", "cpu", "cuda") else [p.strip() for p in text.split(",") if p.strip()]


def run(args: argparse.Namespace) -> int:
    from ...deploy import session
    from ...deploy.images import find_images, load_images, readable_images
    from ...export import validate
    from ...model import load

    if not Path(args.model).is_file():
        raise FileNotFoundError(f"no ONNX model at {args.model}")
    model = load(args.against) if args.against else None
    inputs = None
    if args.data is not None:
        spec = session(args.model, "cpu", library=False).get_inputs()[0]
        size = [d if isinstance(d, int) and d > 0 else 224 for d in spec.shape[-2:]]
        channels = spec.shape[1] if len(spec.shape) == 4 and isinstance(spec.shape[1], int) else 3
        files = find_images(args.data, args.limit)
        inputs = load_images(readable_images(files, channels) if args.skip_bad_images else files, size, channels)
    report = validate(
        args.model, model, inputs, n=args.n, atol=args.atol, rtol=args.rtol, min_top1=args.min_top1,
        providers=_providers(args.providers), strict=args.strict, seed=args.seed,
    )
    print(report.format())
    if not report.ok:
        raise PoolswapError("outputs disagree beyond the tolerance; see the table above")
    return 0
