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


def _failing_command(monkeypatch, exc: BaseException) -> None:
    """Make `poolswap doctor` raise ``exc``: the CLI's error handling is the same for every command."""
    from poolswap.cli.commands import doctor

    def run(args):
        raise exc

    monkeypatch.setattr(doctor, "run", run)


def test_a_user_error_is_one_line_with_exit_2(monkeypatch, capsys):
    from poolswap.errors import PoolswapError

    _failing_command(monkeypatch, PoolswapError("--thing is wrong; pass --other\nmore detail"))
    assert main(["doctor"]) == 2
    assert capsys.readouterr().err == "poolswap: error: --thing is wrong; pass --other\n"


def test_an_os_error_names_the_file(monkeypatch, capsys):
    _failing_command(monkeypatch, OSError(28, "No space left on device", "/tmp/out.onnx"))
    assert main(["doctor"]) == 2
    assert capsys.readouterr().err == "poolswap: error: No space left on device: /tmp/out.onnx\n"


def test_a_missing_optional_dependency_names_the_extra(monkeypatch, capsys):
    _failing_command(monkeypatch, ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime"))
    assert main(["doctor"]) == 2
    assert "onnxruntime is not installed; pip install 'poolswap[onnx]'" in capsys.readouterr().err


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch, capsys):
    # A ValueError, TypeError or unknown import inside poolswap is a bug: its traceback shows, exit 1.
    for exc in (ValueError("bad internal state"), TypeError("wrong call"), ModuleNotFoundError("x", name="nope")):
        _failing_command(monkeypatch, exc)
        assert main(["doctor"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and type(exc).__name__ in err and "internal error" in err


def test_doctor_says_the_fallback_once(tmp_path):
    import os

    env = dict(os.environ, POOLSWAP_CACHE=str(tmp_path / "cache"), CXX=str(tmp_path / "no-such-compiler"))
    env.pop("POOLSWAP_DISABLE_EXTENSION", None)
    result = subprocess.run([sys.executable, "-m", "poolswap.cli", "doctor"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert output.count("could not be built") == 1, output
    assert "RuntimeWarning" not in output
