"""A stopped fine-tune: Ctrl-C leaves a resume state; a run that failed before one leaves nothing behind."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from tests.train import helpers
from poolswap.errors import PoolswapError
from poolswap.train import FinetuneConfig, finetune
from poolswap.train import loop

CONFIG = dict(batch_size=4, data_config=helpers.DATA_CONFIG, lr=0.05, epochs=2)


def test_a_run_that_fails_before_its_first_resume_state_leaves_nothing(converted, data_dir, tmp_path, monkeypatch):
    _, model, original = converted
    run_dir = tmp_path / "run"

    def broken_step(self, *args, **kwargs):
        raise PoolswapError("cannot read image a.png")

    monkeypatch.setattr(loop.Trainer, "train_step", broken_step)
    with pytest.raises(PoolswapError, match="cannot read image"):
        finetune(model, teacher=original, train_data=data_dir / "train", config=FinetuneConfig(**CONFIG),
                 run_dir=run_dir, progress=False)
    assert not run_dir.exists()  # no args.yaml to be mistaken for a run that could resume


def test_ctrl_c_saves_a_resume_state_that_resumes_exactly(converted, data_dir, tmp_path, monkeypatch, request):
    _, model, original = converted
    reference_model = __import__("copy").deepcopy(model)
    config = FinetuneConfig(**CONFIG)
    reference = finetune(reference_model, teacher=original, train_data=data_dir / "train", config=config,
                         run_dir=tmp_path / "reference", progress=False)

    run_dir = tmp_path / "run"
    real_step = loop.Trainer.train_step
    calls = []

    def step_then_interrupt(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C arrives during the second step of the first epoch
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(loop.Trainer, "train_step", step_then_interrupt)
    # Python's default handler, as in a terminal (a background job starts with SIGINT ignored, which finetune keeps)
    handler_before = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, handler_before))
    with pytest.raises(KeyboardInterrupt):
        finetune(model, teacher=original, train_data=data_dir / "train", config=config, run_dir=run_dir,
                 progress=False)
    assert (run_dir / "resume.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    monkeypatch.setattr(loop.Trainer, "train_step", real_step)
    resumed = finetune(model, teacher=original, train_data=data_dir / "train", config=config, run_dir=run_dir,
                       resume=True, progress=False)
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_a_process_that_ignores_sigint_keeps_ignoring_it(converted, data_dir, tmp_path, monkeypatch, request):
    _, model, original = converted
    handler_before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # nohup, a background job
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, handler_before))
    seen = []

    def record(self, *args, **kwargs):
        seen.append(signal.getsignal(signal.SIGINT))
        raise PoolswapError("stop here")

    monkeypatch.setattr(loop.Trainer, "train_step", record)
    with pytest.raises(PoolswapError, match="stop here"):
        finetune(model, teacher=original, train_data=data_dir / "train", config=FinetuneConfig(**CONFIG),
                 run_dir=tmp_path / "run", progress=False)
    assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
