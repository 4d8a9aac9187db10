"""inspect: finding sites (modules, functions, methods), roles, actions, mechanisms."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import poolswap
from poolswap.errors import PoolswapError
from poolswap.ops import SoftPool2d
from poolswap.surgery import Site

from _surgery_models import timm_model, torchvision_model


class Unpooling(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.sub = nn.MaxPool2d(1, 2)

    def forward(self, x):
        y, idx = self.pool(self.conv(x))
        return self.sub(self.unpool(y, idx))


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 5)

    def forward(self, x):  # (B, N, C)
        return self.proj(x.mean(1))


class DataDependent(nn.Module):
    """A root whose own forward cannot be traced: its children are looked into on their own."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 2, 1))
        self.branch = FunctionalBlock()

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.branch(self.block(x))
        return self.branch(self.block(-x))


class FunctionalBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 1)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), 2, 2, count_include_pad=False).mean((2, 3))


def test_torchvision_resnet18_sites():
    report = poolswap.inspect(torchvision_model("resnet18"), torch.randn(1, 3, 64, 64))
    assert [s.name for s in report] == ["maxpool", "avgpool"]
    maxpool, avgpool = report["maxpool"], report["avgpool"]
    assert (maxpool.kind, maxpool.action, maxpool.role, maxpool.mechanism) == ("max", "swap", "stem", "fx-graph")
    assert maxpool.geometry["kernel_size"] == (3, 3) and maxpool.geometry["padding"] == (1, 1)
    assert maxpool.input_shape == (1, 64, 32, 32) and maxpool.output_shape == (1, 64, 16, 16)
    assert (avgpool.kind, avgpool.action, avgpool.role) == ("adaptive_avg", "skip", "head")
    assert "asked for" in avgpool.reason
    assert isinstance(report.sites[0], Site) and report.untraced == []


def test_inception_v3_functional_and_train_only_sites():
    report = poolswap.inspect(torchvision_model("inception_v3"), torch.randn(1, 3, 96, 96))
    functional = [s for s in report if s.source == "function"]
    local = [s for s in functional if s.kind in ("max", "avg") and not s.train_only]
    assert len(local) == 11  # torchvision's Inception3 pools 11 times with F.*_pool2d
    assert {s.owner for s in local} >= {"Mixed_5b", "Mixed_6a", "Mixed_7c"}
    aux = report["AuxLogits.avg_pool2d"]
    assert aux.train_only and aux.action == "swap" and aux.geometry["kernel_size"] == (5, 5)
    flagged = report["Mixed_5b.avg_pool2d"]
    assert flagged.action == "swap" and any("count_include_pad" in w for w in flagged.warnings)
    assert "count_include_pad" in report.table()


def test_timm_ghostnetv2_function_sites_and_se_roles():
    report = poolswap.inspect(timm_model("ghostnetv2_100"), torch.randn(1, 3, 64, 64))
    avg = [s for s in report if s.op.endswith("avg_pool2d") and s.source == "function"]
    assert len(avg) == 14
    # at 64x64 the last stage's 2x2 pools see 2x2 maps: global pools in effect, left alone
    whole = [s for s in avg if s.input_shape[-2:] == (2, 2)]
    assert len(whole) == 4 and all(s.action == "skip" and "global pool in effect" in s.reason for s in whole)
    assert all(s.action == "swap" for s in avg if s not in whole)
    se = [s for s in report if s.source == "method"]
    assert se and all(s.kind == "global_avg" and s.role == "squeeze-excitation" and s.action == "skip" for s in se)


def test_nfnet_pools_hidden_in_leaf_modules():
    report = poolswap.inspect(timm_model("nfnet_f0"), torch.randn(1, 3, 64, 64))
    down = [s for s in report if s.kind == "avg"]
    assert len(down) == 3 and all(s.mechanism == "fx-leaf-children" for s in down)
    assert all(s.geometry["ceil_mode"] for s in down)


def test_indices_subsampling_and_token_pools():
    report = poolswap.inspect(Unpooling(), torch.randn(1, 3, 8, 8))
    assert report["pool"].action == "skip" and "return_indices" in report["pool"].reason
    assert report["sub"].action == "skip" and "subsampling" in report["sub"].reason
    tokens = poolswap.inspect(Tokens(), torch.randn(2, 7, 8))
    assert len(tokens) == 1 and tokens[0].role == "token-pool" and tokens[0].action == "skip"
    assert "token sequence" in tokens[0].reason


def test_untraceable_root_falls_back_to_children_and_eager():
    report = poolswap.inspect(DataDependent(), torch.randn(1, 3, 8, 8))
    assert [u["path"] for u in report.untraced] == [""]
    assert report["block.1"].mechanism in ("fx-leaf-children", "eager-module")
    fn = report["branch.avg_pool2d"]
    assert fn.mechanism == "fx-leaf-children" and fn.action == "swap" and fn.num_channels == 6
    assert report["branch.mean"].kind == "global_avg"
    assert "not looked into" in report.table()


class HiddenPool(nn.Module):
    """A root that cannot be traced and pools in its own code: that pool is out of surgery's reach."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 2, 1))

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            x = torch.nn.functional.avg_pool2d(x, 2)
        return self.block(x)


def test_strict_refuses_pools_hidden_in_untraceable_code():
    x = torch.randn(1, 3, 8, 8)
    # DataDependent's own forward calls no pooling function: its untraced root hides nothing
    assert isinstance(poolswap.convert(DataDependent(), example_input=x, strict=True).block[1], SoftPool2d)
    assert isinstance(poolswap.convert(HiddenPool(), example_input=x).block[1], SoftPool2d)  # not strict: as before
    with pytest.raises(PoolswapError, match="strict: the model could not be traced and its code calls a pooling"):
        poolswap.convert(HiddenPool(), example_input=x, strict=True)


def test_unused_pool_module_is_found_eagerly():
    class Spare(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.spare = nn.AvgPool2d(2)

        def forward(self, x):
            return self.conv(x)

    report = poolswap.inspect(Spare(), torch.randn(1, 3, 4, 4))
    assert report["spare"].mechanism == "eager-module"


def test_report_json_round_trip():
    report = poolswap.inspect(torchvision_model("squeezenet1_0"), torch.randn(1, 3, 64, 64))
    data = json.loads(report.to_json())
    assert {"name", "kind", "action", "reason", "mechanism", "role", "geometry"} <= set(data["sites"][0])
    assert data["summary"] == {"sites": 4, "swap": 3, "skip": 1}
    again = Site.from_dict(data["sites"][0])
    assert again.geometry == report[0].geometry


def test_inspect_without_example_input_uses_the_models_size():
    report = poolswap.inspect(torchvision_model("squeezenet1_1"))
    assert report.input_shape == (1, 3, 224, 224)
    assert report[0].input_shape[-1] == 111
