"""``replace_head``: the classifier found and replaced, seeded, in torchvision and timm models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from poolswap.errors import PoolswapError
from poolswap.model.head import find_head, replace_head


@pytest.mark.parametrize("name, head", [("squeezenet1_1", "classifier.1"), ("resnet18", "fc"),
                                        ("mobilenet_v3_small", "classifier.3")])
def test_torchvision_heads_are_found_and_replaced(name, head):
    import torchvision

    model = getattr(torchvision.models, name)(num_classes=1000).eval()
    assert find_head(model, 1000) == head
    assert replace_head(model, 7, num_outputs=1000, seed=0) == head
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_the_new_head_is_a_function_of_the_seed():
    def head(seed):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        replace_head(model, 3, num_outputs=10, seed=seed)
        return model[3].weight.detach().clone()

    assert torch.equal(head(1), head(1)) and not torch.equal(head(1), head(2))


def test_timm_models_use_their_reset_classifier():
    import timm

    model = timm.create_model("resnet10t", num_classes=1000).eval()
    assert replace_head(model, 5, num_outputs=1000) == "reset_classifier"
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5) and model.num_classes == 5


def test_a_model_without_a_matching_layer_is_one_line():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(PoolswapError, match="found no Linear or 1x1 Conv2d layer with the model's 4 outputs"):
        replace_head(model, 3, num_outputs=4)


def test_a_new_head_keeps_its_own_learning_rate_through_copies():
    import copy

    from poolswap.train.optim import param_groups

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    replace_head(model, 3, num_outputs=10)
    copied = copy.deepcopy(model)  # as a study's conversion copies its original
    groups = {g["name"]: g for g in param_groups(copied, lr=1e-5, beta_lr=1e-5, weight_decay=0.0, head_lr=1e-3)}
    assert {id(p) for p in groups["head"]["params"]} == {id(copied[3].weight), id(copied[3].bias)}
    assert groups["head"]["lr"] == 1e-3 and groups["decay"]["lr"] == 1e-5
    assert "head" not in {g["name"] for g in param_groups(copied, lr=1e-5, beta_lr=1e-5, weight_decay=0.0)}
