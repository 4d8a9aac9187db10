"""``poolswap validate``: PyTorch against each runtime (ORT with the body, ORT with the library, ONNX's reference evaluator, OpenVINO)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...deploy.runtimes import RUNTIMES
from ...errors import PoolswapError

NAME = "validate"
HELP = "compare an exported model with its checkpoint on every runtime at hand (fails beyond tolerance)"
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
    data.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    tol = parser.add_argument_group("tolerance")
    tol.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance")
    tol.add_argument("--rtol", type=float, default=1e-4, help="tolerance relative to the output's largest magnitude")
    tol.add_argument("--min-top1", type=float, default=None, help="also fail when top-1 agreement is below this")
    run_group = parser.add_argument_group("runtime")
    run_group.add_argument("--runtime", action="append", choices=RUNTIMES, default=None, metavar="RUNTIME",
                           help=f"a runtime to compare with PyTorch ({', '.join(RUNTIMES)}); repeat it for several "
                                "(default: every one available here, the others listed as skipped)")
    run_group.add_argument("--providers", default="cpu", help="ORT providers: auto, cpu, cuda or a comma-separated list")
    run_group.add_argument("--strict", action="store_true", help="fail when a runtime (the ORT library, openvino) is missing")


def _providers(text: str):
    return text if text in ("auto", "cpu", "cuda") else [p.strip() for p in text.split(",") if p.strip()]


def run(args: argparse.Namespace) -> int:
    from ...deploy import session
    from ...deploy.images import find_images, load_images
    from ...deploy.preprocess import model_preprocessing
    from ...export import validate
    from ...model import load

    if not Path(args.model).is_file():
        raise FileNotFoundError(f"no ONNX model at {args.model}")
    model = load(args.against) if args.against else None
    inputs = None
    if args.data is not None:
        sess = session(args.model, "cpu", library=False)
        preprocessing = model_preprocessing(sess.get_modelmeta().custom_metadata_map, sess.get_inputs()[0].shape)
        inputs = load_images(find_images(args.data, args.limit), preprocessing)
    report = validate(
        args.model, model, inputs, n=args.n, atol=args.atol, rtol=args.rtol, min_top1=args.min_top1,
        providers=_providers(args.providers), runtimes=args.runtime, strict=args.strict, seed=args.seed,
    )
    print(report.format())
    if not report.ok:
        raise PoolswapError("outputs disagree beyond the tolerance; see the table above")
    return 0
