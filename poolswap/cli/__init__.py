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
import traceback
import warnings
from typing import Optional, Sequence

from .. import __version__
from ..errors import PoolswapError, first_line, printable

logger = logging.getLogger("poolswap")

__all__ = ["main", "build_parser"]


def _command_modules() -> list:
    from . import commands

    modules = [importlib.import_module(f"{commands.__name__}.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]
    modules = [m for m in modules if hasattr(m, "NAME") and hasattr(m, "run")]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to a flag's help unless the help already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line, like every other poolswap error (and exit 2, as argparse does)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only``, that command's arguments alone (the others' need not be imported)."""
    parser = _Parser(
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
            formatter_class=_HelpFormatter,
        )
        if only is None or only == module.NAME:
            module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    # Other libraries' info logs (the ONNX optimizer's pass reports, say) only with -vv.
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.WARNING,
                        format="%(message)s" if verbose == 0 else "%(levelname)s %(name)s: %(message)s")
    logging.getLogger("poolswap").setLevel(level)
    warnings.formatwarning = _format_warning
    # torch's extension builder warns that no CUDA runtime is found on CPU-only machines: not our user's concern.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


_python_format_warning = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """poolswap's own warnings as the one line they are; other libraries' as Python formats them."""
    if str(message).startswith("poolswap:"):
        return f"{message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``poolswap`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {m.NAME for m in _command_modules()}
    # Only the chosen command's arguments are built: its settings import their stage (and torch), the rest need not.
    parser = build_parser(only=next((a for a in argv if a in names), ""))
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
    except Exception as exc:  # noqa: BLE001 - every error ends as one line (the user's) or a traceback (a bug)
        message = _user_error(exc)
        if args.traceback:
            raise
        if message is not None:
            print(f"poolswap: error: {message}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print("poolswap: internal error: the lines above are a bug in poolswap, not a problem with your input; "
              "please report them", file=sys.stderr)
        return 1


#: Optional dependencies and the extra that installs each.
_EXTRAS = {"onnx": "onnx", "onnxscript": "onnx", "onnxruntime": "onnx", "matplotlib": "demo", "sklearn": "demo",
           "PIL": "demo", "tensorboard": "dev"}


def _user_error(exc: BaseException) -> Optional[str]:
    """The one line for an error the user can fix; None for a bug (shown with its traceback)."""
    if isinstance(exc, PoolswapError):
        return printable(first_line(exc), keep="\t")
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        if top not in _EXTRAS:
            return None
        return f"{top} is not installed; pip install 'poolswap[{_EXTRAS[top]}]'"
    # OSError: a file or folder the user named (missing, unreadable, unwritable, disk full)
    if isinstance(exc, OSError):
        if exc.strerror and exc.filename is not None:
            return f"{exc.strerror}: {exc.filename}"
        return first_line(exc)
    return None
