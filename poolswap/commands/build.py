"""``poolswap build``: compile the fused kernels now instead of on first use."""

from __future__ import annotations

import argparse
import logging

from ..errors import PoolswapError

NAME = "build"
HELP = "compile poolswap's fused kernels into the cache now (they are otherwise built on first use)"
ORDER = 80

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose-build", action="store_true", help="show the compiler's output")


def run(args: argparse.Namespace) -> int:
    from ..ops import _extension

    _extension.ensure_loaded()
    status = _extension.kernel_status()
    for name, info in status.items():
        logger.info("%-12s %-10s %s", name, "fused" if info.active else "reference", info.detail)
    if not status["cpu"].active:
        raise PoolswapError(f"the fused CPU kernel did not build: {status['cpu'].detail}; install a C++20 compiler (g++ >= 10)")
    return 0
