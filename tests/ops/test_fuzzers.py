"""The C++ kernels under AddressSanitizer: no access outside their buffers, and the contract kept.

The PyTorch op cannot see a write past a buffer that happens to land in memory it
owns; a build of the kernel headers with AddressSanitizer and
UndefinedBehaviorSanitizer can. Two fuzzers run random geometries (1-3 spatial
dims, ceil_mode, dilation, padding, strided tensors) against a float64 brute force
of the contract (``fuzz_common.h``):

* ``plane_fuzz.cpp``: the CPU plane loops of ``softpool_cpu.h`` (tiles, packed
  planes, row blocks), forward and backward;
* ``cuda_thread_fuzz.cpp``: the per-thread functions of the CUDA kernels
  (``softpool_cuda_thread.h``) for every thread index, in shuffled order, with
  NCDHW, channels-last and gapped layouts, and with NaN and infinities against the
  CPU loops: the CUDA indexing and special values, tested without a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CSRC = HERE.parents[1] / "poolswap" / "kernels" / "csrc"


def _compile(source: str, folder: Path) -> Path:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None or shutil.which(compiler) is None:
        pytest.skip("no C++ compiler")
    binary = folder / Path(source).stem
    command = [compiler, "-std=c++17", "-O1", "-g", "-march=native", "-fno-omit-frame-pointer",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
               f"-I{CSRC}", str(HERE / source), "-o", str(binary)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and "sanitize" in result.stderr:
        pytest.skip(f"this compiler has no sanitizer runtime: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return binary


@pytest.fixture(scope="module")
def fuzzers(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuzzers")
    return {name: _compile(f"{name}.cpp", folder) for name in ("plane_fuzz", "cuda_thread_fuzz")}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("fuzzer", ["plane_fuzz", "cuda_thread_fuzz"])
def test_kernels_stay_in_bounds_and_keep_the_contract(fuzzers, fuzzer, seed):
    result = subprocess.run([str(fuzzers[fuzzer]), str(seed), "3000"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "cases=3000 bad=0" in result.stdout
