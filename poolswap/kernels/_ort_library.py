"""Build and find poolswap's ONNX Runtime custom-op library (``poolswap/kernels/csrc/ort``).

The library is compiled once per machine and poolswap source into the cache
(``$POOLSWAP_CACHE``, default ``~/.cache/poolswap``, the same place as the
PyTorch kernel), against ONNX Runtime's C/C++ headers. It does not link
libonnxruntime: ORT hands it its API table when the library is registered.

Headers, first found wins:

1. ``$ORT_INCLUDE_DIR``: any ORT >= 1.21 include folder (the one in ONNX
   Runtime's release archives, or a system ``/usr/include/onnxruntime``);
2. headers fetched before into ``<cache>/ort-headers``;
3. ``fetch=True`` (``poolswap build``, the wheel build): Debian's ``libonnxruntime-dev``
   pinned at ``DEBIAN_VERSION`` (trixie, ORT 1.21.0, API 21), its SHA-256 checked
   after download (a mismatch stops the build), downloaded with apt into a private folder:
   the mirror is read from this machine's own
   ``/etc/apt/sources.list.d/debian.sources``, and the system's apt set-up is
   left untouched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Optional

from .. import __version__
from .._atomic import atomic_path
from ..errors import PoolswapError
from ._prebuilt import prebuilt_file
from ._toolchain import (
    CPU_ISA_HEADERS, CPU_ISA_SOURCES, cpu_isa_cflags, CSRC_DIR, build_key, cache_dir, cache_folder, cuda_arch_list, cudart_static_dir, cxx_compiler, gencode_flags, nvcc_path,
)

logger = logging.getLogger(__name__)

__all__ = ["build_ort_library", "find_ort_include_dir", "library_file", "ort_build_command", "ort_library_path"]

# The front-end first, then the CPU kernels per ISA (baseline first: see CPU_ISA_SOURCES).
ORT_SOURCES = ("ort/softpool_ort.cpp", *CPU_ISA_SOURCES)
ORT_SHARED_HEADERS = ("softpool_kernel.h", "softpool_cpu.h", "softpool_attributes.h", *CPU_ISA_HEADERS)
ORT_CFLAGS = ("-std=c++17", "-fPIC", "-shared", "-fvisibility=hidden", "-DPOOLSWAP_CPU_FRONTEND_ORT")
# The CUDA kernel (where nvcc exists): the PyTorch CUDA op's forward kernel, linked with a
# static cudart so that the library still loads where no CUDA runtime is installed.
ORT_CUDA_SOURCES = ("softpool_ort_cuda.cu",)
ORT_CUDA_HEADERS = ("softpool_cuda_thread.h", "softpool_cuda.cuh", "softpool_ort_cuda.h")
ORT_CUDA_FLAGS = (
    "-O3", "-std=c++17", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden",
)  # fmt: skip
HEADER = "onnxruntime_cxx_api.h"
SOURCES_FILE = Path("/etc/apt/sources.list.d/debian.sources")
DEBIAN_SUITE = "trixie"
DEBIAN_PACKAGE = "libonnxruntime-dev"
#: The pinned header set: this Debian version (ORT 1.21.0, API 21) and the SHA-256 of its
#: include tree (:func:`header_tree_digest`; the same on every architecture). Anything
#: else fetched, or a fetched copy changed since, stops the build.
DEBIAN_VERSION = "1.21.0+dfsg-1"
ORT_HEADERS_SHA256 = "5126d763c6a59bc9f20d0ad7140fb3f1cf7c3ff6934d4d21b7129226406c6764"
#: The SHA-256 of the amd64 .deb itself, checked before unpacking on amd64.
DEBIAN_DEB_SHA256 = {"amd64": "14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08"}

_lock = threading.Lock()


def cuda_toolkit() -> Optional[tuple[str, Path]]:
    """(nvcc, the folder holding libcudart_static.a) where the CUDA kernel can be built, else None.

    ``POOLSWAP_ORT_CUDA=0`` builds the CPU kernels alone.
    """
    if os.environ.get("POOLSWAP_ORT_CUDA") == "0":
        return None
    nvcc = nvcc_path()
    lib = cudart_static_dir(nvcc) if nvcc else None
    return (nvcc, lib) if nvcc and lib else None


def _cuda_command(nvcc: str) -> tuple[str, ...]:
    return (nvcc, *ORT_CUDA_FLAGS, *gencode_flags(cuda_arch_list()))


def _headers_location() -> str:
    """The ORT headers a build would use, as the key names them: ``$ORT_INCLUDE_DIR`` or the fetched copy."""
    env = os.environ.get("ORT_INCLUDE_DIR")
    return str(Path(env).expanduser()) if env else str(cache_dir() / "ort-headers")


def library_file() -> Path:
    """Where this machine's library for this poolswap source and toolchain lives (built or not).

    Its name keys every part of the build command (:func:`ort_build_command`): compiler,
    flags, ORT headers, and the CUDA compiler, flags and runtime where there is one.
    """
    toolkit = cuda_toolkit()
    sources = ORT_SOURCES + ORT_SHARED_HEADERS + ((ORT_CUDA_SOURCES + ORT_CUDA_HEADERS) if toolkit else ())
    cuda = (*_cuda_command(toolkit[0]), str(toolkit[1])) if toolkit else ("cpu",)
    command = (__version__, cxx_compiler(), *cpu_isa_cflags(), *ORT_CFLAGS, _headers_location(), *cuda)
    return cache_dir() / "ort" / f"libpoolswap_ort_{build_key(sources, command)}.so"


def ort_library_path(build: bool = True) -> Optional[Path]:
    """Path of poolswap's ONNX Runtime custom-op library, or None when there is none.

    ``$POOLSWAP_ORT_LIBRARY`` overrides the lookup; then the one the wheel ships
    (``poolswap/kernels/prebuilt``, unless ``POOLSWAP_PREBUILT=0``). Otherwise the library built
    for this machine and poolswap source is taken from the cache; with ``build``
    it is compiled there when headers are at hand without downloading
    (``ORT_INCLUDE_DIR``, or headers fetched by an earlier ``poolswap build``).
    """
    env = os.environ.get("POOLSWAP_ORT_LIBRARY")
    if env:
        return Path(env).expanduser()
    prebuilt = prebuilt_file("onnxruntime")
    if prebuilt is not None:
        return prebuilt
    library = library_file()
    if library.is_file():
        return library
    if build:
        try:
            return build_ort_library(fetch=False)
        except PoolswapError as exc:
            logger.debug("no ONNX Runtime library: %s", exc)
    return None


def _has_header(folder: Path) -> Optional[Path]:
    for candidate in (folder, folder / "onnxruntime", folder / "include", folder / "include" / "onnxruntime"):
        if (candidate / HEADER).is_file():
            return candidate
    return None


def find_ort_include_dir() -> Optional[Path]:
    """The ORT include folder to build against without downloading anything, or None."""
    env = os.environ.get("ORT_INCLUDE_DIR")
    if env:
        found = _has_header(Path(env).expanduser())
        if found is None:
            raise PoolswapError(f"ORT_INCLUDE_DIR={env} holds no {HEADER}; point it at ONNX Runtime's include folder")
        return found
    fetched = cache_dir() / "ort-headers" / "usr" / "include"
    found = _has_header(fetched)
    if found is not None:
        verify_ort_headers(fetched)
    return found


def _debian_source_stanza() -> str:
    """The machine's first Debian source stanza, retargeted at the suite that has the package."""
    if not SOURCES_FILE.is_file():
        raise PoolswapError(
            f"no {SOURCES_FILE} to fetch {DEBIAN_PACKAGE} from; set ORT_INCLUDE_DIR to an ONNX Runtime "
            "(>= 1.21) include folder instead"
        )
    text = SOURCES_FILE.read_text(encoding="utf-8")
    stanza = next((s for s in re.split(r"\n\s*\n", text) if re.search(r"^URIs:", s, re.M)), None)
    if stanza is None:
        raise PoolswapError(f"{SOURCES_FILE} has no URIs stanza; set ORT_INCLUDE_DIR instead")
    return re.sub(r"^Suites:.*$", f"Suites: {DEBIAN_SUITE}", stanza, flags=re.M).strip() + "\n"


def header_tree_digest(include_root: Path) -> str:
    """SHA-256 over every file under ``include_root``: relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in include_root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(include_root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def verify_ort_headers(include_root: Path) -> None:
    """Stop (one line) where the fetched header set is not the pinned one."""
    found = header_tree_digest(include_root)
    if found != ORT_HEADERS_SHA256:
        raise PoolswapError(
            f"the ONNX Runtime headers in {include_root} fail their checksum (sha256 {found[:16]}..., pinned "
            f"{ORT_HEADERS_SHA256[:16]}... for {DEBIAN_PACKAGE} {DEBIAN_VERSION}); delete that folder and rebuild, "
            "or set ORT_INCLUDE_DIR"
        )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_ort_headers(dest: Optional[Path] = None) -> Path:
    """Download Debian's ``libonnxruntime-dev`` (the pinned version), check it and unpack it; returns the include dir.

    The apt state is private and the system's apt set-up untouched. The .deb's SHA-256
    (where pinned for this architecture) and the unpacked headers' digest must match
    the pins, or nothing is kept and a :class:`PoolswapError` says so in one line.
    """
    dest = dest or (cache_folder() / "ort-headers")
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise PoolswapError(f"{tool} is not available to fetch ORT headers; set ORT_INCLUDE_DIR instead")
    with tempfile.TemporaryDirectory(prefix="poolswap-ort-headers-") as tmp:
        work = Path(tmp)
        parts = work / "sources.list.d"
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "cache" / "archives" / "partial").mkdir(parents=True)
        parts.mkdir()
        (parts / "poolswap-ort.sources").write_text(_debian_source_stanza(), encoding="utf-8")
        options = [
            "-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={parts}",
            "-o", f"Dir::State::Lists={work / 'lists'}",
            "-o", f"Dir::Cache={work / 'cache'}",
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
        ]  # fmt: skip
        logger.info("fetching ONNX Runtime headers (%s from Debian %s)", DEBIAN_PACKAGE, DEBIAN_SUITE)
        for command in (["apt-get", *options, "-qq", "update"], ["apt-get", *options, "-qq", "download", f"{DEBIAN_PACKAGE}={DEBIAN_VERSION}"]):
            result = subprocess.run(command, cwd=work, capture_output=True, text=True)
            if result.returncode != 0:
                reason = (result.stderr or result.stdout).strip().splitlines()
                raise PoolswapError(
                    f"could not fetch {DEBIAN_PACKAGE} ({reason[-1] if reason else 'apt-get failed'}); "
                    "set ORT_INCLUDE_DIR to an ONNX Runtime (>= 1.21) include folder instead"
                )
        debs = sorted(work.glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise PoolswapError(f"apt-get downloaded no {DEBIAN_PACKAGE}; set ORT_INCLUDE_DIR instead")
        arch = debs[-1].stem.rsplit("_", 1)[-1]
        pinned = DEBIAN_DEB_SHA256.get(arch)
        if pinned is not None and _file_sha256(debs[-1]) != pinned:
            raise PoolswapError(
                f"{debs[-1].name} fails its checksum (sha256 {_file_sha256(debs[-1])[:16]}..., pinned {pinned[:16]}...); "
                "not using it: set ORT_INCLUDE_DIR to an ONNX Runtime (>= 1.21) include folder instead"
            )
        unpacked = work / "unpacked"
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], check=True, capture_output=True)
        verify_ort_headers(unpacked / "usr" / "include")
        if dest.exists():
            shutil.rmtree(dest)
        # Headers only: the package's library symlinks point at a runtime package we do not want.
        shutil.copytree(unpacked / "usr" / "include", dest / "usr" / "include", symlinks=True)
    found = _has_header(dest / "usr" / "include")
    if found is None:
        raise PoolswapError(f"{DEBIAN_PACKAGE} held no {HEADER}; set ORT_INCLUDE_DIR instead")
    return found


def ort_api_version(include_dir: Path) -> int:
    """``ORT_API_VERSION`` of the headers in ``include_dir``."""
    text = (include_dir / "onnxruntime_c_api.h").read_text(encoding="utf-8", errors="replace")
    match = re.search(r"#define\s+ORT_API_VERSION\s+(\d+)", text)
    return int(match.group(1)) if match else 0


def ort_build_command(include_dir: Path, output: Path, cuda_object: Optional[Path] = None,
                      cuda_lib_dir: Optional[Path] = None) -> list[str]:
    """The compiler command line that builds the library (with the CUDA kernel's object, where given)."""
    compiler = cxx_compiler()
    cuda = []
    if cuda_object is not None:
        cuda = ["-DPOOLSWAP_ORT_WITH_CUDA", str(cuda_object), f"-L{cuda_lib_dir}", "-lcudart_static", "-ldl", "-lrt",
                "-lpthread"]
    sources = [str(CSRC_DIR / s) for s in ORT_SOURCES]
    return [
        compiler,
        *cpu_isa_cflags(),
        *ORT_CFLAGS,
        f"-I{include_dir}",
        f"-I{CSRC_DIR}",
        f'-DPOOLSWAP_ORT_LIBRARY_VERSION="{__version__}"',
        *sources[:1],
        *cuda[:1],
        *sources[1:],
        *cuda[1:],
        "-o",
        str(output),
    ]


def _compile_cuda_object(nvcc: str, folder: Path, verbose: bool) -> Path:
    """nvcc-compile the CUDA kernel of the library into ``folder``."""
    obj = folder / "softpool_ort_cuda.o"
    command = [*_cuda_command(nvcc), f"-I{CSRC_DIR}", "-c", str(CSRC_DIR / ORT_CUDA_SOURCES[0]), "-o", str(obj)]
    logger.info("compiling the library's CUDA kernel (%s)", cuda_arch_list())
    if verbose:
        print(" ".join(command), file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [l for l in result.stderr.splitlines() if "error" in l.lower()]
        raise PoolswapError(
            f"compiling the ONNX Runtime library's CUDA kernel failed: {(errors or result.stderr.splitlines() or ['?'])[0]}"
            " (set POOLSWAP_ORT_CUDA=0 to build the CPU kernels alone)"
        )
    return obj


def build_ort_library(verbose: bool = False, fetch: bool = True, force: bool = False,
                      output: Optional[Path] = None) -> Path:
    """Compile (if needed) the ORT custom-op library into the cache (or ``output``: the wheel build); returns its path.

    ``fetch`` allows downloading Debian's headers when neither ``ORT_INCLUDE_DIR``
    nor earlier fetched headers exist. Raises :class:`PoolswapError` with the reason.
    """
    with _lock:
        library = output or library_file()
        if library.is_file() and not force and output is None:
            return library
        include_dir = find_ort_include_dir()
        if include_dir is None:
            if not fetch:
                raise PoolswapError(
                    "no ONNX Runtime headers: run `poolswap build` (fetches them) or set ORT_INCLUDE_DIR"
                )
            include_dir = fetch_ort_headers()
        api = ort_api_version(include_dir)
        if api < 21:
            raise PoolswapError(f"the ORT headers in {include_dir} are API {api}; poolswap needs ORT >= 1.21 headers")
        if output is None:
            cache_folder("ort")
        toolkit = cuda_toolkit()
        with atomic_path(library) as tmp, tempfile.TemporaryDirectory(prefix="poolswap-ort-build-") as work:
            cuda_object = _compile_cuda_object(toolkit[0], Path(work), verbose) if toolkit else None
            command = ort_build_command(include_dir, tmp, cuda_object, toolkit[1] if toolkit else None)
            logger.info("compiling poolswap's ONNX Runtime library into %s", library)
            if verbose:
                print(" ".join(command), file=sys.stderr)
            result = subprocess.run(command, capture_output=True, text=True)
            if verbose and (result.stdout or result.stderr):
                print(result.stdout + result.stderr, file=sys.stderr)
            if result.returncode != 0:
                errors = [l for l in result.stderr.splitlines() if "error" in l.lower()]
                raise PoolswapError(
                    f"building the ONNX Runtime library failed: {(errors or result.stderr.splitlines() or ['?'])[0]}"
                )
        return library
