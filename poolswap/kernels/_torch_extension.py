"""Build and load the PyTorch extension: the fused CPU and CUDA kernels of ``poolswap/kernels/csrc``.

The kernels are compiled once per machine, poolswap source and torch version
into a cache (``$POOLSWAP_CACHE``, default ``~/.cache/poolswap``) and loaded on
first use of the op. ``poolswap build`` compiles them ahead of time. Where they
cannot be built (no compiler, ``POOLSWAP_DISABLE_EXTENSION=1``), the op runs the
pure-PyTorch reference and says so once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import sysconfig
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..errors import PoolswapValueError
from . import _prebuilt
from ._toolchain import CPU_ISA_HEADERS, CPU_ISA_SOURCES, CSRC_DIR, check_cpu_isa_env, cpu_isa_cflags, build_key, cache_folder, cuda_arch_list, cuda_home, cxx_compiler, nvcc_path

logger = logging.getLogger(__name__)

CPU_SOURCES = ("softpool_torch_cpu.cpp", *CPU_ISA_SOURCES)
CPU_HEADERS = ("softpool_kernel.h", "softpool_cpu.h", "softpool_attributes.h", "torch_problem.h", *CPU_ISA_HEADERS)
# -fopenmp: ATen's at::parallel_for is inlined from its OpenMP header, so without the flag the
# extension runs every plane on the calling thread. The OpenMP runtime is the one torch loaded.
CPU_PARALLEL_FLAGS = () if sys.platform == "darwin" else ("-fopenmp",)
# Portable: no -march; the AVX2 / AVX-512 paths are separate tables chosen at load time.
CPU_CFLAGS = ("-DPOOLSWAP_CPU_FRONTEND_TORCH", *CPU_PARALLEL_FLAGS)
CUDA_SOURCES = ("softpool_torch_cuda.cu",)
CUDA_HEADERS = ("softpool_kernel.h", "softpool_attributes.h", "softpool_cuda_thread.h", "softpool_cuda.cuh", "torch_problem.h")
CUDA_FLAGS = ("-O3", "-lineinfo")

__all__ = [
    "KernelStatus", "active_backend", "build_cpu", "cpu_isa", "build_cuda", "build_error_line", "cpu_parallel_backend",
    "cpu_threads_last_call", "ensure_loaded", "kernel_status",
]


@dataclass
class KernelStatus:
    """Whether a fused kernel is active, and where it came from or why not."""

    name: str
    active: bool
    detail: str


_lock = threading.Lock()
_loaded = False
_status: dict[str, KernelStatus] = {}


# What torch's extension builder reads from the environment into the build command it writes.
CPU_BUILD_ENV = ("CXX",)
CUDA_BUILD_ENV = ("CXX", "CC", "CUDA_HOME", "CUDA_PATH", "CUDA_INC_PATH", "CUDNN_HOME", "CUDNN_PATH", "PYTORCH_NVCC",
                  "TORCH_CUDA_ARCH_LIST", "TORCH_EXTENSION_SKIP_NVCC_GEN_DEPENDENCIES")


def extension_name(kind: str, files: tuple[str, ...], load_args: dict, env: tuple[str, ...]) -> str:
    """The extension's name (and build folder's): its kind and the key of everything its build command holds.

    That is the arguments given to torch's builder, the environment it reads, and
    the torch and Python it compiles against (their include and library folders
    are in the command: two environments with one torch version differ there).
    """
    command = (
        torch.__version__,
        str(Path(torch.__file__).resolve().parent),
        sysconfig.get_paths()["include"],
        cxx_compiler(),
        json.dumps(load_args, sort_keys=True),
        *(f"{var}={os.environ.get(var, '')}" for var in env),
    )
    return f"poolswap_{kind}_{build_key(files, command)}"


def _build_location(name: str, what: str) -> tuple[Path, Path]:
    """The build folder (created; it must be writable) and library of an extension; logs a first build."""
    build_dir = cache_folder(name)
    library = build_dir / f"{name}.so"
    if not library.exists():
        logger.info("compiling poolswap's %s into %s (once per machine and version)", what, build_dir)
    return build_dir, library


def _location(name: Optional[str], build_dir: Optional[Path], kind: str, files: tuple[str, ...], args: dict,
              env: tuple[str, ...], what: str) -> tuple[str, Path, Path]:
    """(name, build folder, library): the cache's keyed ones, or the given ones (the wheel build)."""
    if name is None:
        name = extension_name(kind, files, args, env)
        return (name, *_build_location(name, what))
    assert build_dir is not None, "a named build needs its folder"
    build_dir.mkdir(parents=True, exist_ok=True)
    return name, build_dir, build_dir / f"{name}.so"


def cpu_load_arguments() -> dict:
    """The arguments of the fused CPU kernel's ``cpp_extension.load``, less its name and folder."""
    return dict(
        sources=[str(CSRC_DIR / s) for s in CPU_SOURCES],
        extra_cflags=[*cpu_isa_cflags(), *CPU_CFLAGS],
        extra_ldflags=list(CPU_PARALLEL_FLAGS),
        extra_include_paths=[str(CSRC_DIR)],
        is_python_module=False,
        with_cuda=False,
    )


def _ensure_ninja_on_path() -> None:
    """torch's builder runs ``ninja``; a venv's ninja may not be on PATH when the venv is not activated."""
    dirs = [os.path.dirname(sys.executable)]
    try:
        import ninja  # type: ignore

        dirs.append(getattr(ninja, "BIN_DIR", ""))
    except ImportError:
        pass
    path = os.environ.get("PATH", "")
    for d in dirs:
        if d and d not in path.split(os.pathsep):
            path = d + os.pathsep + path
    os.environ["PATH"] = path


def build_cpu(verbose: bool = False, name: Optional[str] = None, build_dir: Optional[Path] = None) -> Path:
    """Compile (if needed) and load the fused CPU kernel; returns the shared library's path.

    By default into the cache under a keyed name; the wheel build passes its own
    ``name`` and ``build_dir`` (the same sources and flags).
    """
    # torch's builder warns on import that a CPU-only machine has no CUDA runtime: true and irrelevant here.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import cpp_extension

    args = cpu_load_arguments()
    name, build_dir, library = _location(name, build_dir, "cpu", CPU_SOURCES + CPU_HEADERS, args, CPU_BUILD_ENV,
                                         "fused CPU kernel")
    _ensure_ninja_on_path()
    cpp_extension.load(name=name, build_directory=str(build_dir), verbose=verbose, **args)
    return library


def _cuda_library_includes() -> list[str]:
    """Header folders of the CUDA math libraries (cuSPARSE, cuBLAS, ...) that ATen's CUDA headers include.

    A bare toolkit may lack them; torch's own CUDA wheels ship them. They go after
    the toolkit's include folder, so the toolkit's headers win where both exist.
    """
    try:
        import nvidia  # the namespace package of torch's CUDA wheels
    except ImportError:
        return []
    found = []
    for root in getattr(nvidia, "__path__", []):
        for header in sorted(Path(root).glob("*/include/cusparse.h")):
            found += ["-isystem", str(header.parent)]
    return found


def build_cuda(verbose: bool = False, name: Optional[str] = None, build_dir: Optional[Path] = None) -> Path:
    """Compile (if needed) and load the CUDA kernels; works without a GPU (compile and link only).

    ``name`` and ``build_dir``: as for :func:`build_cpu`.
    """
    if torch.version.cuda is None:
        raise RuntimeError("this torch build has no CUDA support")
    nvcc = nvcc_path()
    if nvcc is None:
        raise RuntimeError("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    os.environ.setdefault("CUDA_HOME", str(cuda_home(nvcc)))
    os.environ["TORCH_CUDA_ARCH_LIST"] = archs = cuda_arch_list()
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import cpp_extension

    # The builder reads CUDA_HOME once, at its import (maybe before this call): give it ours.
    cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]

    args = dict(
        sources=[str(CSRC_DIR / s) for s in CUDA_SOURCES],
        extra_cflags=["-O3", *_cuda_library_includes()],
        extra_cuda_cflags=[*CUDA_FLAGS, *_cuda_library_includes()],
        extra_include_paths=[str(CSRC_DIR)],
        is_python_module=False,
        with_cuda=True,
    )
    key_args = {**args, "nvcc": nvcc, "cuda": str(torch.version.cuda)}
    name, build_dir, library = _location(name, build_dir, "cuda", CUDA_SOURCES + CUDA_HEADERS, key_args,
                                         CUDA_BUILD_ENV, f"CUDA kernels ({archs})")
    _ensure_ninja_on_path()
    cpp_extension.load(name=name, build_directory=str(build_dir), verbose=verbose, **args)
    return library


def build_error_line(exc: BaseException) -> str:
    """The compiler's first error, not ninja's closing line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() and "ninja" not in line.lower():
            return line[:300]
    return lines[0][:300] if lines else type(exc).__name__


def _fall_back(kind: str, what: str, exc: BaseException) -> None:
    """Record why a kernel is missing and say once that the reference runs instead."""
    reason = build_error_line(exc)
    _status[kind] = KernelStatus(kind, False, f"build failed: {reason}")
    message = (
        f"poolswap: the {what} SoftPool kernel could not be built ({reason}); "
        "using the pure-PyTorch reference, which is slower. Run `poolswap doctor` for details."
    )
    warnings.warn(message, RuntimeWarning, stacklevel=4)  # once per process; the CLI shows it as one line


def ensure_loaded() -> None:
    """Load the fused kernels once; on failure keep the reference and warn once."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        _loaded = True
        if os.environ.get("POOLSWAP_DISABLE_EXTENSION") == "1":
            _status["cpu"] = KernelStatus("cpu", False, "disabled by POOLSWAP_DISABLE_EXTENSION=1")
            return
        _load("cpu", "fused CPU", build_cpu)
        if torch.cuda.is_available():
            _load("cuda", "CUDA", build_cuda)


def _load_prebuilt(kind: str) -> Optional[str]:
    """Load the wheel's prebuilt ``kind`` kernel; its status detail, or None (none, or it did not load: said once)."""
    path = _prebuilt.prebuilt_file(kind)
    if path is None:
        return None
    reason = _prebuilt.torch_mismatch(torch.__version__)
    if reason is None:
        try:
            torch.ops.load_library(str(path))
            return f"{_prebuilt.describe(kind)}: {path}"
        except Exception as exc:  # an undefined symbol (another torch build), a missing runtime, ...
            reason = build_error_line(exc)
    warnings.warn(f"poolswap: the prebuilt {kind} SoftPool kernel does not load ({reason}); "
                  "compiling it from source instead", RuntimeWarning, stacklevel=5)
    return None


def _load(kind: str, what: str, build) -> None:
    """The prebuilt kernel where it loads, else the JIT build, else the reference (said once)."""
    detail = _load_prebuilt(kind)
    if detail is not None:
        _status[kind] = KernelStatus(kind, True, detail)
        return
    try:
        path = build()
        _status[kind] = KernelStatus(kind, True, f"JIT-built: {path}")
    except Exception as exc:  # a compiler error, no compiler, no ninja, ...
        _fall_back(kind, what, exc)


def cpu_parallel_backend() -> str:
    """ATen's parallel backend as the fused CPU kernel was compiled with: openmp, native or serial."""
    ensure_loaded()
    if not _status.get("cpu", KernelStatus("cpu", False, "")).active:
        return "none (reference)"
    return str(torch.ops.poolswap._cpu_parallel_backend())


def cpu_isa() -> str:
    """The instruction set the fused CPU kernel runs: ``baseline``, ``avx2`` or ``avx512`` (none: the reference).

    Chosen once per process from what the CPU reports; ``POOLSWAP_CPU_ISA`` forces one
    (an ISA this CPU lacks is a one-line error at the first call).
    """
    ensure_loaded()
    if not _status.get("cpu", KernelStatus("cpu", False, "")).active:
        return "none (reference)"
    check_cpu_isa_env()
    try:
        return str(torch.ops.poolswap._cpu_isa())
    except ValueError as exc:
        raise PoolswapValueError(str(exc).splitlines()[0]) from None


def cpu_threads_last_call() -> int:
    """How many threads ran the planes of the fused CPU kernel's last call (0 before any call)."""
    ensure_loaded()
    return int(torch.ops.poolswap._cpu_threads_last_call())


def kernel_status() -> dict[str, KernelStatus]:
    """The state of every kernel, loading them first."""
    ensure_loaded()
    status = dict(_status)
    status.setdefault("cuda", KernelStatus("cuda", False, "not loaded (no GPU here; `poolswap build` compiles it)"))
    return status


def active_backend(device: Optional[torch.device] = None) -> str:
    """``"fused"`` or ``"reference"``: what the op runs on ``device`` (default CPU)."""
    kind = torch.device(device).type if device is not None else "cpu"
    status = kernel_status().get(kind)
    return "fused" if status is not None and status.active else "reference"
