"""The contract's numerics: huge inputs, NaN/inf, half types, autocast, the beta limits, shift invariance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import poolswap
from poolswap.ops import soft_pool_reference

from .contract import soft_pool_brute_force

IMPLS = {
    "fused": lambda x, *a, **k: poolswap.soft_pool2d(x, *a, **k),
    "reference": lambda x, k, s, p, beta=1.0, ceil_mode=False: soft_pool_reference(
        x, [k, k], [s, s], [p, p], [1, 1], ceil_mode, beta
    ),
}


def window_bounds(x, k, s, p, ceil_mode=False):
    """Per-window [min, max] of the valid positions (max pooling treats padding as absent too)."""
    hi = F.max_pool2d(x, k, s, p, ceil_mode=ceil_mode)
    lo = -F.max_pool2d(-x, k, s, p, ceil_mode=ceil_mode)
    return lo, hi


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), magnitude=st.sampled_from([1e10, 1e20, 1e30, 3e37]), beta=st.sampled_from([1e-3, 1.0, 50.0]))
def test_huge_inputs_stay_finite_and_inside_the_window(impl, seed, magnitude, beta):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 9, 11, generator=gen) * magnitude
    y = IMPLS[impl](x, 3, 2, 1, beta=beta)
    lo, hi = window_bounds(x, 3, 2, 1)
    assert torch.isfinite(y).all()
    assert (y <= hi).all()
    # at most a rounding step below the window's min
    assert (y >= lo - lo.abs() * 1e-6).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_special_values_follow_the_contract(impl):
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = math.nan  # window (0, 0)
    x[0, 0, 0, 2] = math.inf  # window (0, 1)
    x[0, 0, 2, 0] = -math.inf  # window (1, 0): weight 0
    x[0, 0, 2:, 2:] = -math.inf  # window (1, 1): only -inf
    x[0, 0, 2, 1] = 5.0
    y = IMPLS[impl](x, 2, 2, 0)[0, 0]
    assert math.isnan(y[0, 0])
    assert y[0, 1] == math.inf
    # window (1, 0) holds -inf, 5 and two zeros: the -inf is absent, the rest pool as usual
    expected = poolswap.soft_pool2d(torch.tensor([0.0, 5.0, 0.0]).reshape(1, 1, 1, 3), (1, 3))
    torch.testing.assert_close(y[1, 0], expected.reshape(()))
    assert y[1, 1] == -math.inf


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_spreads_exactly_like_max_pooling(impl):
    x = torch.randn(2, 3, 10, 10)
    x[1, 2, 4, 7] = math.nan
    y = IMPLS[impl](x, 3, 2, 1)
    assert torch.equal(y.isnan(), F.max_pool2d(x, 3, 2, 1).isnan())


def test_gradient_is_zero_not_nan_for_minus_inf_inputs():
    x = torch.randn(1, 2, 6, 6)
    x[0, 0, 1, 1] = -math.inf
    x.requires_grad_(True)
    poolswap.soft_pool2d(x, 3, 2, 1).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[0, 0, 1, 1] == 0


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
def test_half_types_accumulate_in_float32(impl, dtype, tol):
    x = (torch.randn(2, 4, 12, 12) * 3).to(dtype)
    y = IMPLS[impl](x, 3, 2, 1)
    assert y.dtype == dtype
    expected = IMPLS["reference"](x.float(), 3, 2, 1)
    torch.testing.assert_close(y.float(), expected, atol=tol * 4, rtol=tol)


def test_half_inputs_near_their_range_do_not_overflow():
    x = torch.full((1, 1, 4, 4), 60000.0, dtype=torch.float16)
    x[..., ::2, ::2] = -60000.0
    y = poolswap.soft_pool2d(x, 2)
    assert torch.isfinite(y).all() and (y.float() == 60000.0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_the_input_dtype_and_trains(dtype):
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    pool = poolswap.SoftPool2d(3, 2, 1, learn_beta=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=dtype):
        h = conv(x)
        y = pool(h)
    assert h.dtype == dtype and y.dtype == dtype
    y.float().sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert pool.log_beta.grad is not None and torch.isfinite(pool.log_beta.grad)
    with torch.autocast("cpu", dtype=dtype):
        assert pool(x).dtype == torch.float32  # no autocast rule: a float32 input stays float32


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_large_beta_tends_to_max_pooling(impl, ceil_mode):
    x = torch.randn(2, 3, 11, 11, dtype=torch.float64)
    y = IMPLS[impl](x, 3, 2, 1, beta=1e5, ceil_mode=ceil_mode)
    torch.testing.assert_close(y, F.max_pool2d(x, 3, 2, 1, ceil_mode=ceil_mode), atol=1e-3, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_small_beta_tends_to_the_mean_of_valid_positions(impl, ceil_mode):
    x = torch.randn(2, 3, 11, 11, dtype=torch.float64)
    y = IMPLS[impl](x, 3, 2, 1, beta=1e-7, ceil_mode=ceil_mode)
    mean = F.avg_pool2d(x, 3, 2, 1, ceil_mode=ceil_mode, count_include_pad=False)
    torch.testing.assert_close(y, mean, atol=1e-6, rtol=0)


@pytest.mark.parametrize("k, s, p", [(3, 2, 1), (3, 1, 1), (2, 2, 0)])
@pytest.mark.parametrize("beta", [1e-38, 1e-30, 1.0, 30.0])
def test_wide_rows_keep_padding_and_minus_inf_absent(k, s, p, beta):
    """Rows of 16 outputs and more pool in strips under one shared shift, their padding a large finite
    number: it weighs nothing at any beta, and inputs of -inf stay absent (against the float64 brute force)."""
    x = torch.randn(2, 3, 37, 70, generator=torch.Generator().manual_seed(0))
    x[0, 1, 5, ::7] = -math.inf
    x[1, 2, :, 0] = -math.inf  # a column at the padded border
    y = poolswap.soft_pool2d(x, k, s, p, beta=beta)
    expected = soft_pool_brute_force(x, [k, k], [s, s], [p, p], [1, 1], False, beta)
    torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=50)
@given(seed=st.integers(0, 10_000), shift=st.floats(-1e3, 1e3))
def test_adding_a_constant_shifts_the_output(seed, shift):
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y = poolswap.soft_pool2d(x, 3, 2, 1, beta=2.0)
    torch.testing.assert_close(poolswap.soft_pool2d(x + shift, 3, 2, 1, beta=2.0), y + shift, atol=1e-9, rtol=1e-9)


def test_channels_are_pooled_independently():
    x = torch.randn(1, 4, 8, 8)
    y = poolswap.soft_pool2d(x, 2)
    x2 = x.clone()
    x2[:, 1:] += 100  # the anchor code summed weights over channels; we must not
    torch.testing.assert_close(poolswap.soft_pool2d(x2, 2)[:, 0], y[:, 0])


@pytest.mark.parametrize("shape, k, s, p, ceil_mode", [((3, 11, 4, 4), 3, 2, 1, False), ((2, 9, 7, 7), 3, 2, 1, True),
                                                       ((2, 5, 9, 5), 2, 2, 0, False), ((1, 13, 6, 3), 3, 1, 1, False)])
def test_short_rows_pool_many_planes_at_once_exactly_per_plane(shape, k, s, p, ceil_mode):
    """Rows shorter than a vector block pool kWidth planes side by side (one per lane): every plane, special
    values and a beta per channel included, follows the float64 contract and does not depend on its neighbours."""
    from tests.ops.contract import soft_pool_brute_force

    torch.manual_seed(0)
    x = torch.randn(shape) * 3
    x[0, 1, 0, 0] = float("nan")
    x[0, 2] = float("-inf")  # a plane of -inf: every window -inf
    x[-1, -1, 1, 1] = float("inf")
    beta = torch.rand(shape[1]) * 4 + 0.1
    for b in (2.0, beta):
        y = poolswap.soft_pool2d(x, k, s, p, ceil_mode=ceil_mode, beta=b)
        expected = soft_pool_brute_force(x.double(), [k, k], [s, s], [p, p], [1, 1], ceil_mode, b).float()
        torch.testing.assert_close(y, expected, rtol=2e-5, atol=2e-5, equal_nan=True)
        alone = torch.cat([poolswap.soft_pool2d(x[:, c:c + 1], k, s, p, ceil_mode=ceil_mode,
                                                beta=b if isinstance(b, float) else b[c:c + 1])
                           for c in range(shape[1])], 1)
        assert torch.equal(torch.nan_to_num(alone), torch.nan_to_num(y))
    strided = x.transpose(2, 3)  # not contiguous: the planes are read through their strides
    torch.testing.assert_close(poolswap.soft_pool2d(strided, k, s, p, ceil_mode=ceil_mode),
                               poolswap.soft_pool2d(strided.contiguous(), k, s, p, ceil_mode=ceil_mode), equal_nan=True)
