"""The CLI shell: help, version, doctor, build, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

from poolswap.cli import main


def test_help_lists_the_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "doctor" in out and "build" in out


def test_doctor_reports_versions_and_kernels(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["packages"]["torch"].startswith("2.")
    assert set(report["kernels"]) >= {"cpu", "cuda"}
    assert isinstance(report["kernels"]["cpu"]["active"], bool)


def test_build_succeeds_where_a_compiler_exists():
    assert main(["build"]) == 0


def test_unknown_command_exits_non_zero_as_a_real_process():
    result = subprocess.run([sys.executable, "-m", "poolswap.cli", "no-such-command"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "invalid choice" in result.stderr


def test_version_is_instant_to_import():
    """`poolswap --version` must not import torch (heavy imports live inside commands)."""
    code = "import sys, poolswap.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
