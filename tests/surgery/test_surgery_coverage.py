"""Coverage: torchvision and timm models convert, run, keep their output shape, and
stay close to the original at the SoftPool limits (large beta for max sites, tiny beta
for avg sites, which tends to the mean over the window's valid positions).

pretrained=False, small inputs (the minimum or native size each model accepts). The
bulk is marked slow; an unmarked subset keeps every family of site covered by default.
"""

from __future__ import annotations

import pytest
import torch

import poolswap

from _surgery_models import (
    TIMM_FAST, TIMM_SLOW, TORCHVISION_LOCAL, TORCHVISION_LOCAL_SLOW, TORCHVISION_NO_LOCAL,
    TORCHVISION_NO_LOCAL_SLOW, convert_for_comparison, relative_error, timm_model, torchvision_model,
)

# Unmarked: one model per kind of site not already exercised by test_find / test_convert.
_FAST_TIMM = {"poolformer_s12", "hgnetv2_b0", "dla46_c"}
_FAST_TV = {"googlenet", "squeezenet1_1", "shufflenet_v2_x0_5"}
_FAST_TV_NONE = {"mobilenet_v3_small"}

# Models whose local pools all get swapped in their comparison run and how many at least.
_NO_LOCAL_TIMM = {"tf_efficientnet_b0", "selecsls42b", "ghostnet_100", "tf_mixnet_s", "gernet_s", "regnetx_002",
                  "convnext_atto", "mobilenetv3_small_050", "darknet53", "hiera_tiny_224", "cspdarknet53",
                  "repvgg_a2", "rexnet_100", "mobilevit_xxs", "pit_ti_224", "hrnet_w18_small"}


def _params(items, fast):
    return [pytest.param(n, s, id=n, marks=() if n in fast else pytest.mark.slow) for n, s in items]


def _check(model, size, expect_local: bool):
    x = torch.randn(2, 3, size, size)
    report = poolswap.inspect(model, x)
    local = [s for s in report if s.kind in ("max", "avg") and s.action == "swap"]
    assert bool(local) == expect_local, report.table()
    table = report.table()
    converted = convert_for_comparison(model, x, report)
    with torch.no_grad():
        expected = model(x)
        got = converted.eval()(x)
    assert got.shape == expected.shape
    assert relative_error(expected, got) < 1e-3, table
    assert list(converted.state_dict()) == list(model.state_dict())
    return report


@pytest.mark.parametrize("name,size", _params(TORCHVISION_LOCAL + TORCHVISION_LOCAL_SLOW, _FAST_TV))
def test_torchvision_with_local_pools(name, size):
    _check(torchvision_model(name), size, expect_local=True)


@pytest.mark.parametrize("name,size", _params(TORCHVISION_NO_LOCAL + TORCHVISION_NO_LOCAL_SLOW, _FAST_TV_NONE))
def test_torchvision_without_local_pools(name, size):
    model = torchvision_model(name)
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, size, size))
    assert not any(s["action"] == "swap" for s in converted.poolswap_manifest["sites"])


@pytest.mark.parametrize("name,size", _params(TIMM_FAST + TIMM_SLOW, _FAST_TIMM))
def test_timm(name, size):
    _check(timm_model(name), size, expect_local=name not in _NO_LOCAL_TIMM)


def test_coverage_lists_are_large_enough():
    assert len({n for n, _ in TIMM_FAST + TIMM_SLOW}) >= 40
