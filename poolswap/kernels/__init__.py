"""The fused SoftPool kernels: one C++/CUDA source (``csrc/``), one toolchain, two front-ends.

* the PyTorch extension (CPU and CUDA kernels of ``torch.ops.poolswap.soft_pool``):
  :func:`build_cpu`, :func:`build_cuda`, :func:`kernel_status`;
* the ONNX Runtime custom-op library (``poolswap::SoftPool``): :func:`build_ort_library`,
  :func:`ort_library_path`.

Both are compiled once per machine, source and toolchain into the cache
(``$POOLSWAP_CACHE``, default ``~/.cache/poolswap``); ``poolswap build`` does it
ahead of time. Names are imported lazily: the ORT half needs no torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "KernelStatus": "._torch_extension",
    "active_backend": "._torch_extension",
    "build_cpu": "._torch_extension",
    "build_cuda": "._torch_extension",
    "build_error_line": "._torch_extension",
    "cpu_isa": "._torch_extension",
    "cpu_parallel_backend": "._torch_extension",
    "cpu_threads_last_call": "._torch_extension",
    "ensure_loaded": "._torch_extension",
    "kernel_status": "._torch_extension",
    "build_ort_library": "._ort_library",
    "ort_library_path": "._ort_library",
    "cache_dir": "._toolchain",
    "nvcc_path": "._toolchain",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
