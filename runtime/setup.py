"""The poolswap-runtime wheel: a subset of the repository's ``poolswap`` package plus the prebuilt ORT library.

The modules listed in RUNTIME_MODULES are taken from ``../poolswap`` as they are
(the full package runs the same files); the ONNX Runtime library is compiled into
``poolswap/kernels/prebuilt`` by the same code as the full wheel's and the JIT build
(``poolswap/kernels/_ort_library.py``). ``POOLSWAP_CUDA=0`` builds the CPU kernels
alone; ``TORCH_CUDA_ARCH_LIST`` (default ``8.0;9.0;10.0+PTX``) sets the GPU targets;
``ORT_INCLUDE_DIR`` points at other ORT (>= 1.21) headers.

The runtime and the full ``poolswap`` wheel both install the ``poolswap`` package:
install one or the other in an environment, never both.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WHEEL_CUDA_ARCHS = "8.0;9.0;10.0+PTX"
#: What a deployment needs: sessions, preprocessing, predict, the library's lookup and build.
RUNTIME_MODULES = {
    "poolswap": ["__init__", "_atomic", "_lazy", "errors", "image_files"],
    "poolswap.data": ["__init__", "preprocess"],
    "poolswap.deploy": ["__init__", "images", "node_check", "session", "top_classes"],
    "poolswap.kernels": ["__init__", "_attribute_rules", "_ort_library", "_prebuilt", "_toolchain"],
}


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


class RuntimeBuildPy(build_py):
    """Only the runtime's modules of each package."""

    def find_package_modules(self, package, package_dir):
        wanted = RUNTIME_MODULES.get(package, [])
        return [m for m in super().find_package_modules(package, package_dir) if m[1] in wanted]


class BuildOrtLibrary(build_ext):
    def run(self) -> None:
        sys.path.insert(0, str(REPO))
        from poolswap import __version__
        from poolswap.kernels import _ort_library, _prebuilt
        from poolswap.kernels._toolchain import CPU_ISAS, cuda_arch_list, nvcc_path

        with_cuda = os.environ.get("POOLSWAP_CUDA") != "0" and nvcc_path() is not None
        if with_cuda:
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", WHEEL_CUDA_ARCHS)
        else:
            os.environ["POOLSWAP_ORT_CUDA"] = "0"
        dest = Path(self.build_lib) / "poolswap" / "kernels" / "prebuilt"
        dest.mkdir(parents=True, exist_ok=True)
        try:
            _ort_library.build_ort_library(fetch=True, output=dest / _prebuilt.FILES["onnxruntime"],
                                           verbose=self.verbose > 1)
            api = _ort_library.ort_api_version(_ort_library.find_ort_include_dir())
        except Exception as exc:
            sys.stderr.write(f"error: building poolswap's ONNX Runtime library failed: {exc}\n")
            raise SystemExit(1)
        found = {"poolswap": __version__, "torch": None, "kernels": {"onnxruntime": {
            "isas": list(CPU_ISAS), "cuda_archs": cuda_arch_list() if with_cuda else None, "ort_api": api}}}
        (dest / _prebuilt.MANIFEST).write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")

    def get_outputs(self) -> list[str]:
        return []


def _version() -> str:
    text = (REPO / "poolswap" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


setup(
    version=_version(),
    packages=list(RUNTIME_MODULES),
    package_dir={"": os.path.relpath(REPO, HERE)},
    distclass=BinaryDistribution,
    cmdclass={"build_py": RuntimeBuildPy, "build_ext": BuildOrtLibrary},
)
