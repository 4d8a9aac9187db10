"""The fine-tune loop and its run directory, evaluation, and the finetune/eval commands' errors."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys

import pytest
import torch
import yaml

from tests.train import helpers
from poolswap.cli import main
from poolswap.errors import PoolswapError
from poolswap.train import FinetuneConfig, evaluate, finetune

CONFIG = dict(batch_size=4, data_config=helpers.DATA_CONFIG, log_every=1, lr=0.01)
SIZE = ["--input-size", "16,16", "--crop-pct", "1"]


def _config(**kw) -> FinetuneConfig:
    return FinetuneConfig(**{**CONFIG, **kw})


class TestFinetune:
    def test_run_directory(self, converted, data_dir, tmp_path):
        _, model, original = converted
        before = {k: v.clone() for k, v in model.state_dict().items()}
        teacher_before = {k: v.clone() for k, v in original.state_dict().items()}
        run = tmp_path / "run"
        result = finetune(model, teacher=original, train_data=data_dir / "train", val_data=data_dir / "val",
                          config=_config(epochs=2, calibrate=1), run_dir=run)
        assert {p.name for p in run.iterdir()} - {"tensorboard"} == {
            "args.yaml", "best.safetensors", "last.safetensors", "resume.pt", "summary.csv"}
        if importlib.util.find_spec("tensorboard") is not None:
            assert any((run / "tensorboard").iterdir())
        rows = list(csv.DictReader((run / "summary.csv").open()))
        assert [r["epoch"] for r in rows] == ["1", "2"]
        for key in ("train_loss", "train_top1", "train_top5", "train_agreement", "val_top1", "val_agreement", "lr",
                    "time_s"):
            assert rows[0][key] != ""
        args = yaml.safe_load((run / "args.yaml").read_text())
        assert args["config"]["epochs"] == 2 and "calibration" in args
        assert result.calibration is not None and result.steps == 10
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        # The teacher is left as it was: its mode, requires_grad flags and state.
        assert not original.training and all(p.requires_grad for p in original.parameters())
        assert all(torch.equal(teacher_before[k], v) for k, v in original.state_dict().items())
        # last is poolswap's model format: poolswap.load gives back the trained weights.
        import poolswap

        reloaded = poolswap.load(run / "last.safetensors", trust_module="tests.train.helpers")
        for k, v in model.state_dict().items():
            torch.testing.assert_close(reloaded.state_dict()[k], v, rtol=0, atol=0)

    def test_unlabelled_data_is_pure_distillation(self, converted, tmp_path):
        _, model, _ = converted
        root = helpers.write_image_folder(tmp_path / "unlabelled", labelled=False, per_class=2)
        result = finetune(model, train_data=root, config=_config(max_steps_per_epoch=1))  # teacher: the original
        row = result.history[0]
        assert row["train_top1"] is None and row["train_agreement"] is not None

    def test_refuses_a_directory_holding_another_run(self, converted, data_dir, tmp_path):
        _, model, original = converted
        run = tmp_path / "run"
        finetune(model, teacher=original, train_data=data_dir / "train", config=_config(max_steps_per_epoch=1),
                 run_dir=run)
        summary = (run / "summary.csv").read_text()
        with pytest.raises(PoolswapError, match="already holds a run"):
            finetune(model, teacher=original, train_data=data_dir / "train", config=_config(), run_dir=run)
        assert (run / "summary.csv").read_text() == summary
        finetune(model, teacher=original, train_data=data_dir / "train", config=_config(max_steps_per_epoch=2),
                 run_dir=run, overwrite=True)
        assert (run / "summary.csv").read_text() != summary

    def test_class_count_must_match_the_head(self, converted, tmp_path):
        _, model, original = converted
        root = helpers.write_image_folder(tmp_path / "d", classes=("a", "b", "c", "d"), per_class=1)
        with pytest.raises(PoolswapError, match="4 classes but the model's head has 3 outputs"):
            finetune(model, teacher=original, train_data=root, config=_config())


class TestEvaluate:
    def test_metrics(self, converted, data_dir):
        _, model, original = converted
        result = evaluate(original, data_dir / "val", against=original, data_config=helpers.DATA_CONFIG)
        assert result.samples == 9 and result.agreement == 1.0
        assert result.top1 == result.other_top1 and result.top5 == 1.0

    def test_restricted_top1(self):
        from poolswap.train.evaluate import Metrics

        metrics = Metrics(label_map=[2, 5])
        logits = torch.zeros(2, 6)
        logits[0, 0] = 9  # wrong overall, but among the classes {2, 5}: 2 beats 5
        logits[0, 2] = 1
        logits[1, 5] = 3
        metrics.update(logits, metrics.targets(torch.tensor([0, 1])))
        result = metrics.result(with_other=False)
        assert result.top1 == 0.5 and result.top1_subset == 1.0


class TestCommands:
    def test_finetune_then_eval(self, converted, data_dir, tmp_path, capsys):
        path, _, _ = converted
        run = tmp_path / "run"
        assert main(["finetune", "--trust-module", "tests.train.helpers", str(path), "--data", str(data_dir), "-o", str(run), *SIZE, "--batch-size", "4",
                     "--max-steps", "2", "--no-progress"]) == 0
        assert (run / "best.safetensors").is_file()
        assert main(["eval", "--trust-module", "tests.train.helpers", str(run / "best.safetensors"), "--data", str(data_dir), "--against", "original", *SIZE,
                     "--json"]) == 0
        assert '"agreement"' in capsys.readouterr().out

    @pytest.mark.parametrize("case", ["missing_data", "empty_data", "bad_classes", "corrupt_model", "missing_model"])
    def test_bad_input_is_one_line(self, case, converted, data_dir, tmp_path):
        path, _, _ = converted
        data = data_dir
        if case == "missing_data":
            data = tmp_path / "nowhere"
        elif case == "empty_data":
            data = tmp_path / "empty"
            (data / "train" / "a").mkdir(parents=True)
        elif case == "bad_classes":
            data = tmp_path / "bad"
            helpers.write_image_folder(data / "train", classes=("a", "b"), per_class=1)
        elif case == "corrupt_model":
            path = tmp_path / "corrupt.safetensors"
            path.write_bytes(b"not a model at all")
        elif case == "missing_model":
            path = tmp_path / "missing.safetensors"
        run = tmp_path / "run"
        proc = subprocess.run([sys.executable, "-m", "poolswap.cli", "finetune", "--trust-module", "tests.train.helpers", str(path), "--data", str(data),
                               "-o", str(run), *SIZE], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("poolswap: error:")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr
        assert not run.exists() or not any(run.iterdir())

    def test_corrupt_resume_state_is_refused_and_kept(self, converted, data_dir, tmp_path, capsys):
        path, _, _ = converted
        run = tmp_path / "run"
        assert main(["finetune", "--trust-module", "tests.train.helpers", str(path), "--data", str(data_dir), "-o", str(run), *SIZE, "--batch-size", "4",
                     "--max-steps", "1", "--no-progress"]) == 0
        (run / "resume.pt").write_bytes(b"garbage")
        kept = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        assert main(["finetune", "--resume", str(run), "--trust-module", "tests.train.helpers"]) == 2
        assert "is not a readable resume state" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == kept


class TestPrecision:
    def test_amp_is_cuda_only(self, converted, data_dir, caplog):
        _, model, original = converted
        with caplog.at_level("WARNING", logger="poolswap.train"):
            result = finetune(model, teacher=original, train_data=data_dir / "train",
                              config=_config(amp="bf16", device="cpu", max_steps_per_epoch=1))
        assert "AMP runs on CUDA only" in caplog.text
        assert all(p.dtype == torch.float32 for p in result.model.parameters())

    @pytest.mark.cuda
    @pytest.mark.parametrize("amp", ["bf16", "fp16"])
    def test_amp_on_cuda(self, converted, data_dir, tmp_path, amp):
        _, model, original = converted
        result = finetune(model, teacher=original, train_data=data_dir / "train", run_dir=tmp_path / "run",
                          config=_config(amp=amp, device="cuda", max_steps_per_epoch=2, clip_grad=1.0))
        assert result.history[0]["train_loss"] is not None
        assert next(result.model.parameters()).device.type == "cuda"
