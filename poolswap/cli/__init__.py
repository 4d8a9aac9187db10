"""The ``poolswap`` command line.

Each subcommand lives in its own module of :mod:`poolswap.cli.commands` and is found
there: a module defines ``NAME``, ``HELP``, ``ORDER``, ``add_arguments(parser)``
and ``run(args) -> int``. Command modules import heavy packages inside ``run``,
so ``poolswap --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Optional, Sequence

from .. import __version__
from ..errors import PoolswapError, first_line

logger = logging.getLogger("poolswap")

__all__ = ["main", "build_parser"]


def _command_modules() -> list:
    from . import commands

    modules = [importlib.import_module(f"{commands.__name__}.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]
    modules = [m for m in modules if hasattr(m, "NAME") and hasattr(m, "run")]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poolswap",
        description="Convert trained CNNs to SoftPool, fine-tune them, export them to ONNX and deploy them.",
    )
    parser.add_argument("--version", action="version", version=f"poolswap {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        command = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    # Other libraries' info logs (the ONNX optimizer's pass reports, say) only with -vv.
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.WARNING,
                        format="%(message)s" if verbose == 0 else "%(levelname)s %(name)s: %(message)s")
    logging.getLogger("poolswap").setLevel(level)
    # torch's extension builder warns that no CUDA runtime is found on CPU-only machines: not our user's concern.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``poolswap`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("poolswap: interrupted", file=sys.stderr)
        return 130
    except (PoolswapError, ValueError, TypeError, FileNotFoundError, PermissionError, ImportError) as exc:
        if args.traceback:
            raise
        print(f"poolswap: error: {first_line(exc)}", file=sys.stderr)
        return 2
