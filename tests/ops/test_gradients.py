"""gradcheck, opcheck and determinism of the SoftPool op."""

from __future__ import annotations

import pytest
import torch

import poolswap
from poolswap.ops import SOFT_POOL

GEOMETRIES = [
    # (ndim, kernel, stride, padding, dilation, ceil_mode, spatial)
    (1, 3, 2, 1, 1, False, (9,)),
    (2, 3, 2, 1, 1, True, (8, 7)),
    (2, (3, 2), (1, 2), (1, 0), (2, 1), False, (7, 6)),
    (3, 2, 1, 1, 1, True, (4, 5, 3)),
]


def _pool(ndim):
    return {1: poolswap.soft_pool1d, 2: poolswap.soft_pool2d, 3: poolswap.soft_pool3d}[ndim]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("beta_kind", ["float", "scalar", "channel"])
def test_gradcheck_float64(seed, geometry, beta_kind):
    ndim, k, s, p, d, ceil, spatial = geometry
    torch.manual_seed(seed)
    x = torch.randn(2, 3, *spatial, dtype=torch.float64, requires_grad=True)
    if beta_kind == "float":
        assert torch.autograd.gradcheck(lambda x: _pool(ndim)(x, k, s, p, d, ceil, beta=1.7), (x,))
        return
    beta = torch.rand(() if beta_kind == "scalar" else (3,), dtype=torch.float64).add(0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, b: _pool(ndim)(x, k, s, p, d, ceil, beta=b), (x, beta))


def _opcheck_samples():
    yield (torch.randn(2, 3, 8, 8), [3, 3], [2, 2], [1, 1], [1, 1], False, 1.0, None)
    yield (torch.randn(2, 3, 8, 8, requires_grad=True), [2, 2], [1, 1], [0, 0], [1, 1], True, 0.5, None)
    yield (torch.randn(3, 9, requires_grad=True), [3], [2], [1], [2], True, 1.0, torch.rand(3).add(0.5).requires_grad_(True))
    yield (torch.randn(1, 2, 4, 5, 6).contiguous(memory_format=torch.channels_last_3d), [2, 2, 2], [2, 1, 2], [1, 1, 0], [1, 1, 1], False, 2.0, torch.tensor(0.7, requires_grad=True))
    yield (torch.randn(2, 4, 7, 7, dtype=torch.float64, requires_grad=True).contiguous(memory_format=torch.channels_last), [3, 3], [2, 2], [1, 1], [1, 1], True, 1.0, None)


@pytest.mark.parametrize("args", list(_opcheck_samples()), ids=lambda a: "x".join(map(str, a[0].shape)))
def test_opcheck(args):
    torch.library.opcheck(SOFT_POOL, args)


def test_backward_is_bitwise_deterministic_with_overlapping_windows():
    x = torch.randn(4, 16, 33, 31, requires_grad=True)
    beta = torch.rand(16).add(0.5).requires_grad_(True)
    grad = torch.randn(4, 16, 33, 31)
    results = []
    for threads in (1, 2, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            x.grad = beta.grad = None
            poolswap.soft_pool2d(x, 3, 1, 1, beta=beta).backward(grad)
            results.append((x.grad.clone(), beta.grad.clone()))
        finally:
            torch.set_num_threads(previous)
    for gx, gb in results[1:]:
        assert torch.equal(gx, results[0][0]) and torch.equal(gb, results[0][1])


def test_backward_saves_only_the_input():
    """Activation memory for backward: the input alone (max pooling keeps input and int64 indices)."""
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        poolswap.soft_pool2d(x, 3, 2, 1)
    assert len(saved) == 1 and saved[0].data_ptr() == x.data_ptr()
