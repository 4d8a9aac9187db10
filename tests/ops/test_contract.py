"""Every SoftPool implementation against the float64 brute force of the contract.

Hypothesis draws random geometries (1-3 spatial dims, kernel != stride,
padding, dilation, ceil_mode, odd sizes), layouts (unbatched, channels_last,
non-contiguous), ties, and fixed, scalar-tensor and per-channel betas.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from poolswap.ops import SOFT_POOL, soft_pool_backward_reference, soft_pool_reference
from poolswap.kernels import ensure_loaded

from .contract import soft_pool_brute_force, soft_pool_grad_brute_force
from .strategies import Problem, problems

ensure_loaded()


def fused_forward(p: Problem, x: torch.Tensor, beta_tensor):
    return SOFT_POOL(x, *p.args, p.beta, beta_tensor)


def reference_forward(p: Problem, x: torch.Tensor, beta_tensor):
    return soft_pool_reference(x, *p.args, p.beta, beta_tensor)


IMPLEMENTATIONS = {"fused": fused_forward, "reference": reference_forward}


def _expected(p: Problem, grad_seed: int):
    xb = p.batched_x
    y = soft_pool_brute_force(xb, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode, p.effective_beta)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=torch.float64)
    gx, gbeta = soft_pool_grad_brute_force(xb, g, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode, p.effective_beta)
    return y, g, gx, gbeta


def _reduce_beta_grad(gbeta: torch.Tensor, beta_tensor: torch.Tensor) -> torch.Tensor:
    return gbeta.sum() if beta_tensor.numel() == 1 else gbeta.sum(0)


def _check(p: Problem, name: str, atol: float, rtol: float) -> None:
    y_ref, g, gx_ref, gbeta_ref = _expected(p, grad_seed=p.x.numel())
    unbatched = p.x.dim() == len(p.kernel) + 1
    x = p.x.detach().requires_grad_(True)  # a view: keeps the drawn layout
    beta_tensor = None if p.beta_tensor is None else p.beta_tensor.detach().clone().requires_grad_(True)
    grad_out = g[0] if unbatched else g
    if name == "fused":
        y = fused_forward(p, x, beta_tensor)
        y.backward(grad_out.to(y.dtype))
        grad_x, grad_beta = x.grad, (None if beta_tensor is None else beta_tensor.grad)
    else:
        y = reference_forward(p, x, beta_tensor)
        grad_x, grad_beta = soft_pool_backward_reference(grad_out.to(x.dtype), x, *p.args, p.beta, beta_tensor)
    y_b = y.unsqueeze(0) if unbatched else y
    assert y.dtype == p.x.dtype
    torch.testing.assert_close(y_b.double(), y_ref, atol=atol, rtol=rtol)
    grad_x_b = grad_x.unsqueeze(0) if unbatched else grad_x
    assert grad_x.shape == p.x.shape
    torch.testing.assert_close(grad_x_b.double(), gx_ref, atol=atol, rtol=rtol)
    if beta_tensor is not None:
        expected = _reduce_beta_grad(gbeta_ref, beta_tensor).reshape(beta_tensor.shape)
        torch.testing.assert_close(grad_beta.double(), expected, atol=atol * 10, rtol=rtol * 10)


@pytest.mark.parametrize("name", ["fused", "reference"])
@settings(max_examples=300)
@given(p=problems(dtype=torch.float64))
def test_float64_matches_contract(name, p):
    _check(p, name, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("name", ["fused", "reference"])
@settings(max_examples=100)
@given(p=problems(dtype=torch.float32))
def test_float32_matches_contract(name, p):
    _check(p, name, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 2e-5), (torch.float64, 1e-10)])
@settings(max_examples=60)
@given(data=st.data())
def test_wide_rows_take_the_vector_path_and_keep_the_contract(dtype, atol, data):
    """Rows of 16+ interior outputs run the kernels' vector code (stride 1, 2 and others, any layout)."""
    _check(data.draw(problems(dtype=dtype, wide_rows=True)), "fused", atol=atol, rtol=atol)


@settings(max_examples=100)
@given(p=problems(dtype=torch.float32))
def test_fused_and_reference_agree_on_values_and_strides(p):
    y = SOFT_POOL(p.x, *p.args, p.beta, p.beta_tensor)
    expected = soft_pool_reference(p.x, *p.args, p.beta, p.beta_tensor)
    meaningful = [i for i, size in enumerate(y.shape) if size > 1]
    assert [y.stride(i) for i in meaningful] == [expected.stride(i) for i in meaningful]
    torch.testing.assert_close(y, expected, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("memory_format,shape", [(torch.channels_last, (2, 5, 8, 7)), (torch.channels_last_3d, (2, 5, 4, 8, 7))])
def test_channels_last_in_channels_last_out(memory_format, shape):
    x = torch.randn(shape).contiguous(memory_format=memory_format)
    nd = len(shape) - 2
    y = SOFT_POOL(x, [3] * nd, [2] * nd, [1] * nd, [1] * nd, False, 1.0, None)
    assert y.is_contiguous(memory_format=memory_format) and not y.is_contiguous()
    torch.testing.assert_close(y, SOFT_POOL(x.contiguous(), [3] * nd, [2] * nd, [1] * nd, [1] * nd, False, 1.0, None))


@pytest.mark.parametrize("channels", [8, 21, 64])
@pytest.mark.parametrize("k, s, p, d, ceil_mode", [(3, 2, 1, 1, False), (3, 1, 1, 1, False), (2, 2, 0, 1, False),
                                                    (5, 3, 2, 1, True), (3, 2, 1, 2, True)])
def test_wide_channels_last_rows_pool_in_place_and_keep_the_contract(channels, k, s, p, d, ceil_mode):
    """Rows of 16 outputs and more in a channels-last image pool eight channels per vector, read in place
    (channels past the last full eight one by one): against the float64 brute force, with a beta per
    channel and inputs of -inf."""
    gen = torch.Generator().manual_seed(channels * 10 + k)
    x = torch.randn(2, channels, 23, 70, generator=gen)
    x[0, 3, 5, ::7] = -float("inf")
    x = x.contiguous(memory_format=torch.channels_last)
    betas = torch.rand(channels, generator=gen).mul(2.5).add(0.25)
    args = ([k, k], [s, s], [p, p], [d, d], ceil_mode)
    y = SOFT_POOL(x, *args, 1.0, betas)
    assert y.is_contiguous(memory_format=torch.channels_last) and y.shape[-1] >= 16
    expected = soft_pool_brute_force(x, *args, beta=betas.double())
    torch.testing.assert_close(y.double(), expected, atol=2e-5, rtol=2e-5)
    half = SOFT_POOL(x.bfloat16(), *args, 1.0, betas.bfloat16())
    torch.testing.assert_close(half.double(), soft_pool_brute_force(x.bfloat16(), *args, beta=betas.bfloat16().double()),
                               atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("channels", [16, 21])
def test_channels_last_backward_transposes_blocks_of_channels(channels):
    """The channels-last backward transposes 16 channels at a time into planes (the ISA's vector
    transposes) and the rest one by one: against the float64 brute force, beta per channel."""
    gen = torch.Generator().manual_seed(channels)
    x = torch.randn(2, channels, 19, 40, generator=gen).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    betas = torch.rand(channels, generator=gen).mul(2.5).add(0.25).requires_grad_(True)
    args = ([3, 3], [2, 2], [1, 1], [1, 1], False)
    y = SOFT_POOL(x, *args, 1.0, betas)
    grad_y = torch.randn(y.shape, generator=gen).contiguous(memory_format=torch.channels_last)
    gx, gbeta = torch.autograd.grad(y, (x, betas), grad_y)
    assert gx.is_contiguous(memory_format=torch.channels_last)
    ex, ebeta = soft_pool_grad_brute_force(x, grad_y, *args, beta=betas.detach().double())
    torch.testing.assert_close(gx.double(), ex, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(gbeta.double(), ebeta.sum(0), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("k, s, p, ceil_mode", [(3, 2, 1, False), (3, 1, 1, False), (2, 2, 0, False), (2, 1, 0, False),
                                                 (3, 2, 0, True)])
@pytest.mark.parametrize("beta, scale", [(1.0, 1.0), (1.3, 100.0), (30.0, 1.0), (1e-38, 1.0)])
def test_backward_without_a_beta_gradient_keeps_the_contract(k, s, p, ceil_mode, beta, scale):
    """A fixed beta takes no gradient, and wide rows then take the separable dL/dx (window sums run
    backwards): against the float64 brute force, with the upstream gradient's -inf and NaN cases sent
    to the per-window path."""
    ensure_loaded()
    gen = torch.Generator().manual_seed(k * 100 + s * 10 + p)
    x = (torch.randn(2, 3, 37, 70, generator=gen) * scale).requires_grad_(True)
    args = ([k, k], [s, s], [p, p], [1, 1], ceil_mode)
    y = SOFT_POOL(x, *args, beta, None)
    assert y.shape[-1] >= 16
    grad_y = torch.randn(y.shape, generator=gen)
    (gx,) = torch.autograd.grad(y, x, grad_y)
    expected, _ = soft_pool_grad_brute_force(x, grad_y, *args, beta=beta)
    torch.testing.assert_close(gx.double(), expected, atol=2e-5 * scale, rtol=2e-5)
    # an input of -inf (weight 0, gradient 0) and a NaN upstream gradient take the per-window path
    x_inf = x.detach().clone()
    x_inf[0, 1, 4, ::5] = -math.inf
    x_inf.requires_grad_(True)
    (gx_inf,) = torch.autograd.grad(SOFT_POOL(x_inf, *args, beta, None), x_inf, grad_y)
    expected_inf, _ = soft_pool_grad_brute_force(x_inf, grad_y, *args, beta=beta)
    absent = x_inf.detach() == -math.inf
    assert (gx_inf[absent] == 0).all()  # the contract's 0 where the brute force's 0 * inf is NaN
    torch.testing.assert_close(gx_inf.double()[~absent], expected_inf[~absent], atol=2e-5 * scale, rtol=2e-5)
    grad_nan = grad_y.clone()
    grad_nan[1, 2, 3, 4] = math.nan
    (gx_nan,) = torch.autograd.grad(SOFT_POOL(x, *args, beta, None), x, grad_nan)
    assert gx_nan[1, 2].isnan().any() and not gx_nan[0].isnan().any()


@pytest.mark.parametrize("batch, channels", [(2, 8), (2, 21), (1, 130)])
@pytest.mark.parametrize("k, s, p, d, ceil_mode", [(3, 2, 1, 1, False), (3, 1, 1, 1, False), (2, 3, 0, 1, False),
                                                   (3, 2, 0, 1, True), (3, 1, 1, 2, False)])
def test_channels_last_backward_without_a_beta_gradient_reads_in_place(batch, channels, k, s, p, d, ceil_mode):
    """A fixed beta and channels-last float input: dL/dx eight channels per vector, the image read and
    written where it lies (an image per task, or 64 channels where images are fewer than threads), the
    last channels and a group with a wide spread (its strip fails the trust test) one by one, rows that no
    window holds set to 0. Against the float64 brute force, with -inf inputs."""
    gen = torch.Generator().manual_seed(channels * 10 + k + s)
    x = torch.randn(batch, channels, 23, 50, generator=gen)
    x[0, 3] *= 300.0
    x[0, channels - 2, 4, 1::4] = -math.inf
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    args = ([k, k], [s, s], [p, p], [d, d], ceil_mode)
    y = SOFT_POOL(x, *args, 1.0, None)
    assert y.shape[-1] >= 16
    grad_y = torch.randn(y.shape, generator=gen).contiguous(memory_format=torch.channels_last)
    (gx,) = torch.autograd.grad(y, x, grad_y)
    assert gx.is_contiguous(memory_format=torch.channels_last)
    expected, _ = soft_pool_grad_brute_force(x.detach(), grad_y, *args, beta=1.0)
    absent = x.detach() == -math.inf
    assert (gx[absent] == 0).all()
    spread = torch.zeros_like(absent)
    spread[0, 3] = True  # inputs of hundreds: float's rounding of x - y scaled by them
    torch.testing.assert_close(gx.double()[spread], expected[spread], atol=300 * 2e-5, rtol=2e-5)
    rest = ~absent & ~spread
    torch.testing.assert_close(gx.double()[rest], expected[rest], atol=2e-5, rtol=2e-5)


def test_channels_last_3d_backward_zeroes_slices_no_window_reads():
    """Kernel 1 and stride 2 along D leave the odd input slices out of every window: their dL/dx is 0."""
    x = torch.randn(2, 16, 5, 12, 40, generator=torch.Generator().manual_seed(5))
    x = x.contiguous(memory_format=torch.channels_last_3d).requires_grad_(True)
    args = ([1, 3, 3], [2, 2, 2], [0, 1, 1], [1, 1, 1], False)
    y = SOFT_POOL(x, *args, 1.0, None)
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(6)).contiguous(
        memory_format=torch.channels_last_3d)
    (gx,) = torch.autograd.grad(y, x, grad_y)
    assert (gx[:, :, 1::2] == 0).all()
    expected, _ = soft_pool_grad_brute_force(x.detach(), grad_y, *args, beta=1.0)
    torch.testing.assert_close(gx.double(), expected, atol=2e-5, rtol=2e-5)


SHORT_ROWS = [  # (shape of one image, kernel, stride, padding): output rows under 16, the interleaved planes
    ((7, 7), 3, 1, 1), ((14, 14), 3, 2, 1), ((16, 16), 2, 2, 0), ((4, 4), 3, 2, 1), ((9, 11), 2, 3, 0),
    ((3, 6, 5), 2, 2, 1),
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("size, k, s, p", SHORT_ROWS)
def test_short_rows_backward_interleaves_planes_and_keeps_the_contract(size, k, s, p, layout):
    """Without a beta gradient, planes of short rows take dL/dx eight at a time (one plane per lane, the
    lanes' transposes as the layout allows); 13 channels leave a partial group. Against the float64 brute
    force, with a plane of wide spread (its lane redone alone), -inf inputs and a NaN upstream gradient."""
    dims = len(size)
    gen = torch.Generator().manual_seed(sum(size) * 10 + k + s)
    x = torch.randn(2, 13, *size, generator=gen)
    x[1, 4] *= 300.0  # beta 1 over a spread of hundreds: weights under 2^-60 in that plane's shared shift
    x[0, 9].view(-1)[3::7] = -math.inf  # no window of -inf only (its y is -inf, its gradient passes)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last if dims == 2 else torch.channels_last_3d)
    elif layout == "strided":
        x = torch.cat([x, x], dim=-1)[..., : size[-1]]  # rows twice as long as the plane's
    x.requires_grad_(True)
    args = ([k] * dims, [s] * dims, [p] * dims, [1] * dims, False)
    y = SOFT_POOL(x, *args, 1.0, None)
    assert y.shape[-1] < 16
    grad_y = torch.randn(y.shape, generator=gen)
    grad_y[1, 11].view(-1)[0] = math.nan
    (gx,) = torch.autograd.grad(y, x, grad_y)
    expected, _ = soft_pool_grad_brute_force(x, grad_y, *args, beta=1.0)
    absent = x.detach() == -math.inf
    assert (gx[absent] == 0).all()  # the contract's 0 where the brute force's 0 * inf is NaN
    assert gx[1, 11].isnan().any() and not gx[1, 10].isnan().any() and not gx[1, 12].isnan().any()
    keep = ~absent
    keep[1, 11] = False
    torch.testing.assert_close(gx.double()[keep], expected[keep], atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("size, k, s, p", [((7, 7), 3, 1, 1), ((14, 14), 3, 2, 1), ((9, 70), 3, 2, 1)])
def test_a_huge_upstream_gradient_over_a_small_weight_sum_stays_finite(size, k, s, p):
    """g / sum e overflows float under the plane's (or strip's) shared shift where a window's weights
    are small (its max 40 under the plane's): those planes take per-window shifts, and dL/dx stays finite."""
    x = torch.zeros(1, 9, *size)
    x[0, :, 0, 0] = 40.0
    x.requires_grad_(True)
    args = ([k, k], [s, s], [p, p], [1, 1], False)
    y = SOFT_POOL(x, *args, 1.0, None)
    grad_y = torch.full(y.shape, 1e30)
    (gx,) = torch.autograd.grad(y, x, grad_y)
    expected, _ = soft_pool_grad_brute_force(x.detach(), grad_y, *args, beta=1.0)
    assert gx.isfinite().all()
    torch.testing.assert_close(gx.double(), expected, atol=0.0, rtol=2e-5)


@pytest.mark.parametrize("size, k, s, p, ceil_mode", [((16, 16), 2, 2, 0, False), ((9, 9), 2, 3, 0, False),
                                                      ((7, 7), 2, 2, 0, True), ((8, 6), 3, 3, 1, False)])
def test_disjoint_windows_of_short_rows_keep_the_contract_with_special_values(size, k, s, p, ceil_mode):
    """Windows that share no input (stride at least the window) take per-window shifts directly in the
    interleaved forward: NaN, +inf, -inf, a window of -inf only and a spread of hundreds against the
    float64 brute force, 13 planes (a partial group of lanes)."""
    x = torch.randn(1, 13, *size, generator=torch.Generator().manual_seed(size[0] * k + s))
    x[0, 0, 0, 0] = math.nan
    x[0, 1, 1, 1] = math.inf
    x[0, 2].view(-1)[::3] = -math.inf
    x[0, 3, :k, :k] = -math.inf  # a window of -inf only: -inf
    x[0, 4] *= 300.0
    args = ([k, k], [s, s], [p, p], [1, 1], ceil_mode)
    y = SOFT_POOL(x, *args, 1.0, None)
    assert y.shape[-1] < 16
    expected = soft_pool_brute_force(x, *args, beta=1.0)
    assert y[0, 3, 0, 0] == -math.inf
    torch.testing.assert_close(y.double(), expected, atol=2e-5, rtol=2e-5, equal_nan=True)


@pytest.mark.parametrize("size, k, s, p", [((12, 70), 3, 2, 0), ((13, 33), 2, 2, 0), ((9, 10), 2, 3, 0)])
@pytest.mark.parametrize("value", [-math.inf, math.nan])
def test_inputs_outside_every_window_get_no_gradient(size, k, s, p, value):
    """An input no window holds (the last column and row here) has gradient 0 whatever its value: in
    the separable dL/dx of wide rows and the interleaved one of short rows alike."""
    x = torch.randn(2, 9, *size, generator=torch.Generator().manual_seed(size[1]))
    x[..., -1] = value
    x[..., -1, :] = value
    x.requires_grad_(True)
    args = ([k, k], [s, s], [p, p], [1, 1], False)
    y = SOFT_POOL(x, *args, 1.0, None)
    reach = [(y.shape[d] - 1) * s + k for d in (2, 3)]
    assert reach[0] < size[0] and reach[1] < size[1]
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (gx,) = torch.autograd.grad(y, x, grad_y)
    expected, _ = soft_pool_grad_brute_force(x.detach(), grad_y, *args, beta=1.0)
    assert (gx[..., -1] == 0).all() and (gx[..., -1, :] == 0).all()
    torch.testing.assert_close(gx.double(), expected, atol=2e-5, rtol=2e-5)


@pytest.mark.slow
@pytest.mark.parametrize("stride", [1, 2])
def test_planes_too_large_to_pad_take_row_blocks_and_keep_the_contract(stride):
    """Past 2^20 padded floats a plane is not copied: row blocks with per-window shifts (and the border windows)."""
    x = torch.randn(1, 1, 1030, 1030, generator=torch.Generator().manual_seed(stride), requires_grad=True)
    beta = torch.tensor(1.5, requires_grad=True)
    y = SOFT_POOL(x, [3, 3], [stride, stride], [1, 1], [1, 1], False, 1.0, beta)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    gx, gbeta = torch.autograd.grad(y, (x, beta), g)
    x64 = x.detach().double()
    expected = soft_pool_reference(x64, [3, 3], [stride, stride], [1, 1], [1, 1], False, 1.0, beta.detach().double())
    torch.testing.assert_close(y.double(), expected, atol=2e-5, rtol=2e-5)
    ex, ebeta = soft_pool_backward_reference(g.double(), x64, [3, 3], [stride, stride], [1, 1], [1, 1], False, 1.0,
                                             beta.detach().double())
    torch.testing.assert_close(gx.double(), ex, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(gbeta.double(), ebeta.reshape(gbeta.shape), atol=1e-2, rtol=1e-4)
