"""SoftPool modules: MaxPool-compatible construction, parameters, tracing and export."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import poolswap
from poolswap.ops import SoftPool1d, SoftPool2d, SoftPool3d

MAXPOOLS = [
    nn.MaxPool1d(3, 2, 1),
    nn.MaxPool2d(3, 2, 1),
    nn.MaxPool2d(3, 2, ceil_mode=True),
    nn.MaxPool2d((2, 3), (1, 2), (1, 1), dilation=(2, 1)),
    nn.MaxPool3d(2, 2, 1, ceil_mode=True),
]


def _maxpool_kwargs(pool: nn.Module) -> dict:
    return {k: getattr(pool, k) for k in ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")}


@pytest.mark.parametrize("pool", MAXPOOLS, ids=repr)
def test_built_from_maxpool_kwargs_keeps_output_shapes(pool):
    cls = {nn.MaxPool1d: SoftPool1d, nn.MaxPool2d: SoftPool2d, nn.MaxPool3d: SoftPool3d}[type(pool)]
    soft = cls(**_maxpool_kwargs(pool))
    ndim = cls.ndim
    for spatial in [(9,) * ndim, (10,) * ndim, (7, 12, 5)[:ndim]]:
        x = torch.randn(2, 3, *spatial)
        assert soft(x).shape == pool(x).shape
        assert soft(x[0]).shape == pool(x[0]).shape  # unbatched


def test_fixed_beta_has_no_parameters_and_an_empty_state_dict():
    pool = SoftPool2d(3, 2, 1, beta=2.0)
    assert list(pool.parameters()) == [] and pool.state_dict() == {}
    assert pool.beta == 2.0
    assert repr(pool) == "SoftPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), beta=2)"


@pytest.mark.parametrize("mode,shape", [(True, ()), ("scalar", ()), ("channel", (4,))])
def test_learnable_beta_is_one_named_parameter_that_learns(mode, shape):
    pool = SoftPool2d(2, learn_beta=mode, num_channels=4, beta=1.5)
    assert list(pool.state_dict()) == ["log_beta"]
    assert pool.log_beta.shape == shape
    torch.testing.assert_close(pool.beta, torch.full(shape, 1.5))
    x = torch.randn(2, 4, 6, 6)
    pool(x).pow(2).sum().backward()
    assert pool.log_beta.grad is not None and pool.log_beta.grad.abs().sum() > 0
    # d/dlog_beta = beta * d/dbeta: compare with the fixed-beta op's finite difference
    eps = 1e-3
    with torch.no_grad():
        up = poolswap.soft_pool2d(x, 2, beta=1.5 + eps).pow(2).sum()
        down = poolswap.soft_pool2d(x, 2, beta=1.5 - eps).pow(2).sum()
    torch.testing.assert_close(pool.log_beta.grad.sum(), 1.5 * (up - down) / (2 * eps), rtol=2e-2, atol=1e-3)


def test_state_dict_round_trip_of_a_learnt_beta():
    a = SoftPool2d(3, 2, 1, learn_beta="channel", num_channels=3)
    with torch.no_grad():
        a.log_beta.copy_(torch.tensor([0.1, -0.2, 0.3]))
    b = SoftPool2d(3, 2, 1, learn_beta="channel", num_channels=3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(a(x), b(x))
    torch.testing.assert_close(b.beta, torch.tensor([0.1, -0.2, 0.3]).exp())


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = SoftPool2d(3, 2, 1, learn_beta="channel", num_channels=8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        return self.head(x.mean((2, 3)))


def test_torch_fx_traces_the_op_as_one_node():
    net = _Net()
    gm = torch.fx.symbolic_trace(net)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert torch.ops.poolswap.soft_pool.default in targets
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(gm(x), net(x))


def test_torch_export_and_compile():
    net = _Net().eval()
    x = torch.randn(2, 3, 16, 16)
    exported = torch.export.export(net, (x,))
    assert any(n.target == torch.ops.poolswap.soft_pool.default for n in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(x), net(x))
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    x.requires_grad_(True)
    out = compiled(x)
    torch.testing.assert_close(out, net(x))
    out.sum().backward()
    assert x.grad is not None and net.pool.log_beta.grad is not None


def test_a_tensor_beta_value_check_stays_out_of_tracing_export_and_compile():
    """The functional op checks a tensor beta's values eagerly, never while tracing (no values then)."""
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.beta = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))

        def forward(self, x):
            return poolswap.soft_pool2d(x, 2, beta=self.beta)

    net, x = Net(), torch.randn(1, 3, 8, 8)
    expected = net(x)
    torch.testing.assert_close(torch.fx.symbolic_trace(net)(x), expected)
    exported = torch.export.export(net, (x,))
    torch.testing.assert_close(exported.module()(x), expected)
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), expected)


def test_learnt_beta_stays_positive_under_any_update():
    pool = SoftPool1d(3, learn_beta=True)
    with torch.no_grad():
        pool.log_beta.fill_(-50.0)
    assert pool.beta > 0
    assert math.isfinite(float(pool(torch.randn(1, 2, 9)).detach().sum()))
