"""Bad input gets a ValueError/TypeError whose one-line message names the fix."""

from __future__ import annotations

import math

import pytest
import torch

import poolswap


@pytest.mark.parametrize(
    "call,exc,words",
    [
        (lambda: poolswap.soft_pool2d(torch.randn(8, 8), 2), ValueError, "expects a"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 1, 2, 8, 8), 2), ValueError, "expects a"),
        (lambda: poolswap.soft_pool1d(torch.randn(1, 2, 3), 5), ValueError, "smaller kernel"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 2, 3, 3), 3, dilation=2), ValueError, "larger than the padded input"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 3, padding=2), ValueError, "padding <= kernel_size // 2"),
        (lambda: poolswap.soft_pool1d(torch.randn(1, 1, 2), 2, stride=1, padding=1, dilation=3), ValueError, "covers only padding"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 2, beta=0.0), ValueError, "beta must be"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 2, beta=-1.0), ValueError, "beta must be"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 2, beta=math.inf), ValueError, "beta must be"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 2, beta=math.nan), ValueError, "beta must be"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 2, beta="1"), TypeError, "beta must be"),
        (lambda: poolswap.soft_pool2d(torch.randint(0, 9, (1, 1, 8, 8)), 2), TypeError, "x.float()"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 3, 8, 8), 2, beta=torch.ones(2)), ValueError, "one per channel"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 3, 8, 8), 2, beta=torch.ones(3, dtype=torch.long)), TypeError, "floating point"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 0), ValueError, "kernel_size must be >= 1"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), 2, stride=0), ValueError, "stride must be >= 1"),
        (lambda: poolswap.soft_pool2d(torch.randn(1, 1, 8, 8), (2, 2, 2)), TypeError, "tuple of 2 ints"),
        (lambda: poolswap.SoftPool2d(2, return_indices=True), ValueError, "keep this layer a MaxPool"),
        (lambda: poolswap.SoftPool2d(2, learn_beta="channel"), ValueError, "num_channels"),
        (lambda: poolswap.SoftPool2d(2, learn_beta="sometimes"), ValueError, "learn_beta must be"),
    ],
)
def test_bad_input_is_a_clear_one_line_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert words in message
    assert "\n" not in message


def test_the_raw_op_checks_its_arguments_too():
    with pytest.raises(ValueError, match="padding must be at most half"):
        torch.ops.poolswap.soft_pool(torch.randn(1, 1, 8, 8), [2, 2], [2, 2], [2, 2], [1, 1], False, 1.0, None)
    with pytest.raises(TypeError, match="floating-point"):
        torch.ops.poolswap.soft_pool(torch.ones(1, 1, 8, 8, dtype=torch.int32), [2, 2], [2, 2], [0, 0], [1, 1], False, 1.0, None)


@pytest.mark.parametrize("beta", [-1.0, 0.0, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("shape", [(), (1,), (3,)])
def test_a_tensor_beta_follows_the_rule_of_a_float_beta(beta, shape):
    betas = torch.ones(shape)
    betas.reshape(-1)[-1] = beta
    for call in (
        lambda: poolswap.soft_pool2d(torch.randn(1, 3, 8, 8), 2, beta=betas),
        lambda: poolswap.ops.global_pool.global_soft_pool(torch.randn(1, 3, 8, 8), beta=betas),
        lambda: poolswap.ops.same_pool.soft_pool2d_same(torch.randn(1, 3, 8, 8), 3, 2, beta=betas),
    ):
        with pytest.raises(ValueError, match="beta must be a finite number > 0") as info:
            call()
        assert "\n" not in str(info.value)


def test_a_valid_tensor_beta_runs_and_learnt_betas_keep_their_gradient():
    x = torch.randn(2, 3, 8, 8)
    beta = torch.tensor([0.5, 1.0, 4.0], requires_grad=True)
    poolswap.soft_pool2d(x, 2, beta=beta).sum().backward()
    assert beta.grad is not None and torch.isfinite(beta.grad).all()
    pool = poolswap.SoftPool2d(2, learn_beta="channel", num_channels=3)
    pool(x).sum().backward()
    assert pool.log_beta.grad is not None

