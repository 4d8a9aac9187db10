"""Every SoftPool module type exports, learnt temperatures included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poolswap.deploy import session
from poolswap.errors import PoolswapError
from poolswap.export import export_onnx
from poolswap.ops import GlobalSoftPool, SoftPool2dSame, SoftPoolBase


def _model(learn_beta):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        SoftPool2dSame(3, 2, learn_beta=learn_beta, num_channels=4),
        GlobalSoftPool(2, keepdim=False, learn_beta=learn_beta, num_channels=4),
        torch.nn.Linear(4, 2),
    ).eval()
    if learn_beta:
        with torch.no_grad():
            model[1].log_beta.fill_(0.7)
            model[2].log_beta.fill_(-0.3)
    return model


def test_same_and_global_softpools_share_the_base_class():
    model = _model(False)
    assert isinstance(model[1], SoftPoolBase) and isinstance(model[2], SoftPoolBase)


@pytest.mark.parametrize("learn_beta", [False, "scalar"])
def test_same_padded_and_global_softpools_export_with_their_temperature(tmp_path, learn_beta):
    model = _model(learn_beta)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_size=(3, 17, 17))
    x = torch.randn(3, 3, 17, 17)
    sess = session(path)
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-5, rtol=1e-5)


def test_a_per_channel_learnt_beta_on_a_global_pool_is_a_clear_error(tmp_path):
    with pytest.raises(PoolswapError, match="learn_beta='scalar'"):
        export_onnx(_model("channel"), tmp_path / "m.onnx", input_size=(3, 17, 17))


def test_the_default_body_is_exact_and_stays_finite_at_a_large_calibrated_beta(tmp_path):
    """Calibration picks betas up to 128: the fast body's per-channel shift turns such windows into 0/0."""
    from poolswap.ops import SoftPool2d

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), SoftPool2d(3, 2, 1, beta=128.0)).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, input_size=(3, 16, 16))
    x = torch.randn(2, 3, 16, 16) * 3
    body_only = session(path, library=False)
    (got,) = body_only.run(None, {body_only.get_inputs()[0].name: x.numpy()})
    assert np.isfinite(got).all()
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4, rtol=1e-4)
