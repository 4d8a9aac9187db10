"""``poolswap build``: compile the fused kernels now instead of on first use."""

from __future__ import annotations

import argparse
import logging

from ...errors import PoolswapError

NAME = "build"
HELP = "compile poolswap's fused kernels into the cache now (they are otherwise built on first use)"
ORDER = 80

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA kernels even where nvcc exists")
    parser.add_argument("--verbose-build", action="store_true", help="show the compilers' output")


def run(args: argparse.Namespace) -> int:
    import torch

    from ...kernels import build_cpu, build_cuda, build_error_line, build_ort_library, nvcc_path

    try:
        path = build_cpu(verbose=args.verbose_build)
    except PoolswapError:
        raise
    except Exception as exc:
        raise PoolswapError(
            f"the fused CPU kernel did not build ({build_error_line(exc)}); "
            "install a C++20 compiler (g++ >= 10) or run `poolswap build --verbose-build` to see why"
        ) from exc
    logger.info("%-12s %-10s %s", "cpu", "fused", path)
    if not args.no_cuda and torch.version.cuda is not None and nvcc_path() is not None:
        path = build_cuda(verbose=args.verbose_build)
        gpu = "loaded" if torch.cuda.is_available() else "compiled and linked (no GPU here)"
        logger.info("%-12s %-10s %s (%s)", "cuda", "fused", path, gpu)
    elif not args.no_cuda:
        logger.info("%-12s %-10s %s", "cuda", "skipped", "no nvcc or a CPU-only torch")
    path = build_ort_library(verbose=args.verbose_build)
    logger.info("%-12s %-10s %s", "onnxruntime", "fused", path)
    return 0
