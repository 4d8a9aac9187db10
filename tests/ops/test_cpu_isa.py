"""The CPU kernels' instruction-set dispatch: every ISA keeps the contract, and baseline means baseline.

The kernels are compiled once per ISA (baseline x86-64, AVX2 + FMA, AVX-512) and
one is chosen per process from what the CPU reports; ``POOLSWAP_CPU_ISA`` forces
one. The choice is made once per process, so each ISA runs in a subprocess.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
X86 = platform.machine() in ("x86_64", "AMD64")
QEMU_INSTALL = "apt-get install qemu-user"
# An x86-64 CPU model without AVX (SSE2 .. SSE4.2): what the baseline path must run on.
OLD_CPU = "Nehalem"

needs_extension = pytest.mark.skipif(os.environ.get("POOLSWAP_DISABLE_EXTENSION") == "1",
                                     reason="extension disabled on purpose")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def supported_isas() -> list[str]:
    """The ISAs this CPU runs, as POOLSWAP_CPU_ISA names them."""
    flags = cpu_flags()
    isas = ["baseline"]
    if X86 and {"avx2", "fma", "f16c"} <= flags:
        isas.append("avx2")
        if {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags:
            isas.append("avx512")
    return isas


def _run(code: str, isa: str | None, args: list[str] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("POOLSWAP_CPU_ISA", None)
    if isa is not None:
        env["POOLSWAP_CPU_ISA"] = isa
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO_ROOT)


# ---------------------------------------------------------------------------
# The PyTorch extension
# ---------------------------------------------------------------------------

@needs_extension
def test_the_best_isa_of_this_cpu_is_chosen_by_default():
    result = _run("from poolswap.kernels import cpu_isa; print(cpu_isa())", None)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == supported_isas()[-1]


SAME_OUTPUTS = """
    import sys, torch, poolswap
    from poolswap.kernels import cpu_isa
    torch.manual_seed(0)
    x = torch.randn(2, 8, 45, 53) * 3
    xg = x.clone().requires_grad_(True)
    outs, grads = [], []
    for k, s, p in [(3, 2, 1), (3, 1, 1), (2, 2, 0), (5, 3, 2)]:
        for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
            outs.append(poolswap.soft_pool2d(x.to(dtype), k, s, p))
        outs.append(poolswap.soft_pool2d(x[:, :, :9, :7], k, s, p))                   # short rows: shared buffers
        outs.append(poolswap.soft_pool1d(x.flatten(2), k, s, p, dilation=2, ceil_mode=True))
        outs.append(poolswap.soft_pool3d(x.reshape(2, 8, 5, 9, 53), (2, k, k), (1, s, s), (1, p, p)))
        y = poolswap.soft_pool2d(xg, k, s, p, beta=1.3)                                # dL/dx only
        grads.append(torch.autograd.grad(y.pow(2).sum(), xg)[0])
        beta = torch.tensor(1.3, requires_grad=True)                                    # dL/dbeta too
        y = poolswap.soft_pool2d(xg, k, s, p, beta=beta)
        grads.extend(torch.autograd.grad(y.pow(2).sum(), (xg, beta)))
    torch.save({"outputs": outs, "grads": grads}, sys.argv[1])
    print(cpu_isa())
"""


@needs_extension
@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_each_isa_gives_the_baseline_results(isa, tmp_path):
    """Forward (every dtype and plane path) and backward under a forced ISA against forced baseline."""
    if isa not in supported_isas():
        pytest.skip(f"this CPU has no {isa}")
    import torch

    results = {}
    for forced in ("baseline", isa):
        out = tmp_path / f"{forced}.pt"
        result = _run(SAME_OUTPUTS, forced, args=[str(out)])
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.split() == [forced]
        results[forced] = torch.load(out)
    for base, other in zip(results["baseline"]["outputs"], results[isa]["outputs"]):
        # Each computes in float, rounding differently (the AVX2 exp has its own polynomial), so a
        # half-precision output may round one step apart: those are held to their dtype's tolerance.
        tolerance = {} if base.dtype in (torch.float16, torch.bfloat16) else {"rtol": 1e-5, "atol": 1e-5}
        torch.testing.assert_close(other, base, **tolerance)
    for base, other in zip(results["baseline"]["grads"], results[isa]["grads"]):
        # A gradient sums terms of its own scale (the separable dL/dx: e ((1 + beta x') A - beta B)), so
        # rounding is held to 1e-5 of the largest gradient, not of each element.
        torch.testing.assert_close(other, base, rtol=1e-5, atol=1e-5 * float(base.abs().max()))


@needs_extension
@pytest.mark.slow
@pytest.mark.parametrize("isa", supported_isas()[:-1])
def test_each_isa_keeps_the_float64_contract(isa):
    """The contract tests of the fused kernel (float64 brute force, hypothesis) under a forced ISA.

    The CPU's best ISA is the default one: test_contract.py itself runs it.
    """
    env = dict(os.environ, POOLSWAP_CPU_ISA=isa)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/ops/test_contract.py",
         "-k", "fused", "--hypothesis-seed=0"],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:]


@needs_extension
def test_an_unknown_or_unsupported_isa_is_one_line_naming_the_variable():
    result = _run("""
        from poolswap.errors import PoolswapValueError
        from poolswap.kernels import cpu_isa
        try:
            cpu_isa()
        except PoolswapValueError as e:
            print(e)
    """, "sse9")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "POOLSWAP_CPU_ISA=sse9 is not an ISA" in result.stdout
    missing = [isa for isa in ("avx2", "avx512") if isa not in supported_isas()]
    if missing:
        result = _run("import torch, poolswap; poolswap.soft_pool2d(torch.randn(1, 1, 4, 4), 2)", missing[0])
        assert result.returncode != 0
        assert f"this CPU does not support {missing[0]}" in result.stderr


# ---------------------------------------------------------------------------
# The ONNX Runtime library: its CPU kernels run through a C driver (no ORT needed)
# ---------------------------------------------------------------------------

DRIVER = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char** argv) {
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 3; }
  const char* (*isa)(void) = (const char* (*)(void))dlsym(lib, "poolswap_ort_cpu_isa");
  double (*selftest)(void) = (double (*)(void))dlsym(lib, "poolswap_ort_cpu_selftest");
  if (!isa || !selftest) { fprintf(stderr, "missing symbols\n"); return 4; }
  printf("%s %.17g\n", isa(), selftest());
  return 0;
}
"""


@pytest.fixture(scope="module")
def ort_cpu_library() -> Path:
    pytest.importorskip("onnxruntime")
    from poolswap.kernels import ort_library_path

    path = ort_library_path()
    if path is None:
        pytest.skip("no ONNX Runtime library (run `poolswap build`)")
    if not hasattr(ctypes.CDLL(str(path)), "poolswap_ort_cpu_selftest"):
        pytest.skip(f"{path} predates the ISA self-test; rebuild it")
    return path


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler for the driver")
    folder = tmp_path_factory.mktemp("isa-driver")
    (folder / "driver.c").write_text(DRIVER)
    subprocess.run([compiler, "-O1", str(folder / "driver.c"), "-o", str(folder / "driver"), "-ldl"], check=True)
    return folder / "driver"


def _drive(command: list[str], isa: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("POOLSWAP_CPU_ISA", None)
    if isa is not None:
        env["POOLSWAP_CPU_ISA"] = isa
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _isa_and_checksum(result: subprocess.CompletedProcess) -> tuple[str, float]:
    assert result.returncode == 0, result.stderr[-2000:]
    isa, checksum = result.stdout.split()
    return isa, float(checksum)


def test_every_isa_of_the_ort_library_agrees_with_baseline(ort_cpu_library, driver):
    base_isa, base = _isa_and_checksum(_drive([str(driver), str(ort_cpu_library)], "baseline"))
    assert base_isa == "baseline" and base == base  # not NaN
    for isa in supported_isas()[1:]:
        got_isa, got = _isa_and_checksum(_drive([str(driver), str(ort_cpu_library)], isa))
        assert got_isa == isa
        assert got == pytest.approx(base, rel=1e-6, abs=1e-3)
    default_isa, _ = _isa_and_checksum(_drive([str(driver), str(ort_cpu_library)], None))
    assert default_isa == supported_isas()[-1]


@pytest.fixture(scope="module")
def qemu() -> str:
    if not X86:
        pytest.skip("the emulated-CPU check is for x86-64")
    found = shutil.which("qemu-x86_64") or shutil.which("qemu-x86_64-static")
    if found is None:
        pytest.skip(f"qemu-user is not installed ({QEMU_INSTALL})")
    return found


def test_qemu_rejects_avx_on_the_old_cpu_model(qemu, tmp_path):
    """The check below has teeth: an AVX2 instruction on the emulated old CPU is an illegal instruction."""
    source = tmp_path / "avx.c"
    source.write_text(textwrap.dedent("""
        #include <stdio.h>
        typedef int v8 __attribute__((vector_size(32)));
        int main(int argc, char** argv) {
          volatile int n = argc;
          v8 a = {n, n, n, n, n, n, n, n}, b = a * a + a;
          printf("%d\\n", b[3]);
          return 0;
        }
    """))
    subprocess.run(["cc", "-O2", "-mavx2", str(source), "-o", str(tmp_path / "avx")], check=True)
    assert _drive([str(tmp_path / "avx")], None).returncode == 0  # this CPU has AVX2 (else the test is moot)
    result = _drive([qemu, "-cpu", OLD_CPU, str(tmp_path / "avx")], None)
    assert result.returncode != 0, "qemu ran an AVX2 instruction on a CPU model without AVX: it checks nothing"


def test_the_ort_library_runs_its_baseline_path_on_a_cpu_without_avx(ort_cpu_library, driver, qemu):
    """The whole shipped library, under an emulated CPU without AVX: it picks baseline and executes nothing wider."""
    isa, checksum = _isa_and_checksum(_drive([qemu, "-cpu", OLD_CPU, str(driver), str(ort_cpu_library)], None))
    assert isa == "baseline"
    _, native = _isa_and_checksum(_drive([str(driver), str(ort_cpu_library)], "baseline"))
    assert checksum == native  # the same instructions, emulated: bit for bit
    forced = _drive([qemu, "-cpu", OLD_CPU, str(driver), str(ort_cpu_library)], "avx2")
    assert forced.stdout.split()[0] == "error:" and "does not support avx2" in forced.stdout


# ---------------------------------------------------------------------------
# The PyTorch extension's objects: where the wide instructions are
# ---------------------------------------------------------------------------

def _vex_instructions_by_symbol(obj: Path) -> dict[str, int]:
    """AVX-encoded (VEX/EVEX: mnemonics starting with v) instructions per function symbol of an object file."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    counts: dict[str, int] = {}
    symbol = ""
    for line in out.splitlines():
        if line.endswith(">:") and "<" in line:
            symbol = line.split("<", 1)[1][:-2]
        else:
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].strip().startswith("v") and "(bad)" not in line:
                counts[symbol] = counts.get(symbol, 0) + 1
    return counts


@needs_extension
@pytest.mark.skipif(not X86, reason="x86-64 ISAs")
def test_only_the_isa_namespaces_hold_avx_instructions():
    """The JIT build's objects: baseline and shared code hold no AVX instruction, each ISA's code lives in its namespace.

    An inline function (std::, c10::) that several objects hold is kept once by the
    linker; were it compiled with AVX in one object, the baseline path could run it.
    """
    if shutil.which("objdump") is None:
        pytest.skip("objdump not found (apt-get install binutils)")
    from poolswap.kernels import kernel_status

    detail = kernel_status()["cpu"].detail
    if not detail.startswith("JIT-built: "):
        pytest.skip(f"not a JIT build ({detail})")
    folder = Path(detail.removeprefix("JIT-built: ")).parent
    for name in ("softpool_torch_cpu", "softpool_cpu_baseline", "softpool_cpu_dispatch"):
        assert _vex_instructions_by_symbol(folder / f"{name}.o") == {}, name
    for isa in ("avx2", "avx512"):
        counts = _vex_instructions_by_symbol(folder / f"softpool_cpu_{isa}.o")
        assert sum(counts.values()) > 1000  # the vector paths are there
        outside = [s for s in counts if f"poolswap_isa_{isa}" not in s]
        assert outside == [], outside[:5]
