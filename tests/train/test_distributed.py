"""The finetune command under torchrun: two CPU processes on gloo, DistributedSampler-style shards, rank 0 writes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import torch

from poolswap.train.resume import load_resume_state

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_cpu_processes(converted, data_dir, tmp_path, subprocess_env):
    path, model, _ = converted
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(ROOT / "cli.py"), "finetune", "--trust-module", "tests.train.helpers", str(path), "--data", str(data_dir), "-o", str(run),
        "--input-size", "16,16", "--crop-pct", "1", "--batch-size", "3", "--epochs", "2", "--device", "cpu",
        "--checkpoint-every", "1", "--no-progress",
    ]
    proc = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in run.iterdir()} - {"tensorboard"} == {
        "args.yaml", "best.safetensors", "last.safetensors", "resume.pt", "summary.csv"}
    rows = list(csv.DictReader((run / "summary.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    state = load_resume_state(run / "resume.pt")
    # 18 images over 2 ranks, 3 per step: 3 steps an epoch.
    assert state["steps_per_epoch"] == 3 and state["global_step"] == 6
    # Both ranks' train metrics are reduced: all 18 samples of an epoch are counted once.
    assert state["counts"]["samples"] == 9  # this rank's share, summed into the row
    trained = state["model"]
    assert any(not torch.equal(v, trained[k]) for k, v in model.state_dict().items())
    # Rank 1 logged nothing of its own: the epoch lines appear once.
    assert (proc.stdout + proc.stderr).count("epoch 2/2:") == 1
