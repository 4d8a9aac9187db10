"""A default fine-tune that does no harm: safe defaults, ``lr='auto'`` and the collapse guard."""

from __future__ import annotations

import copy
import logging
import subprocess
import sys

import pytest
import torch

from tests.train import helpers
from poolswap.cli import main
from poolswap.errors import PoolswapError
from poolswap.train import FinetuneConfig, finetune
from poolswap.train.guard import CollapseGuard
from poolswap.train.lr_find import find_lr
from poolswap.train.optim import build_scheduler, build_optimizer, train_mode

SIZE = ["--input-size", "16,16", "--crop-pct", "1"]


class TestDefaults:
    def test_defaults_are_adamw_at_1e_5_with_warmup(self):
        config = FinetuneConfig()
        assert config.optimizer == "adamw" and config.lr == 1e-5
        assert config.warmup_for(200) == 10 and config.warmup_for(4) == 1 and config.warmup_for(1) == 0
        assert FinetuneConfig(warmup_steps=0).warmup_for(200) == 0
        model = helpers.TinyNet()
        optimizer = build_optimizer(model, config)
        assert isinstance(optimizer, torch.optim.AdamW)
        scheduler = build_scheduler(optimizer, total_steps=200, config=config)
        assert scheduler.get_last_lr()[0] < 1e-5  # warming up from the first step

    def test_lr_accepts_auto_and_numbers_and_refuses_words(self):
        assert FinetuneConfig(lr="auto").lr == "auto"
        assert FinetuneConfig(lr="3e-4").lr == 3e-4
        with pytest.raises(PoolswapError, match="lr must be a number > 0 or 'auto'"):
            FinetuneConfig(lr="fast")

    def test_cli_rejects_a_bad_lr_in_one_line(self, converted, data_dir, tmp_path):
        path, _, _ = converted
        proc = subprocess.run([sys.executable, "-m", "poolswap.cli", "finetune", str(path), "--data", str(data_dir),
                               "-o", str(tmp_path / "run"), "--lr", "fast", *SIZE], capture_output=True, text=True)
        assert proc.returncode == 2
        errors = [line for line in proc.stderr.splitlines() if line.startswith("poolswap: error:")]
        assert len(errors) == 1 and "--lr" in errors[0] and not (tmp_path / "run").exists()


class TestStudentMode:
    def test_train_mode_freezes_batchnorm_and_turns_dropout_off_unless_asked(self):
        class DropPath(torch.nn.Identity):  # timm's stochastic depth, recognised by its class name
            pass

        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Dropout2d(0.5),
                                    DropPath(), torch.nn.Flatten(), torch.nn.Dropout(0.5)).eval()
        train_mode(model, FinetuneConfig())  # the default: the student computes what its eval-mode teacher does
        assert model.training and model[0].training
        assert not any(model[i].training for i in (1, 2, 3, 5))
        train_mode(model, FinetuneConfig(dropout=True, freeze_bn=False))
        assert all(model[i].training for i in (1, 2, 3, 5))

    def test_update_bn_and_dropout_flags(self):
        import argparse

        from poolswap.options import add_options, from_args

        parser = argparse.ArgumentParser()
        add_options(parser, FinetuneConfig)
        assert from_args(FinetuneConfig, parser.parse_args([])).freeze_bn
        config = from_args(FinetuneConfig, parser.parse_args(["--update-bn", "--dropout"]))
        assert not config.freeze_bn and config.dropout

    def test_a_run_saved_before_the_dropout_setting_resumes_with_dropout_on(self):
        saved = {k: v for k, v in FinetuneConfig().to_dict().items() if k != "dropout"}
        assert FinetuneConfig.from_dict(saved).dropout
        assert not FinetuneConfig.from_dict({**saved, "dropout": False}).dropout

    @pytest.mark.parametrize("dropout", [False, True])
    def test_distilling_an_unchanged_network_moves_it_only_with_dropout_on(self, converted, data_dir, dropout):
        _, _, original = converted
        model = copy.deepcopy(original)  # the student equals its teacher; TinyNet has dropout before its head
        start = {k: v.clone() for k, v in model.state_dict().items()}
        # SGD: its steps scale with the gradient, which is zero but for rounding when the student matches
        config = FinetuneConfig(optimizer="sgd", lr=0.1, alpha=1.0, weight_decay=0.0, freeze_bn=True, warmup_steps=0,
                                batch_size=4, max_steps_per_epoch=3, dropout=dropout, data_config=helpers.DATA_CONFIG)
        finetune(model, teacher=original, train_data=data_dir / "train", config=config)
        moved = max(float((model.state_dict()[k] - v).abs().max()) for k, v in start.items() if v.is_floating_point())
        if dropout:
            assert moved > 1e-4  # the student is pushed away from its eval-mode teacher
        else:
            assert moved < 1e-6  # a fixed point


def _dataset(root, model):
    from poolswap.data.datasets import build_transform, image_dataset

    return image_dataset(root, build_transform(helpers.DATA_CONFIG))


class TestLrFind:
    def test_picks_the_largest_rate_that_keeps_agreement_and_leaves_the_model_alone(self, converted, data_dir):
        _, _, original = converted
        model = copy.deepcopy(original)  # the original fine-tuned: agreement starts at 1
        before = {k: v.clone() for k, v in model.state_dict().items()}
        config = FinetuneConfig(optimizer="sgd", batch_size=4, data_config=helpers.DATA_CONFIG, lr="auto")
        result = find_lr(model, original, _dataset(data_dir / "train", model), config, device=torch.device("cpu"),
                         candidates=(1e-6, 1e-5, 1e6, 1e8), steps=3)
        assert result.lr == 1e-5
        # the search stopped at the first rate that lost agreement
        assert [t["lr"] for t in result.trials] == [1e-6, 1e-5, 1e6]
        assert [t["kept"] for t in result.trials] == [True, True, False]
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert "chose 1e-05" in result.summary()

    def test_no_rate_kept_is_one_clear_error(self, converted, data_dir):
        _, model, original = converted
        config = FinetuneConfig(optimizer="sgd", alpha=0.5, freeze_bn=False, batch_size=4,
                                data_config=helpers.DATA_CONFIG)
        with pytest.raises(PoolswapError, match="give --lr explicitly"):
            find_lr(model, original, _dataset(data_dir / "train", model), config, device=torch.device("cpu"),
                    candidates=(1e5,), steps=3)

    def test_finetune_with_lr_auto_records_and_uses_the_rate(self, converted, data_dir, tmp_path):
        import yaml

        _, model, original = converted
        config = FinetuneConfig(batch_size=4, data_config=helpers.DATA_CONFIG, lr="auto", max_steps_per_epoch=2)
        result = finetune(model, teacher=original, train_data=data_dir / "train", config=config,
                          run_dir=tmp_path / "run")
        assert result.lr_find is not None and result.lr_find.lr > 0
        args = yaml.safe_load((tmp_path / "run" / "args.yaml").read_text())
        assert args["config"]["lr"] == result.lr_find.lr  # a resume uses the chosen number
        assert args["lr_find"]["lr"] == result.lr_find.lr and args["lr_find"]["trials"]


class TestCollapseGuard:
    def test_steady_noisy_agreement_is_not_a_collapse(self):
        guard = CollapseGuard(1e-3, batch_size=32)
        for i, value in enumerate([0.9, 0.8, 0.95, 0.7, 0.9, 0.85]):
            guard.observe_batch(value, epoch=0, step=i)
        assert guard.message is None and not guard.epoch_collapsed

    def test_falling_below_half_of_the_start_warns_once_with_a_rate(self, caplog):
        guard = CollapseGuard(1e-3, batch_size=32)
        with caplog.at_level(logging.WARNING, logger="poolswap.train"):
            for i, value in enumerate([0.98, 0.6, 0.3, 0.1, 0.02, 0.0]):
                guard.observe_batch(value, epoch=0, step=i)
        assert guard.epoch_collapsed and "try --lr 0.0001 (or --lr auto)" in guard.message
        assert len([r for r in caplog.records if "collapsing" in r.getMessage()]) == 1
        guard.start_epoch()
        assert not guard.epoch_collapsed

    def test_validation_top1_below_half_of_the_start(self):
        guard = CollapseGuard(1e-3, batch_size=32)
        guard.observe_validation({"val_top1": 0.6, "val_agreement": 0.99}, {"val_top1": 0.5, "val_agreement": 0.9},
                                 epoch=0)
        assert guard.message is None
        guard.observe_validation({"val_top1": 0.6, "val_agreement": 0.99}, {"val_top1": 0.04, "val_agreement": 0.9},
                                 epoch=0)
        assert "validation top-1 fell from 0.60 to 0.04" in guard.message

    def test_labels_alone_may_leave_the_teacher_but_not_lose_top1(self):
        # alpha 0 (labels only, as a new head or training from scratch): departing from the teacher is the point
        guard = CollapseGuard(1e-3, batch_size=32, watch_agreement=False)
        for i, value in enumerate([0.98, 0.6, 0.3, 0.1, 0.02, 0.0]):
            guard.observe_batch(value, epoch=0, step=i)
        guard.observe_validation({"val_top1": 0.6, "val_agreement": 0.99}, {"val_top1": 0.7, "val_agreement": 0.1},
                                 epoch=0)
        assert guard.message is None and not guard.epoch_collapsed
        guard.observe_validation({"val_top1": 0.6, "val_agreement": 0.99}, {"val_top1": 0.2, "val_agreement": 0.1},
                                 epoch=1)
        assert "validation top-1 fell from 0.60 to 0.20" in guard.message

    def test_a_collapsing_run_keeps_the_weights_from_before_as_best(self, converted, data_dir, tmp_path):
        import poolswap

        _, _, original = converted
        model = copy.deepcopy(original)  # agreement starts at 1
        start = {k: v.clone() for k, v in model.state_dict().items()}
        config = FinetuneConfig(optimizer="sgd", lr=10.0, alpha=0.5, freeze_bn=False, batch_size=4,
                                data_config=helpers.DATA_CONFIG, warmup_steps=0, epochs=1)
        run = tmp_path / "run"
        result = finetune(model, teacher=original, train_data=data_dir / "train", val_data=data_dir / "val",
                          config=config, run_dir=run)
        assert result.collapse is not None and "try --lr 1 (or --lr auto)" in result.collapse
        assert result.start is not None and result.history[0]["collapsed"]
        assert result.start["val_agreement"] == 1.0
        best = poolswap.load(run / "best.safetensors", trust_module="tests.train.helpers").state_dict()
        for key, value in start.items():
            torch.testing.assert_close(best[key], value, rtol=0, atol=0)

    def test_a_healthy_run_replaces_the_starting_best(self, converted, data_dir, tmp_path):
        _, model, original = converted
        config = FinetuneConfig(batch_size=4, data_config=helpers.DATA_CONFIG, max_steps_per_epoch=2)
        result = finetune(model, teacher=original, train_data=data_dir / "train", config=config,
                          run_dir=tmp_path / "run")
        assert result.collapse is None and not result.history[0]["collapsed"]
