"""Pooling geometry: argument normalisation, output sizes and input validation.

Every front-end (functional, modules, fake kernel, reference, ONNX export) goes
through :class:`PoolGeometry`, so a geometry is checked and sized in one place
with the exact rules of ``torch.nn.MaxPoolNd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from ..errors import PoolswapTypeError, PoolswapValueError
from ..kernels._attribute_rules import MAX_ATTRIBUTE

IntOrTuple = Union[int, Sequence[int]]

__all__ = ["PoolGeometry", "pooled_size", "IntOrTuple", "to_tuple"]


def to_tuple(value: IntOrTuple, ndim: int, name: str) -> tuple[int, ...]:
    """An int or a sequence of ``ndim`` ints (or of one) as a tuple of ``ndim`` ints; ``name`` is for the error."""
    if isinstance(value, bool):
        raise PoolswapTypeError(f"{name} must be an int or a tuple of {ndim} ints, got a bool")
    if isinstance(value, int):
        return (value,) * ndim
    if isinstance(value, torch.Size) or isinstance(value, (tuple, list)):
        items = tuple(value)
        if len(items) == 1:
            items = items * ndim
        if len(items) != ndim or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise PoolswapTypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")
        return items
    raise PoolswapTypeError(f"{name} must be an int or a tuple of {ndim} ints, got {type(value).__name__}")


def pooled_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output length of one spatial dim, exactly as ``torch.nn.MaxPoolNd`` computes it."""
    extent = dilation * (kernel - 1) + 1
    numerator = size + 2 * padding - extent + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    # With ceil_mode, a last window that would start in the right padding is dropped.
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _first_empty_window(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> int:
    """Index of the first output window with no position inside the input, or -1.

    A window that starts inside the input holds its own start, so only the few
    windows that start in the left padding need a look.
    """
    for o in range(min(out, padding // stride + 1)):
        start = o * stride - padding
        if start >= 0:
            break
        k_lo = (-start + dilation - 1) // dilation  # first k inside the input
        if k_lo >= kernel or start + k_lo * dilation >= size:
            return o
    return -1


@dataclass(frozen=True)
class PoolGeometry:
    """Normalised arguments of an N-d pooling window (N = 1, 2 or 3)."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool = False

    @property
    def ndim(self) -> int:
        return len(self.kernel_size)

    @classmethod
    def create(
        cls,
        ndim: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        ceil_mode: bool = False,
    ) -> "PoolGeometry":
        """Normalise ``nn.MaxPoolNd``-style arguments; raise on impossible values."""
        if ndim not in (1, 2, 3):
            raise PoolswapValueError(f"SoftPool supports 1, 2 or 3 spatial dims, got {ndim}")
        kernel = to_tuple(kernel_size, ndim, "kernel_size")
        # An empty stride (as nn.MaxPool2d stores for stride=[]) means "same as the kernel".
        if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
            strides = kernel
        else:
            strides = to_tuple(stride, ndim, "stride")
        pads = to_tuple(padding, ndim, "padding")
        dils = to_tuple(dilation, ndim, "dilation")
        for name, values, low in (("kernel_size", kernel, 1), ("stride", strides, 1), ("dilation", dils, 1), ("padding", pads, 0)):
            if any(v < low for v in values):
                raise PoolswapValueError(f"{name} must be >= {low} in every dim, got {values}")
            if any(v > MAX_ATTRIBUTE for v in values):
                raise PoolswapValueError(
                    f"{name} must be at most {MAX_ATTRIBUTE} (2**31 - 1) in every dim, got {values}"
                )
        for k, p in zip(kernel, pads):
            if 2 * p > k:
                raise PoolswapValueError(
                    f"padding {pads} is larger than half the kernel {kernel}; "
                    f"use padding <= kernel_size // 2 (as MaxPool requires)"
                )
        return cls(kernel, strides, pads, dils, bool(ceil_mode))

    def output_size(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Output spatial sizes for input spatial sizes ``spatial``; raises if a dim is too small."""
        out = []
        for dim, (size, k, s, p, d) in enumerate(zip(spatial, self.kernel_size, self.stride, self.padding, self.dilation)):
            o = pooled_size(size, k, s, p, d, self.ceil_mode)
            if o < 1:
                extent = d * (k - 1) + 1
                raise PoolswapValueError(
                    f"kernel extent {extent} (kernel {k}, dilation {d}) is larger than the padded input "
                    f"{size} + 2*{p} in spatial dim {dim}; use a smaller kernel or a larger input"
                )
            if isinstance(size, int):
                empty = _first_empty_window(size, k, s, p, d, o)
                if empty >= 0:
                    raise PoolswapValueError(
                        f"output window {empty} of spatial dim {dim} covers only padding "
                        f"(input {size}, kernel {k}, stride {s}, padding {p}, dilation {d}); "
                        f"use less padding or a smaller dilation"
                    )
            out.append(o)
        return tuple(out)

    def check_input(self, x: torch.Tensor) -> tuple[int, ...]:
        """Validate ``x`` for this geometry and return the full output shape."""
        if not isinstance(x, torch.Tensor):
            raise PoolswapTypeError(f"SoftPool expects a torch.Tensor, got {type(x).__name__}")
        if not (x.is_floating_point()):
            raise PoolswapTypeError(
                f"SoftPool needs a floating-point input, got {x.dtype}; convert it first, e.g. x.float()"
            )
        if x.dim() not in (self.ndim + 1, self.ndim + 2):
            raise PoolswapValueError(
                f"SoftPool{self.ndim}d expects a ({self.ndim + 1}D unbatched or {self.ndim + 2}D batched) input "
                f"(N, C, {', '.join('LHW'[-self.ndim:] if self.ndim < 3 else 'DHW')}), got shape {tuple(x.shape)}"
            )
        lead = tuple(x.shape[: x.dim() - self.ndim])
        if any(s == 0 for s in lead[-1:]):
            raise PoolswapValueError(f"SoftPool needs at least one channel, got shape {tuple(x.shape)}")
        return lead + self.output_size(tuple(x.shape[x.dim() - self.ndim :]))

    def onnx_attributes(self) -> dict:
        """Attributes named as ONNX's MaxPool names them (``pads`` as begins then ends)."""
        return {
            "kernel_shape": list(self.kernel_size),
            "strides": list(self.stride),
            "pads": list(self.padding) * 2,
            "dilations": list(self.dilation),
            "ceil_mode": int(self.ceil_mode),
        }

    def __str__(self) -> str:
        parts = [f"kernel_size={self.kernel_size}", f"stride={self.stride}"]
        if any(self.padding):
            parts.append(f"padding={self.padding}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation={self.dilation}")
        if self.ceil_mode:
            parts.append("ceil_mode=True")
        return ", ".join(parts)
