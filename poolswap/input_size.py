"""The size of one example input (C, H, W): positive, and small enough to allocate.

A mistyped ``--input-size 1,100000,100000`` would otherwise ask for tens of gigabytes
before anything else is checked; every stage checks a size here first.
"""

from __future__ import annotations

from typing import Sequence

from .errors import PoolswapValueError

__all__ = ["MAX_INPUT_ELEMENTS", "check_input_size"]

#: At most this many values in one example input (4 x 4096 x 4096; 256 MB of float32).
MAX_INPUT_ELEMENTS = 4 * 4096 * 4096


def check_input_size(size: Sequence[int], name: str = "input_size") -> tuple[int, ...]:
    """``size`` as a tuple of ints if every value is positive and C*H*W is within :data:`MAX_INPUT_ELEMENTS`."""
    values = tuple(size)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise PoolswapValueError(f"{name} must be integers such as 3,224,224, got {values!r}")
    if any(v < 1 for v in values):
        raise PoolswapValueError(f"{name} values must be positive, got {','.join(map(str, values))}")
    elements = 1
    for v in values:
        elements *= v
    if elements > MAX_INPUT_ELEMENTS:
        raise PoolswapValueError(
            f"{name} {'x'.join(map(str, values))} is {elements:,} values per image, over poolswap's bound of "
            f"{MAX_INPUT_ELEMENTS:,} (4x4096x4096); give the size the model takes, e.g. 3,224,224")
    return values
