"""convert: rules, in-place swaps, GraphModule owners, state_dict keys, learnable beta."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import poolswap
from poolswap.errors import PoolswapError
from poolswap.ops import SoftPool2d
from poolswap.ops import GlobalSoftPool, SoftPool2dSame, softpool_modules
from poolswap.surgery import manifest

from _surgery_models import relative_error, set_limit_betas, timm_model, torchvision_model
from test_surgery_find import DataDependent, Unpooling


class RootFunctional(nn.Module):
    """Pools in the root's own forward: the root becomes a GraphModule that keeps the user's API."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)
        self.greeting = "hello"

    def features(self, x):
        return self.bn(self.conv(x))

    def forward(self, x):
        x = F.max_pool2d(self.features(x), 3, 2, 1)
        x = torch.max_pool2d(x, 2)
        return self.fc(x.mean((2, 3)))


def test_module_sites_swap_in_place_and_keep_the_class():
    model = timm_model("resnet50d")
    x = torch.randn(2, 3, 64, 64)
    converted = poolswap.convert(model, example_input=x)
    assert type(converted) is type(model) and converted is not model
    assert isinstance(converted.get_submodule("maxpool"), SoftPool2d)
    assert isinstance(converted.get_submodule("layer2.0.downsample.0"), SoftPool2d)
    assert converted.get_submodule("layer2.0.downsample.0").ceil_mode
    # keys, num_batches_tracked included, are unchanged
    assert list(converted.state_dict()) == list(model.state_dict())
    assert any(k.endswith("num_batches_tracked") for k in converted.state_dict())
    assert converted.pretrained_cfg == model.pretrained_cfg
    assert converted.forward_features(x).shape == model.forward_features(x).shape
    converted.reset_classifier(5)
    assert converted(x).shape == (2, 5)
    # the original is untouched
    assert isinstance(model.maxpool, nn.MaxPool2d)


def test_functional_sites_become_modules_under_their_owner():
    model = torchvision_model("inception_v3")
    x = torch.randn(2, 3, 96, 96)
    converted = poolswap.convert(model, example_input=x)
    assert type(converted).__name__ == "Inception3" and converted.transform_input == model.transform_input
    assert isinstance(converted.Mixed_5b, fx.GraphModule)
    assert isinstance(converted.get_submodule("Mixed_5b.avg_pool2d"), SoftPool2d)
    assert isinstance(converted.get_submodule("AuxLogits.avg_pool2d"), SoftPool2d)
    assert list(converted.state_dict()) == list(model.state_dict())
    swapped = [s for s in converted.poolswap_manifest["sites"] if s["action"] == "swap"]
    assert len(swapped) == 12 and all(isinstance(converted.get_submodule(s["name"]), SoftPool2d) for s in swapped)
    # at 96x96 the 3x3 pools of Mixed_7b/7c see 1x1 maps: global pools in effect, left as they were
    left = {s["name"]: s["reason"] for s in converted.poolswap_manifest["sites"] if s["kind"] == "avg" and s["action"] == "skip"}
    assert set(left) == {"Mixed_7b.avg_pool2d", "Mixed_7c.avg_pool2d"}
    assert all("global pool in effect" in reason for reason in left.values())
    aux = converted.AuxLogits.train()  # the auxiliary head runs in training only, on a 17x17 map
    assert aux(torch.randn(2, 768, 17, 17)).shape == (2, 1000)


def test_root_graph_module_keeps_attributes_methods_and_keys():
    torch.manual_seed(0)
    model = RootFunctional().eval()
    x = torch.randn(2, 3, 16, 16)
    converted = poolswap.convert(model, example_input=x, beta=1e5)
    assert isinstance(converted, fx.GraphModule)
    assert converted.greeting == "hello"
    torch.testing.assert_close(converted.features(x), model.features(x))
    assert list(converted.state_dict()) == list(model.state_dict())
    assert {"max_pool2d", "max_pool2d_1"} <= set(dict(converted.named_children()))
    with torch.no_grad():
        assert relative_error(model(x), converted(x)) < 1e-4
    assert manifest(converted)["sites"][0]["module"] == "max_pool2d"


@pytest.mark.slow
def test_learn_beta_adds_only_log_beta_keys():
    model = torchvision_model("inception_v3")
    x = torch.randn(1, 3, 96, 96)
    for mode, shape in (("scalar", ()), ("channel", None)):
        converted = poolswap.convert(model, example_input=x, learn_beta=mode, beta=2.0)
        new = set(converted.state_dict()) - set(model.state_dict())
        swapped = {s["name"] for s in converted.poolswap_manifest["sites"] if s["action"] == "swap"}
        assert new == {f"{name}.log_beta" for name in swapped}
        assert set(model.state_dict()) <= set(converted.state_dict())
        module = converted.get_submodule("Mixed_5b.avg_pool2d")
        assert module.log_beta.shape == (shape if shape is not None else (192,))
        assert abs(float(module.beta.flatten()[0]) - 2.0) < 1e-6


def test_rules_kinds_include_exclude_strict():
    model = torchvision_model("resnet18")
    x = torch.randn(1, 3, 64, 64)
    none = poolswap.convert(model, example_input=x, exclude=["maxpool"])
    assert isinstance(none.maxpool, nn.MaxPool2d)
    glob = poolswap.convert(model, example_input=x, kinds=["global_avg", "adaptive_avg"])
    assert isinstance(glob.avgpool, GlobalSoftPool) and isinstance(glob.maxpool, nn.MaxPool2d)
    assert glob(x).shape == (1, 1000)
    by_name = poolswap.convert(model, example_input=x, include=["avg*"])
    assert isinstance(by_name.avgpool, GlobalSoftPool)
    by_kind_rule = poolswap.convert(model, example_input=x, include=["adaptive_avg", "maxpool"])
    assert isinstance(by_kind_rule.avgpool, GlobalSoftPool) and isinstance(by_kind_rule.maxpool, SoftPool2d)
    with pytest.raises(PoolswapError, match="matches no site"):
        poolswap.convert(model, example_input=x, include=["layer9.*"], strict=True)
    with pytest.raises(PoolswapError, match="unknown pool kind"):
        poolswap.convert(model, example_input=x, kinds=["median"])
    # contradicting rules: without strict the exclusion wins; with strict they are an error, not a silent no-op
    assert isinstance(poolswap.convert(model, example_input=x, include=["maxpool"], exclude=["maxpool"]).maxpool,
                      nn.MaxPool2d)
    with pytest.raises(PoolswapError, match="include 'maxpool' swaps nothing: maxpool is skipped .excluded by rule"):
        poolswap.convert(model, example_input=x, include=["maxpool"], exclude=["maxpool"], strict=True)
    with pytest.raises(PoolswapError, match="include 'maxpool' swaps nothing: maxpool is skipped .kind max not"):
        poolswap.convert(model, example_input=x, include=["maxpool"], kinds=["adaptive_avg"], strict=True)


@pytest.mark.slow
def test_global_method_sites_keep_their_output_shape():
    model = timm_model("ghostnetv2_100")
    x = torch.randn(2, 3, 64, 64)
    converted = poolswap.convert(model, example_input=x, kinds=["all"], beta=1e-7)
    means = [s["name"] for s in converted.poolswap_manifest["sites"] if s["kind"] == "global_avg"]
    assert means and all(isinstance(converted.get_submodule(n), GlobalSoftPool) for n in means)
    reference = poolswap.convert(model, example_input=x, exclude=["global_avg", "adaptive_avg"], beta=1e-7)
    with torch.no_grad():
        assert relative_error(reference(x), converted(x)) < 1e-4


def test_blocked_sites_are_never_swapped():
    model = Unpooling().eval()
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 8, 8), include=["pool", "sub"])
    assert isinstance(converted.pool, nn.MaxPool2d)  # indices used
    assert isinstance(converted.sub, SoftPool2d)  # kernel-1 subsampling: by name only
    assert converted(torch.randn(1, 3, 8, 8)).shape == (1, 4, 4, 4)


def test_untraceable_root_still_converts():
    model = DataDependent().eval()
    x = torch.randn(1, 3, 8, 8)
    converted = poolswap.convert(model, example_input=x, beta=1e-8)
    assert type(converted) is DataDependent
    assert isinstance(converted.block[1], SoftPool2d)
    assert isinstance(converted.get_submodule("branch.avg_pool2d"), SoftPool2d)
    set_limit_betas(converted)
    with torch.no_grad():
        assert relative_error(model(x), converted(x)) < 1e-4


def test_same_padding_pools_become_softpool2d_same():
    from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame

    model = nn.Sequential(nn.Conv2d(3, 4, 1), MaxPool2dSame(3, 2), AvgPool2dSame(2, 1), nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(2, 3, 9, 10)
    converted = poolswap.convert(model, example_input=x)
    assert isinstance(converted[1], SoftPool2dSame) and isinstance(converted[2], SoftPool2dSame)
    site = converted.poolswap_manifest["sites"][1]
    assert site["geometry"]["same"] and any("count_include_pad" in w for w in site["warnings"])
    with torch.no_grad():
        assert converted(x).shape == model(x).shape


@pytest.mark.slow
def test_maxvit_avg_pool2d_same_sites():
    model = timm_model("maxvit_tiny_tf_224")
    report = poolswap.inspect(model, torch.randn(1, 3, 224, 224))
    same = [s for s in report if s.geometry.get("same")]
    assert len(same) == 4 and all(s.action == "swap" for s in same)


def test_convert_inplace_and_bad_learn_beta():
    model = torchvision_model("squeezenet1_0")
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 64, 64), inplace=True)
    assert converted is model and isinstance(model.features[2], SoftPool2d)
    with pytest.raises(PoolswapError):
        poolswap.convert(model, learn_beta="vector")
    assert len(softpool_modules(converted)) == 3


def test_a_local_pool_over_its_whole_input_is_a_global_pool_in_effect():
    # as s3d's head AvgPool3d((2, 7, 7)) on its 2x7x7 map: one window over everything
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.AvgPool2d(7), nn.Flatten())
    report = poolswap.inspect(model, torch.randn(1, 3, 14, 14))
    actions = {s.name: (s.action, s.reason) for s in report}
    assert actions["1"][0] == "swap"
    assert actions["2"][0] == "skip" and "covers its whole 7x7 input: a global pool in effect" in actions["2"][1]
    # the same pool on a larger map is a local pool again, and a name asks for it
    assert {s.name: s.action for s in poolswap.inspect(model, torch.randn(1, 3, 28, 28))}["2"] == "swap"
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 14, 14), include=["2"])
    assert isinstance(converted[2], SoftPool2d)
