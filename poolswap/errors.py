"""The error poolswap raises for a user's mistake: one line that names the problem and the fix."""

__all__ = ["PoolswapError"]


class PoolswapError(Exception):
    """A user error (bad argument, bad file, missing dependency). The CLI prints it as one line and exits 2."""
