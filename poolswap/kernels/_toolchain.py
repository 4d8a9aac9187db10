"""What every kernel build shares: the cache folder, the compilers, the CUDA targets and the cache key.

Both builders (the PyTorch extension in :mod:`._torch_extension` and the ONNX
Runtime library in :mod:`._ort_library`) take their toolchain from here, so
they detect nvcc, target the same GPU architectures and key their cache
folders the same way. Imports no torch: the ORT library builder must stay
importable with onnxruntime and numpy alone.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Iterable, Optional

from ..errors import PoolswapError, PoolswapValueError

__all__ = [
    "CPU_ISAS",
    "CPU_ISA_CFLAGS",
    "CPU_ISA_HEADERS",
    "CPU_ISA_SOURCES",
    "CSRC_DIR",
    "check_cpu_isa_env",
    "cpu_isa_cflags",
    "DEFAULT_CUDA_ARCHS",
    "build_key",
    "cache_dir",
    "cache_folder",
    "cpu_signature",
    "cuda_arch_list",
    "cuda_home",
    "cudart_static_dir",
    "cxx_compiler",
    "gencode_flags",
    "nvcc_path",
]

#: The kernel sources, shared by every front-end.
CSRC_DIR = Path(__file__).resolve().parent / "csrc"
#: softpool_cpu.h compiled once per ISA and the table that picks one at load time
#: (softpool_cpu_dispatch.h). Baseline first: the linker keeps the first copy of an
#: inline function that several objects hold, and the baseline's runs on any CPU.
CPU_ISA_SOURCES = ("softpool_cpu_baseline.cpp", "softpool_cpu_avx2.cpp", "softpool_cpu_avx512.cpp",
                   "softpool_cpu_dispatch.cpp")
CPU_ISA_HEADERS = ("softpool_cpu_dispatch.h", "softpool_cpu_isa.inc")
#: Compiler flags of every CPU kernel object: no -march=native in anything shipped
#: (``POOLSWAP_CPU_NATIVE=1`` adds it, for a developer's comparison build only).
CPU_ISA_CFLAGS = ("-O3", "-fno-math-errno", "-Wno-psabi")
#: The ISAs of the CPU kernels, as ``POOLSWAP_CPU_ISA`` names them.
CPU_ISAS = ("baseline", "avx2", "avx512")


def cpu_isa_cflags() -> tuple[str, ...]:
    """:data:`CPU_ISA_CFLAGS`, plus ``-march=native`` where ``POOLSWAP_CPU_NATIVE=1`` asks for it."""
    native = ("-march=native",) if os.environ.get("POOLSWAP_CPU_NATIVE") == "1" else ()
    return (*CPU_ISA_CFLAGS, *native)


def check_cpu_isa_env() -> None:
    """A ``POOLSWAP_CPU_ISA`` that names no ISA is the user's error, said in one line."""
    forced = os.environ.get("POOLSWAP_CPU_ISA", "")
    if forced and forced not in CPU_ISAS:
        raise PoolswapValueError(f"POOLSWAP_CPU_ISA={forced} is not an ISA; use one of {', '.join(CPU_ISAS)} or unset it")
#: Ampere and Hopper machine code, plus PTX that newer GPUs compile at load time (torch's notation).
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"


def cache_dir() -> Path:
    """``$POOLSWAP_CACHE``, else ``$XDG_CACHE_HOME/poolswap`` (``~/.cache/poolswap``)."""
    root = os.environ.get("POOLSWAP_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "poolswap"


def cache_folder(*parts: str) -> Path:
    """``cache_dir()/parts``, created; an unwritable one is a :class:`PoolswapError` naming ``POOLSWAP_CACHE``."""
    folder = cache_dir().joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        raise PoolswapError(
            f"the kernel cache folder {folder} is not writable; set POOLSWAP_CACHE to a writable folder "
            "(the fused kernels are compiled there)"
        )
    return folder


def cpu_signature() -> str:
    """The machine, plus its instruction-set flags where a build uses -march=native (``POOLSWAP_CPU_NATIVE=1``).

    A portable build runs on any CPU of the machine type, so it keys on that alone.
    """
    flags = platform.machine()
    if os.environ.get("POOLSWAP_CPU_NATIVE") != "1":
        return flags
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return flags + line
    except OSError:
        pass
    return flags + platform.processor()


def cxx_compiler() -> str:
    """The C++ compiler: ``$CXX``, else ``c++`` / ``g++`` on PATH."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or "c++"


def nvcc_path() -> Optional[str]:
    """The CUDA compiler: ``$CUDA_HOME/bin/nvcc`` (or ``$CUDA_PATH``), else the toolkit's nvcc found on PATH.

    An nvcc on PATH (perhaps a wrapper script or a link) is named by its toolkit's
    ``bin/nvcc``, the compiler torch's builder runs once ``CUDA_HOME`` points there:
    the answer, and so every build key holding it, is the same before and after a
    build in this process sets ``CUDA_HOME``. None without nvcc.
    """
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and Path(home, "bin", "nvcc").exists():
        return str(Path(home, "bin", "nvcc"))
    found = shutil.which("nvcc")
    if found is None:
        return None
    toolkit_nvcc = cuda_home(found) / "bin" / "nvcc"
    return str(toolkit_nvcc) if toolkit_nvcc.exists() else found


def cuda_home(nvcc: str) -> Path:
    """The toolkit folder holding nvcc's headers (``include/cuda_runtime.h``), links resolved."""
    for candidate in (Path(nvcc).resolve().parent.parent, Path("/usr/local/cuda").resolve()):
        if (candidate / "include" / "cuda_runtime.h").exists():
            return candidate
    return Path(nvcc).resolve().parent.parent


def cudart_static_dir(nvcc: str) -> Optional[Path]:
    """The folder holding ``libcudart_static.a`` of nvcc's toolkit, or None."""
    for root in (Path(nvcc).resolve().parent.parent, Path("/usr/local/cuda")):
        for lib in ("lib64", "lib"):
            if (root / lib / "libcudart_static.a").is_file():
                return root / lib
    return None


def cuda_arch_list() -> str:
    """The GPU targets of every CUDA build, in torch's notation: ``$TORCH_CUDA_ARCH_LIST`` or the default."""
    return os.environ.get("TORCH_CUDA_ARCH_LIST") or DEFAULT_CUDA_ARCHS


def gencode_flags(arch_list: str) -> list[str]:
    """nvcc ``-gencode`` flags for a torch-style list (``"8.0;9.0+PTX"``: sm_80, sm_90 and compute_90 PTX)."""
    flags = []
    for item in arch_list.replace(" ", ";").split(";"):
        if not item:
            continue
        ptx = item.endswith("+PTX")
        number = item.removesuffix("+PTX").replace(".", "")
        if not number.isdigit():
            raise PoolswapValueError(f"TORCH_CUDA_ARCH_LIST entry {item!r} is not an architecture such as 8.0 or 9.0+PTX")
        flags.append(f"-gencode=arch=compute_{number},code=sm_{number}")
        if ptx:
            flags.append(f"-gencode=arch=compute_{number},code=compute_{number}")
    return flags


def build_key(sources: Iterable[str], command: Iterable[str]) -> str:
    """A 16-hex-digit key of a build: its sources' contents and everything that shapes the build command.

    Callers pass every part of their build command (compilers, flags, include and
    library folders, the environment variables the builder reads); the source folder,
    Python and CPU flags are added here. Two checkouts, two environments or two
    toolchains then never share, and never rewrite, one build folder, and one command
    keeps its folder (no rebuild).
    """
    digest = hashlib.sha256()
    for name in sources:
        digest.update(name.encode())
        digest.update((CSRC_DIR / name).read_bytes())
    for part in (str(CSRC_DIR), sys.version, cpu_signature(), *command):
        digest.update(b"\0" + str(part).encode())
    return digest.hexdigest()[:16]
