"""Calibration picks each site's beta to match the teacher, without touching the weights."""

from __future__ import annotations

import pytest
import torch

from tests.train import helpers
from poolswap.errors import PoolswapError
from poolswap.train import calibrate


def _batches(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 3, 16, 16, generator=g), torch.zeros(8, dtype=torch.long)) for _ in range(n)]


@pytest.mark.parametrize("learn_beta", [False, True])
def test_calibration_moves_betas_towards_max_pooling(learn_beta):
    teacher = helpers.teacher()
    student = helpers.swap(teacher, beta=0.25, learn_beta=learn_beta)
    weights = {k: v.clone() for k, v in student.state_dict().items() if not k.endswith("log_beta")}
    result = calibrate(student, teacher, _batches(), num_batches=2)
    assert result.samples == 16
    assert result.kl_after < result.kl_before
    assert result.agreement_after >= result.agreement_before
    # The teacher pools with max: the best SoftPool is the sharpest on the grid.
    assert all(beta > 8 for beta in result.betas.values())
    for k, v in student.state_dict().items():
        if k in weights:
            torch.testing.assert_close(v, weights[k], rtol=0, atol=0)
    site = student.features[3]
    assert float(site.beta) == pytest.approx(result.betas["features.3"], rel=1e-5)


def test_calibration_never_makes_the_fit_worse():
    teacher = helpers.teacher()
    student = helpers.swap(teacher, beta=1.0)
    result = calibrate(student, teacher, _batches(), grid=(0.25,))  # a grid worse than where it starts
    assert result.kl_after == pytest.approx(result.kl_before)
    assert result.betas == {"features.3": 1.0, "features.7": 1.0}


def test_needs_softpool_sites():
    teacher = helpers.teacher()
    with pytest.raises(PoolswapError, match="no SoftPool"):
        calibrate(helpers.teacher(), teacher, _batches())
