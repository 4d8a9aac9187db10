"""Deploy on ONNX Runtime: sessions with poolswap's custom-op library registered.

* :func:`session` returns an ``onnxruntime.InferenceSession`` with the library
  registered (CUDA provider first when available), falling back to the model's
  function body with a warning when the library is missing (or raising, ``strict``).
* :func:`ort_library_path` finds the compiled library; :func:`check_library` says whether
  this process can register it; :func:`ort_library_status` is for ``poolswap doctor``.
* :func:`predict`: the top classes of image files, with the preprocessing stored in the model.
* :func:`library_path`: the library file, for C++ users (``Ort::SessionOptions::RegisterCustomOpsLibrary``).
* :mod:`.images`: image files to model inputs, with numpy and PIL alone.

Needs onnxruntime and numpy only (PIL for images): this is also what the
``poolswap-runtime`` wheel ships, with the prebuilt library and without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PoolswapError
from ..kernels import ort_library_path
from .session import check_library, ort_library_status, resolve_providers, session

if TYPE_CHECKING:
    from .top_classes import Prediction, predict

__all__ = ["Prediction", "check_library", "library_path", "ort_library_path", "ort_library_status", "predict",
           "resolve_providers", "session"]


def library_path() -> Path:
    """The ONNX Runtime custom-op library this installation ships or built; a :class:`PoolswapError` if none.

    Never compiles: for C++ deployments, print it with
    ``python -c "import poolswap.deploy as d; print(d.library_path())"``.
    """
    path = ort_library_path(build=False)
    if path is None:
        raise PoolswapError("no poolswap ONNX Runtime library here: install the poolswap or poolswap-runtime wheel, "
                            "or run `poolswap build` in a source checkout")
    return path


def __getattr__(name: str) -> Any:
    if name in ("predict", "Prediction"):  # needs PIL for images: imported on use
        from . import top_classes

        value = getattr(top_classes, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'poolswap.deploy' has no attribute {name!r}")
