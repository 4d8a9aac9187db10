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

A third, ``attribute_fuzz.cpp``, fuzzes what comes before the planes: node
attributes drawn from edge values (0, -1, 1, 2^31 - 1, 2^31, 2^62, 2^63 - 1, huge
pads, lists of the wrong length, ceil_mode outside 0/1) through the checks and
geometry of ``softpool_attributes.h`` that the ONNX Runtime library and the
PyTorch op share; accepted geometries run through the plane loops against a
brute force, refused small ones must really have no window or an empty one.
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
    if fuzzer == "plane_fuzz":  # the draw reaches the interleaved planes' and the channels-last backward
        counts = dict(item.split("=") for item in result.stdout.split()[-4:])
        assert int(counts["interleaved_backward"]) > 300 and int(counts["channels_last_backward"]) > 300, result.stdout


@pytest.fixture(scope="module")
def attribute_fuzzer(tmp_path_factory) -> Path:
    return _compile("attribute_fuzz.cpp", tmp_path_factory.mktemp("attribute_fuzzer"))


@pytest.mark.parametrize("seed", [1, 2])
def test_node_attributes_from_edge_values_are_refused_or_computed_safely(attribute_fuzzer, seed):
    result = subprocess.run([str(attribute_fuzzer), str(seed), "50000"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    counts = dict(item.split("=") for item in result.stdout.split()[-5:])
    assert counts["cases"] == "50000" and counts["bad"] == "0", result.stdout
    # The draw reaches both sides: geometries with edge values accepted and run, and many refused.
    assert int(counts["edge_values_ran"]) > 100 and int(counts["accepted"]) < 40000, result.stdout
