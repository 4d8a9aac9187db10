"""The fused kernel is what runs, and a missing compiler falls back with one warning."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from poolswap.kernels import kernel_status


@pytest.mark.skipif(os.environ.get("POOLSWAP_DISABLE_EXTENSION") == "1", reason="extension disabled on purpose")
def test_the_fused_cpu_kernel_is_registered_and_active():
    status = kernel_status()["cpu"]
    assert status.active, f"the fused CPU kernel is not active: {status.detail}"
    # The dispatcher, not only our flag: a C++ kernel sits on the CPU key of both ops.
    for op in ("poolswap::soft_pool", "poolswap::soft_pool_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU")


def test_a_missing_compiler_falls_back_to_the_reference_with_one_warning(tmp_path):
    script = textwrap.dedent(
        """
        import warnings, torch, poolswap
        from poolswap.ops import soft_pool_reference
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x = torch.randn(2, 3, 9, 9)
            y = poolswap.soft_pool2d(x, 3, 2, 1)
            poolswap.soft_pool2d(x, 3, 2, 1)
        ours = [w for w in caught if "poolswap" in str(w.message)]
        assert len(ours) == 1, [str(w.message) for w in caught]
        assert "pure-PyTorch reference" in str(ours[0].message)
        assert not poolswap.kernel_status()["cpu"].active
        torch.testing.assert_close(y, soft_pool_reference(x, [3, 3], [2, 2], [1, 1], [1, 1], False))
        print("fallback-ok")
        """
    )
    env = dict(os.environ, POOLSWAP_CACHE=str(tmp_path / "cache"), CXX=str(tmp_path / "no-such-compiler"),
               POOLSWAP_PREBUILT="0")  # an installed wheel's prebuilt kernel would load without a compiler
    env.pop("POOLSWAP_DISABLE_EXTENSION", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fallback-ok" in result.stdout


@pytest.mark.skipif(os.environ.get("POOLSWAP_DISABLE_EXTENSION") == "1", reason="extension disabled on purpose")
@pytest.mark.skipif(sys.platform == "darwin", reason="no OpenMP build on macOS")
def test_the_fused_cpu_kernel_runs_its_planes_on_every_thread():
    """Not a timing test: the kernel records how many threads ran a call's planes.

    An extension built without ATen's parallel backend (-fopenmp) runs at::parallel_for
    on the calling thread alone, however many threads torch is given.
    """
    from poolswap.kernels import cpu_parallel_backend, cpu_threads_last_call

    import poolswap

    assert cpu_parallel_backend() == "openmp"
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(4, 64, 32, 32, requires_grad=True)
        y = poolswap.soft_pool2d(x, 3, 2, 1)
        assert cpu_threads_last_call() == 2
        y.sum().backward()
        assert cpu_threads_last_call() == 2
        torch.set_num_threads(1)
        poolswap.soft_pool2d(x.detach(), 3, 2, 1)
        assert cpu_threads_last_call() == 1
    finally:
        torch.set_num_threads(previous)
