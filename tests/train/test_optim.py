"""Parameter groups, the warmup-cosine schedule and frozen BatchNorm statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.train import helpers
from poolswap.train import FinetuneConfig
from poolswap.train.optim import WarmupCosine, build_optimizer, build_scheduler, freeze_bn_stats, param_groups


class TestParamGroups:
    def test_no_decay_on_norms_biases_and_betas(self):
        student = helpers.swap(helpers.teacher(), learn_beta=True)
        groups = {g["name"]: g for g in param_groups(student, lr=0.1, beta_lr=0.5, weight_decay=0.01)}
        names = {id(p): n for n, p in student.named_parameters()}
        decayed = {names[id(p)] for p in groups["decay"]["params"]}
        assert decayed == {"features.0.weight", "features.4.weight", "head.3.weight"}
        assert {names[id(p)] for p in groups["beta"]["params"]} == {"features.3.log_beta", "features.7.log_beta"}
        assert groups["no_decay"]["weight_decay"] == 0.0 and groups["beta"]["weight_decay"] == 0.0
        assert groups["decay"]["weight_decay"] == 0.01
        assert groups["beta"]["lr"] == 0.5 and groups["decay"]["lr"] == 0.1
        assert sum(len(g["params"]) for g in groups.values()) == len(list(student.parameters()))

    @pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
    def test_optimizers(self, name, cls):
        student = helpers.swap(helpers.teacher(), learn_beta=True)
        optimizer = build_optimizer(student, FinetuneConfig(optimizer=name, lr=0.1, beta_lr=0.01))
        assert isinstance(optimizer, cls)
        assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.1, 0.01]


class TestSchedule:
    def test_warmup_then_cosine(self):
        f = WarmupCosine(total_steps=10, warmup_steps=2, min_ratio=0.1)
        assert f(0) == pytest.approx(1 / 3) and f(1) == pytest.approx(2 / 3)
        assert f(2) == pytest.approx(1.0)
        assert f(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
        assert f(10) == pytest.approx(0.1)

    def test_scheduler_state_round_trip(self):
        model = nn.Linear(2, 2)
        config = FinetuneConfig(lr=1.0, warmup_steps=1)
        opt = build_optimizer(model, config)
        sched = build_scheduler(opt, total_steps=5, config=config)
        for _ in range(3):
            opt.step()
            sched.step()
        opt2 = build_optimizer(model, config)
        sched2 = build_scheduler(opt2, total_steps=5, config=config)
        opt2.load_state_dict(opt.state_dict())
        sched2.load_state_dict(sched.state_dict())
        opt.step(), sched.step(), opt2.step(), sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()


def test_freeze_bn_keeps_running_stats():
    model = helpers.teacher().train()
    assert freeze_bn_stats(model.modules()) == 2
    before = model.features[1].running_mean.clone()
    model(torch.randn(4, 3, 16, 16))
    torch.testing.assert_close(model.features[1].running_mean, before)
    assert model.features[1].weight.requires_grad


@pytest.mark.parametrize("bad", [dict(lr=0), dict(alpha=1.5), dict(optimizer="lion"), dict(amp="int8"),
                                 dict(epochs=0), dict(temperature=-1)])
def test_config_rejects_bad_values(bad):
    from poolswap.errors import PoolswapError

    with pytest.raises(PoolswapError):
        FinetuneConfig(**bad)
