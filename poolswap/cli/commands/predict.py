"""``poolswap predict``: top-5 classes of images with an exported model on ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..arguments import integer

NAME = "predict"
HELP = "run an exported model on images with ONNX Runtime and print the top-5 classes"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="the exported model")
    parser.add_argument("images", metavar="IMAGE", nargs="+", type=Path, help="image files")
    parser.add_argument("--top-k", type=integer(1), default=5, help="classes to print per image")
    parser.add_argument("--size", type=integer(1), nargs=2, default=None, metavar=("H", "W"),
                        help="input size (default: the model's, from its stored preprocessing)")
    parser.add_argument("--providers", default="auto", help="auto, cpu, cuda or a comma-separated ORT provider list")
    parser.add_argument("--no-library", action="store_true", help="run SoftPool through the model's function body")
    parser.add_argument("--strict", action="store_true", help="fail instead of falling back when the library is unusable")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="skip image files that cannot be decoded, with a warning (default: stop at the first)")


def run(args: argparse.Namespace) -> int:
    from ...deploy.top_classes import predict

    providers = args.providers if args.providers in ("auto", "cpu", "cuda") else args.providers.split(",")
    results = predict(args.model, args.images, args.top_k, providers=providers, size=args.size,
                      library=not args.no_library, strict=args.strict, skip_bad_images=args.skip_bad_images)
    for result in results:
        print(result.image)
        for prob, idx, label in result.top:
            print(f"  {prob:7.2%}  {idx:>5}  {label}")
    return 0
