"""GlobalSoftPool: one window over the whole spatial extent, the replaced pool's output shape."""

from __future__ import annotations

import pytest
import torch

from poolswap.ops import GlobalSoftPool, global_soft_pool


@pytest.mark.parametrize("ndim,shape", [(1, (2, 3, 9)), (2, (2, 3, 5, 7)), (3, (1, 2, 3, 4, 5))])
@pytest.mark.parametrize("keepdim", [True, False])
def test_shapes(ndim, shape, keepdim):
    x = torch.randn(shape)
    y = GlobalSoftPool(ndim, keepdim)(x)
    expected = x.mean(dim=tuple(range(2, 2 + ndim)), keepdim=keepdim).shape
    assert y.shape == expected


def test_limits_and_closed_form():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(GlobalSoftPool(beta=1e-9)(x), x.mean((2, 3), keepdim=True))
    torch.testing.assert_close(GlobalSoftPool(beta=1e7, keepdim=False)(x), x.amax((2, 3)), atol=1e-5, rtol=0)
    flat = x.flatten(2)
    w = torch.softmax(2.0 * flat, dim=-1)
    torch.testing.assert_close(global_soft_pool(x, 2, False, beta=2.0), (w * flat).sum(-1))


def test_learnable_per_channel():
    pool = GlobalSoftPool(2, learn_beta="channel", num_channels=3, beta=2.0)
    assert pool.log_beta.shape == (3,)
    torch.testing.assert_close(pool.beta, torch.full((3,), 2.0))
    x = torch.randn(2, 3, 4, 4)
    pool(x).sum().backward()
    assert pool.log_beta.grad.shape == (3,)
    assert "learn_beta='channel'" in repr(pool)


def test_bad_arguments():
    with pytest.raises(ValueError):
        GlobalSoftPool(4)
    with pytest.raises(ValueError):
        GlobalSoftPool(2, learn_beta="channel")
