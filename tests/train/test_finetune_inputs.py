"""``finetune`` changes the student it trains and nothing else, says what it trains, and refuses frozen students."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.train import helpers
from poolswap.cli import main
from poolswap.errors import PoolswapError
from poolswap.ops import softpool_modules
from poolswap.surgery import convert
from poolswap.train import FinetuneConfig, finetune

CONFIG = dict(batch_size=4, data_config=helpers.DATA_CONFIG, lr=0.05, max_steps_per_epoch=2)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _weights(model) -> dict:
    return {k: v.clone() for k, v in model.named_parameters() if not k.endswith("log_beta")}


def test_teacher_and_config_are_left_as_they_were(converted, data_dir):
    _, model, original = converted
    original.train()
    original.features[1].eval()  # a mixed-mode teacher: each module's mode must come back
    modes = [m.training for m in original.modules()]
    flags = [p.requires_grad for p in original.parameters()]
    state = _state(original)
    config = FinetuneConfig(**CONFIG, calibrate=1)
    config_before = config.to_dict()
    finetune(model, teacher=original, train_data=data_dir / "train", val_data=data_dir / "val", config=config,
             progress=False)
    assert [m.training for m in original.modules()] == modes
    assert [p.requires_grad for p in original.parameters()] == flags == [True] * len(flags)
    assert _same(_state(original), state)
    assert config.to_dict() == config_before


def test_a_student_copied_from_the_teacher_afterwards_trains_its_weights(converted, data_dir):
    """The issue's sequence: a second student converted from the same original after a fine-tune."""
    _, model, original = converted
    config = FinetuneConfig(**CONFIG)
    finetune(model, teacher=original, train_data=data_dir / "train", config=config, progress=False)
    second = convert(original, learn_beta=True)
    weights = _weights(second)
    result = finetune(second, teacher=original, train_data=data_dir / "train", config=config, progress=False)
    assert result.parameters.weights == sum(v.numel() for v in weights.values())
    assert any(not torch.equal(weights[k], v) for k, v in _weights(second).items())


def test_logs_how_many_parameters_train(converted, data_dir, caplog):
    _, model, original = converted
    weights = sum(p.numel() for n, p in model.named_parameters() if not n.endswith("log_beta"))
    betas = sum(p.numel() for m in softpool_modules(model).values() for p in m.parameters())
    with caplog.at_level("INFO", logger="poolswap.train"):
        result = finetune(model, teacher=original, train_data=data_dir / "train", config=FinetuneConfig(**CONFIG),
                          progress=False)
    assert (result.parameters.weights, result.parameters.betas, result.parameters.frozen) == (weights, betas, 0)
    assert f"training {weights + betas:,} parameters ({weights:,} weights, {betas:,} betas)" in caplog.text


def test_a_student_with_frozen_weights_is_refused(converted, data_dir, tmp_path):
    _, model, original = converted
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("log_beta"))
    state = _state(model)
    with pytest.raises(PoolswapError, match=r"only the student's 2 SoftPool betas would train.*--only-betas"):
        finetune(model, teacher=original, train_data=data_dir / "train", config=FinetuneConfig(**CONFIG),
                 run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists() and _same(_state(model), state)


def test_nothing_to_train_is_refused(converted, data_dir):
    _, model, original = converted
    model.requires_grad_(False)
    with pytest.raises(PoolswapError, match="nothing to train"):
        finetune(model, teacher=original, train_data=data_dir / "train", config=FinetuneConfig(**CONFIG))


def test_only_betas_trains_the_betas_alone(converted, data_dir):
    _, model, original = converted
    weights = _weights(model)
    betas = {k: v.clone() for k, v in model.named_parameters() if k.endswith("log_beta")}
    result = finetune(model, teacher=original, train_data=data_dir / "train",
                      config=FinetuneConfig(**CONFIG, only_betas=True, optimizer="adamw"), progress=False)
    assert result.parameters.weights == 0 and result.parameters.betas == 2
    assert _same(_weights(model), weights)
    assert any(not torch.equal(betas[k], v) for k, v in model.named_parameters() if k in betas)
    assert all(p.requires_grad for p in model.parameters())  # the flags come back as they were


def test_only_betas_needs_learnt_betas(data_dir):
    original = helpers.teacher()
    model = convert(original)  # fixed betas
    with pytest.raises(PoolswapError, match="no learnt betas"):
        finetune(model, teacher=original, train_data=data_dir / "train",
                 config=FinetuneConfig(**CONFIG, only_betas=True))


def test_a_student_sharing_the_teachers_parameters_is_refused(data_dir):
    original = helpers.teacher()
    student = convert(copy.deepcopy(original), inplace=True)
    student.features[0].weight = original.features[0].weight
    with pytest.raises(PoolswapError, match="shares parameters with the teacher"):
        finetune(student, teacher=original, train_data=data_dir / "train", config=FinetuneConfig(**CONFIG))


def test_only_betas_flag(converted, data_dir, tmp_path):
    path, _, _ = converted
    run = tmp_path / "run"
    size = ["--input-size", "16,16", "--crop-pct", "1", "--batch-size", "4", "--max-steps", "1", "--no-progress"]
    assert main(["finetune", "--trust-module", "tests.train.helpers", str(path), "--data", str(data_dir), "-o", str(run), *size, "--only-betas"]) == 0
    import yaml

    assert yaml.safe_load((run / "args.yaml").read_text())["config"]["only_betas"] is True


def test_a_teacher_elsewhere_is_copied_not_moved(monkeypatch):
    from poolswap.train import distill

    teacher = helpers.teacher().train()
    monkeypatch.setattr(distill, "_on_device", lambda module, device: False)  # as if it lived on another device
    with distill.frozen_teacher(teacher, torch.device("cpu")) as used:
        assert used is not teacher and not used.training
        assert all(torch.equal(a, b) for a, b in zip(used.state_dict().values(), teacher.state_dict().values()))
    assert teacher.training


@pytest.mark.cuda
def test_a_cpu_teacher_stays_on_the_cpu(converted, data_dir):
    _, model, original = converted
    result = finetune(model, teacher=original, train_data=data_dir / "train",
                      config=FinetuneConfig(**CONFIG, device="cuda"), progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert all(p.device.type == "cpu" for p in original.parameters())
