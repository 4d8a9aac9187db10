"""The CPU plane loops under AddressSanitizer: no access outside their buffers, and the contract kept.

The PyTorch op cannot see a write past a buffer that happens to land in memory it
owns; a build of the shared kernel header with AddressSanitizer and
UndefinedBehaviorSanitizer can. Random geometries (1-3 spatial dims, ceil_mode,
dilation, strided rows, short and long rows) run the forward and backward of one
plane against a float64 brute force of the contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "poolswap" / "csrc"
SOURCE = Path(__file__).with_name("plane_fuzz.cpp")


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory) -> Path:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None or shutil.which(compiler) is None:
        pytest.skip("no C++ compiler")
    binary = tmp_path_factory.mktemp("plane_fuzz") / "plane_fuzz"
    command = [compiler, "-std=c++17", "-O1", "-g", "-march=native", "-fno-omit-frame-pointer",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
               f"-I{CSRC}", str(SOURCE), "-o", str(binary)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and "sanitize" in result.stderr:
        pytest.skip(f"this compiler has no sanitizer runtime: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return binary


@pytest.mark.parametrize("seed", [1, 2])
def test_plane_loops_stay_in_bounds_and_keep_the_contract(fuzzer, seed):
    result = subprocess.run([str(fuzzer), str(seed), "3000"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "bad=0" in result.stdout
