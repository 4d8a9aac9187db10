"""The error poolswap raises for a user's mistake: one line that names the problem and the fix."""

__all__ = ["PoolswapError", "PoolswapTypeError", "PoolswapValueError", "first_line", "printable"]


class PoolswapError(Exception):
    """A user error (bad argument, bad file, missing dependency). The CLI prints it as one line and exits 2."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def printable(text: str, keep: str = "") -> str:
    """``text`` with non-printable characters (but those in ``keep``) written as ``\\xHH`` / ``\\uHHHH``.

    Text from a file (a node's name, a key) must neither cut a one-line error nor drive the terminal.
    """
    return "".join(c if c.isprintable() or c in keep else f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                   for c in text)


class PoolswapValueError(PoolswapError, ValueError):
    """A bad argument value: a user error for the CLI, a ``ValueError`` for Python callers (as torch raises)."""


class PoolswapTypeError(PoolswapError, TypeError):
    """An argument of the wrong type: a user error for the CLI, a ``TypeError`` for Python callers."""
