"""Model lists and helpers shared by the surgery tests."""

from __future__ import annotations

import torch
from torch import nn

import poolswap
from poolswap.ops import softpool_modules

# (name, input size H=W) for timm models, pretrained=False. The minimum (or native) size each accepts.
TIMM_FAST = [
    ("resnet18", 64), ("resnet50d", 64), ("resnest14d", 64), ("res2net50_26w_4s", 64), ("densenet121", 64),
    ("inception_v3", 75), ("legacy_xception", 71), ("dla34", 64), ("vovnet39a", 64), ("nfnet_f0", 64),
    ("dm_nfnet_f0", 64), ("poolformer_s12", 64), ("ghostnetv2_100", 64), ("hgnetv2_b0", 64),
    ("resnetv2_50x1_bit", 64), ("vgg16", 64), ("tf_efficientnet_b0", 64), ("resnet26d", 64),
    ("ecaresnet26t", 64), ("skresnet18", 64), ("cspresnet50", 64), ("dpn68", 64), ("selecsls42b", 64),
    ("ghostnet_100", 64), ("tf_mixnet_s", 64), ("gernet_s", 64), ("ese_vovnet19b_dw", 64),
    ("densenetblur121d", 64), ("resnetblur18", 64), ("regnetx_002", 64), ("convnext_atto", 64),
    ("mobilenetv3_small_050", 64), ("poolformerv2_s12", 64), ("darknet53", 64), ("dla46_c", 64),
]
TIMM_SLOW = [
    ("inception_v4", 75), ("tresnet_m", 64), ("maxvit_tiny_tf_224", 224), ("gcvit_xxtiny", 224),
    ("coatnet_0_rw_224", 224), ("nest_tiny", 224), ("hiera_tiny_224", 224), ("seresnext26d_32x4d", 64),
    ("cspdarknet53", 64), ("efficientformer_l1", 224), ("hrnet_w18_small", 64), ("repvgg_a2", 64),
    ("rexnet_100", 64), ("pit_ti_224", 224), ("mobilevit_xxs", 64),
]

TORCHVISION_LOCAL = [
    ("alexnet", 64), ("vgg11", 32), ("vgg11_bn", 32), ("vgg13", 32), ("vgg16", 32), ("vgg19_bn", 32),
    ("resnet18", 32), ("resnet50", 32), ("resnext50_32x4d", 32), ("wide_resnet50_2", 32),
    ("densenet121", 32), ("googlenet", 32), ("inception_v3", 75), ("squeezenet1_0", 32), ("squeezenet1_1", 32),
    ("shufflenet_v2_x0_5", 32), ("maxvit_t", 224),
]
TORCHVISION_LOCAL_SLOW = [
    ("vgg13_bn", 32), ("vgg16_bn", 32), ("vgg19", 32), ("resnet34", 32), ("resnet101", 32), ("resnet152", 32),
    ("resnext101_32x8d", 32), ("resnext101_64x4d", 32), ("wide_resnet101_2", 32), ("densenet161", 32),
    ("densenet169", 32), ("densenet201", 32), ("shufflenet_v2_x1_0", 32), ("shufflenet_v2_x1_5", 32),
    ("shufflenet_v2_x2_0", 32),
]
TORCHVISION_NO_LOCAL = [
    ("efficientnet_b0", 32), ("mobilenet_v2", 32), ("mobilenet_v3_small", 32), ("regnet_y_400mf", 32),
    ("convnext_tiny", 32),
]
TORCHVISION_NO_LOCAL_SLOW = [
    ("efficientnet_b1", 32), ("efficientnet_v2_s", 32), ("mobilenet_v3_large", 32), ("regnet_x_400mf", 32),
    ("convnext_small", 32),
]


def torchvision_model(name: str) -> nn.Module:
    import torchvision

    kwargs = {}
    if name in ("googlenet", "inception_v3"):
        kwargs = {"init_weights": False, "aux_logits": True}
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def timm_model(name: str) -> nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False).eval()


def set_limit_betas(model: nn.Module, max_beta: float = 1e8, avg_beta: float = 1e-7) -> None:
    """Large beta where the original pooled by max, tiny beta (the valid-window mean) where it averaged."""
    kinds = {s["name"]: s["kind"] for s in model.poolswap_manifest["sites"]}
    for name, module in softpool_modules(model).items():
        module.initial_beta = max_beta if kinds[name] in ("max", "global_max", "adaptive_max") else avg_beta


def convert_for_comparison(model: nn.Module, x: torch.Tensor, report=None) -> nn.Module:
    """Swap the local pools whose limit is the original op (excluding count_include_pad sites)."""
    report = report if report is not None else poolswap.inspect(model, x)
    flagged = [s.name for s in report if s.kind == "avg" and any("count_include_pad" in w for w in s.warnings)]
    converted = poolswap.convert(model, example_input=x, exclude=flagged or None, report=report)
    set_limit_betas(converted)
    return converted


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


class _AvgBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(self.conv(x), 2, 2)


class FunctionalNet(nn.Module):
    """Function sites in the root's own forward and in a child's (for the ``package.module:factory`` spec)."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.block = _AvgBlock(8)
        self.fc = nn.Linear(8, num_classes)
        self.num_classes = num_classes

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.stem(x))), 3, 2, 1, ceil_mode=True)
        return self.fc(self.block(x).mean((2, 3)))


def functional_net(num_classes: int = 4) -> nn.Module:
    return FunctionalNet(num_classes)
