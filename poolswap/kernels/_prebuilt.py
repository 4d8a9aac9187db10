"""Kernels compiled into the package by its wheel build (``setup.py``), and how they are found.

A wheel carries, in ``poolswap/kernels/prebuilt``: the PyTorch extension
(``poolswap_cpu.so``, and ``poolswap_cuda.so`` where the build had nvcc), the ONNX
Runtime library (``libpoolswap_ort.so``) and ``manifest.json`` saying what they were
built for (torch version, CPU ISAs, CUDA architectures, ORT API). The build is the
one source checkouts compile just in time (:mod:`._torch_extension`,
:mod:`._ort_library`): same sources, same flags, only the output folder differs.

Imports no torch: the ORT half must stay importable with onnxruntime and numpy alone.
``POOLSWAP_PREBUILT=0`` ignores the prebuilt kernels (the JIT build then runs).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from .. import __version__
from ._toolchain import CPU_ISAS, cuda_arch_list

logger = logging.getLogger(__name__)

__all__ = ["PREBUILT_DIR", "build_prebuilt", "manifest", "prebuilt_file", "torch_mismatch"]

#: Where a wheel's kernels live, inside the installed package.
PREBUILT_DIR = Path(__file__).resolve().parent / "prebuilt"
MANIFEST = "manifest.json"
FILES = {"cpu": "poolswap_cpu.so", "cuda": "poolswap_cuda.so", "onnxruntime": "libpoolswap_ort.so"}


def manifest() -> Optional[dict]:
    """The prebuilt kernels' manifest, or None (a source checkout, or ``POOLSWAP_PREBUILT=0``)."""
    if os.environ.get("POOLSWAP_PREBUILT") == "0":
        return None
    try:
        return json.loads((PREBUILT_DIR / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prebuilt_file(kind: str) -> Optional[Path]:
    """The prebuilt binary of ``kind`` (``cpu``, ``cuda``, ``onnxruntime``), where the manifest lists it."""
    found = manifest()
    if found is None or kind not in found.get("kernels", {}):
        return None
    path = PREBUILT_DIR / FILES[kind]
    return path if path.is_file() else None


def torch_mismatch(torch_version: str) -> Optional[str]:
    """Why the prebuilt PyTorch kernels cannot load into this torch (another X.Y), or None."""
    found = manifest() or {}
    built = found.get("torch")
    if built is None:
        return None
    if built.split("+")[0].split(".")[:2] != torch_version.split("+")[0].split(".")[:2]:
        return f"built for torch {built}, this is torch {torch_version}"
    return None


def describe(kind: str) -> str:
    """What a prebuilt kernel was built for, for ``poolswap doctor``: ISAs or GPU architectures."""
    entry = (manifest() or {}).get("kernels", {}).get(kind, {})
    if kind == "cuda":
        return f"prebuilt for {entry.get('archs', '?')}"
    parts = [f"ISAs {'/'.join(entry.get('isas', CPU_ISAS))}"]
    if entry.get("cuda_archs"):
        parts.append(f"CUDA {entry['cuda_archs']}")
    return "prebuilt (" + ", ".join(parts) + ")"


def build_prebuilt(dest: Path, with_cuda: bool, verbose: bool = False) -> dict:
    """Compile every kernel into ``dest`` (the wheel's ``poolswap/kernels/prebuilt``) and write the manifest.

    The same build as the JIT one, into ``dest`` instead of the cache. ``with_cuda``:
    also the CUDA kernels (PyTorch op and ORT library) for ``TORCH_CUDA_ARCH_LIST``.
    """
    import torch

    from . import _ort_library, _torch_extension

    dest.mkdir(parents=True, exist_ok=True)
    kernels: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="poolswap-wheel-build-") as work:
        cpu = _torch_extension.build_cpu(verbose=verbose, name="poolswap_cpu", build_dir=Path(work) / "cpu")
        shutil.copy2(cpu, dest / FILES["cpu"])
        kernels["cpu"] = {"isas": list(CPU_ISAS)}
        if with_cuda:
            cuda = _torch_extension.build_cuda(verbose=verbose, name="poolswap_cuda", build_dir=Path(work) / "cuda")
            shutil.copy2(cuda, dest / FILES["cuda"])
            kernels["cuda"] = {"archs": cuda_arch_list(), "cuda": str(torch.version.cuda)}
        if not with_cuda:
            os.environ["POOLSWAP_ORT_CUDA"] = "0"
        ort = _ort_library.build_ort_library(verbose=verbose, fetch=True, output=dest / FILES["onnxruntime"])
        kernels["onnxruntime"] = {"isas": list(CPU_ISAS), "cuda_archs": cuda_arch_list() if with_cuda else None,
                                  "ort_api": _ort_library.ort_api_version(_ort_library.find_ort_include_dir())}
        logger.info("built %s", ort)
    found = {"poolswap": __version__, "torch": torch.__version__, "kernels": kernels}
    (dest / MANIFEST).write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
    return found
