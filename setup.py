"""The wheel build: poolswap's kernels compiled into the package (see README, "Wheels").

``pip wheel --no-build-isolation .`` (or ``python -m build --no-isolation``) compiles,
against the torch installed in the build environment:

* the PyTorch extension's CPU kernels (baseline x86-64 plus AVX2 / AVX-512 paths
  chosen at load time) and, where nvcc and a CUDA torch exist, its CUDA kernels;
* the ONNX Runtime custom-op library (CPU, plus CUDA where built), against the
  pinned ORT headers;

into ``poolswap/kernels/prebuilt`` with a manifest, by the same build code that
source checkouts run just in time (``poolswap/kernels``). The wheel depends on
``torch==X.Y.*`` of the torch it was built with (torchvision's convention).

Environment: ``POOLSWAP_CUDA=0`` skips the CUDA kernels; ``TORCH_CUDA_ARCH_LIST``
(default ``8.0;9.0;10.0+PTX`` here) limits the GPU targets; ``ORT_INCLUDE_DIR``
points at other ONNX Runtime (>= 1.21) headers. Editable installs (``pip install -e``)
build nothing: a source checkout compiles its kernels on first use or ``poolswap build``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WHEEL_CUDA_ARCHS = "8.0;9.0;10.0+PTX"
# Binary files a wheel may carry: the kernels the build itself puts in poolswap/kernels/prebuilt.
BINARY_SUFFIXES = (".so", ".pyd", ".dll", ".dylib", ".o", ".a", ".whl", ".zip", ".gz", ".bz2", ".xz", ".tar", ".exe",
                   ".bin", ".pt", ".pth", ".onnx", ".safetensors", ".npz", ".npy")


class BinaryDistribution(Distribution):
    """Platform wheel: the kernels are compiled by build_ext below, not by setuptools' Extension machinery."""

    def has_ext_modules(self) -> bool:
        return True


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(1)


def _check_no_stray_binaries(build_lib: Path) -> None:
    """Stop where the package tree holds a binary the build did not make (a stray .whl, a checkpoint, ...)."""
    prebuilt = build_lib / "poolswap" / "kernels" / "prebuilt"
    for path in sorted(build_lib.rglob("*")):
        if path.is_file() and path.name.lower().endswith(BINARY_SUFFIXES) and prebuilt not in path.parents:
            _fail(f"{path.relative_to(build_lib)} is a binary file inside the package; remove it (only the "
                  "kernels compiled into poolswap/kernels/prebuilt belong in a wheel)")


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        _check_no_stray_binaries(Path(self.build_lib))


class BuildKernels(build_ext):
    """Compile the kernels into the wheel (nothing for an editable install)."""

    def run(self) -> None:
        if self.inplace or getattr(self, "editable_mode", False):
            return  # a source checkout: JIT build on first use or `poolswap build`
        try:
            import torch
        except ImportError:
            _fail("building poolswap's wheel compiles its kernels against torch: install torch first and build "
                  "with `pip wheel --no-build-isolation .`")
        sys.path.insert(0, str(ROOT))
        from poolswap.kernels import _prebuilt, nvcc_path

        with_cuda = (os.environ.get("POOLSWAP_CUDA") != "0" and torch.version.cuda is not None
                     and nvcc_path() is not None)
        if with_cuda:
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", WHEEL_CUDA_ARCHS)
        dest = Path(self.build_lib) / "poolswap" / "kernels" / "prebuilt"
        try:
            found = _prebuilt.build_prebuilt(dest, with_cuda=with_cuda, verbose=self.verbose > 1)
        except Exception as exc:  # one line: the compiler's first error or the headers' checksum
            from poolswap.kernels import build_error_line

            _fail(f"building poolswap's kernels failed: {build_error_line(exc)}")
        print(f"poolswap: prebuilt kernels {sorted(found['kernels'])} for torch {found['torch']}")

    def get_outputs(self) -> list[str]:
        return []


def _torch_pin() -> str:
    """``torch==X.Y.*`` of the torch in the build environment: a wheel's kernels load into that torch only.

    pip reads the metadata in a step of its own (no ``bdist_wheel`` in sight), so the pin
    follows whichever torch is importable. An isolated build (an editable install's, by
    default) has none: the source range, whose JIT build compiles for any torch.
    """
    try:
        import torch
    except ImportError:
        return "torch>=2.6"
    version = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return f"torch=={version.group(1)}.{version.group(2)}.*" if version else "torch>=2.6"


setup(
    # The rest of the metadata is pyproject.toml's; the torch pin depends on the build.
    install_requires=[_torch_pin(), "torchvision>=0.21", "timm>=1.0", "numpy", "safetensors>=0.4", "pyyaml", "tqdm",
                      "ninja"],
    distclass=BinaryDistribution,
    cmdclass={"build_ext": BuildKernels, "build_py": BuildPy},
)
