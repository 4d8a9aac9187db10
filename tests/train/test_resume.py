"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bit for bit where an uninterrupted run does."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from poolswap.train.resume import load_resume_state

CHILD = Path(__file__).resolve().parent / "resume_child.py"
BLOCKED_MARKER = "POOLSWAP_TEST_BLOCKED"  # as printed by resume_child.py


def _run(args, env, **kw):
    return subprocess.Popen([sys.executable, str(CHILD), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _wait_for_line(proc: subprocess.Popen, marker: str, limit_s: float = 600.0) -> str:
    """Read the child's output until ``marker``; fail (not hang) if it exits first or never gets there."""
    found: list[str] = []
    seen: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            if line.startswith(marker):
                found.append(line)
                return
            seen.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(limit_s)
    if not found:
        proc.kill()
        pytest.fail(f"the child never printed {marker} (exit {proc.poll()}):\n{''.join(seen[-40:])}")
    return found[0]


# About 50 s on 2 cores (three training processes): not marked slow, CI runs it.
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(converted, data_dir, tmp_path, subprocess_env):
    path, _, _ = converted
    reference, killed = tmp_path / "reference", tmp_path / "killed"

    uninterrupted = _run([path, data_dir, reference], subprocess_env)

    victim = _run([path, data_dir, killed, "--block"], subprocess_env)
    _wait_for_line(victim, BLOCKED_MARKER)
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
