"""SoftPool2dSame (timm's MaxPool2dSame / AvgPool2dSame replaced) against a float64 brute force."""

from __future__ import annotations

import math

import pytest
import torch

from poolswap.ops import SoftPool2dSame, same_padding_plan


def _same_reference(x: torch.Tensor, k, s, d, beta: float) -> torch.Tensor:
    """'SAME' windows (top/left pad total//2), padded positions absent, softmax-weighted mean."""
    n, c, h, w = x.shape
    outs = []
    pads = []
    for size, kk, ss, dd in zip((h, w), k, s, d):
        out = math.ceil(size / ss)
        total = max((out - 1) * ss + (kk - 1) * dd + 1 - size, 0)
        outs.append(out)
        pads.append(total // 2)
    y = torch.empty(n, c, *outs, dtype=torch.float64)
    for i in range(outs[0]):
        for j in range(outs[1]):
            rows = [i * s[0] - pads[0] + a * d[0] for a in range(k[0])]
            cols = [j * s[1] - pads[1] + b * d[1] for b in range(k[1])]
            rows = [r for r in rows if 0 <= r < h]
            cols = [q for q in cols if 0 <= q < w]
            win = x[:, :, rows][:, :, :, cols].reshape(n, c, -1).double()
            wts = torch.softmax(beta * win, dim=-1)
            y[:, :, i, j] = (wts * win).sum(-1)
    return y


class TestSamePaddingPlan:
    def test_even_total_is_symmetric(self):
        assert same_padding_plan(8, 3, 1, 1) == (1, False, False)

    def test_odd_total_stride2_uses_ceil_mode(self):
        # size 8, kernel 3, stride 2: total 1 -> 0 left, 1 right
        assert same_padding_plan(8, 3, 2, 1) == (0, True, False)

    def test_odd_total_stride1_drops_first(self):
        # kernel 2, stride 1: total 1 -> one extra padding on the right
        assert same_padding_plan(5, 2, 1, 1) == (1, False, True)


@pytest.mark.parametrize("size", [(7, 7), (8, 8), (9, 6), (5, 11)])
@pytest.mark.parametrize("k,s", [((3, 3), (2, 2)), ((2, 2), (2, 2)), ((3, 3), (1, 1)), ((2, 2), (1, 1)), ((3, 2), (2, 1)), ((4, 4), (3, 3))])
@pytest.mark.parametrize("beta", [0.7, 5.0])
def test_matches_float64_reference(size, k, s, beta):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    pool = SoftPool2dSame(k, s, beta=beta)
    torch.testing.assert_close(pool(x), _same_reference(x, k, s, (1, 1), beta))


@pytest.mark.parametrize("size", [(7, 7), (8, 8), (6, 9)])
@pytest.mark.parametrize("k,s", [((3, 3), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (1, 1)), ((3, 3), (1, 1))])
def test_large_beta_is_timm_max_pool2d_same(size, k, s):
    from timm.layers.pool2d_same import MaxPool2dSame

    torch.manual_seed(1)
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    expected = MaxPool2dSame(k, s)(x)
    got = SoftPool2dSame(k, s, beta=1e6)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_small_beta_is_mean_over_valid_positions():
    from timm.layers.pool2d_same import AvgPool2dSame

    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    got = SoftPool2dSame(2, 2, beta=1e-9)(x)
    # kernel 2 stride 2 on an even size needs no padding: equals AvgPool2dSame exactly
    torch.testing.assert_close(got, AvgPool2dSame(2, 2)(x))


def test_gradient_and_learnable_beta():
    x = torch.randn(1, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    pool = SoftPool2dSame(3, 2, beta=2.0, learn_beta="channel", num_channels=3).double()
    pool(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert pool.log_beta.grad is not None and pool.log_beta.grad.shape == (3,)
    assert list(dict(pool.named_parameters())) == ["log_beta"]


def test_repr_and_dilation_check():
    assert "padding='same'" in repr(SoftPool2dSame(3, 2))
    with pytest.raises(ValueError):
        SoftPool2dSame(3, 1, dilation=3)
