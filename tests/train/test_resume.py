"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bit for bit where an uninterrupted run does."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from poolswap.train.resume import load_resume_state

CHILD = Path(__file__).resolve().parent / "resume_child.py"


def _run(args, env, **kw):
    return subprocess.Popen([sys.executable, str(CHILD), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _wait_for(path: Path, proc: subprocess.Popen, limit_s: float = 300.0) -> None:
    """Poll for ``path``; fail (not hang) if the child exits first or never gets there."""
    deadline = time.monotonic() + limit_s
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child exited ({proc.returncode}) before {path.name}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the child never wrote {path.name}")
        time.sleep(0.05)


@pytest.mark.slow  # about 50 s on 2 cores: three training processes
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(converted, data_dir, tmp_path, subprocess_env):
    path, _, _ = converted
    reference, killed = tmp_path / "reference", tmp_path / "killed"

    uninterrupted = _run([path, data_dir, reference], subprocess_env)

    victim = _run([path, data_dir, killed, "--block"], subprocess_env)
    _wait_for(killed / "blocked", victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    state = load_resume_state(killed / "resume.pt")
    assert (state["epoch"], state["step"]) == (1, 2)  # mid-epoch: 2 of 5 steps of the second epoch done
    assert len(state["history"]) == 1

    resumed = _run([path, data_dir, killed, "--resume"], subprocess_env)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    out, _ = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, out

    final_a = load_resume_state(reference / "resume.pt")
    final_b = load_resume_state(killed / "resume.pt")
    assert (final_a["epoch"], final_a["step"]) == (final_b["epoch"], final_b["step"]) == (3, 0)
    assert final_a["model"].keys() == final_b["model"].keys()
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key
    for key, value in final_a["optimizer"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(final_b["optimizer"]["state"][key][name]))
    # The summary rows of the killed epoch are not duplicated, and the losses match.
    assert [r["train_loss"] for r in final_a["history"]] == [r["train_loss"] for r in final_b["history"]]
    assert (killed / "summary.csv").read_text().count("\n") == 4  # header + 3 epochs
