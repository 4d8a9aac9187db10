"""Deploy on ONNX Runtime: sessions with poolswap's custom-op library registered.

* :func:`session` returns an ``onnxruntime.InferenceSession`` with the library
  registered (CUDA provider first when available), falling back to the model's
  function body with a warning when the library is missing (or raising, ``strict``).
* :func:`ort_library_path` finds the compiled library; :func:`check_library` says whether
  this process can register it; :func:`ort_library_status` is for ``poolswap doctor``.
* :func:`validate` compares an exported model with PyTorch on every runtime at hand
  (:mod:`.runtimes`: ORT with the body, ORT with the library, ONNX's reference
  evaluator, OpenVINO).
* :func:`check_softpool_nodes` refuses, in one line naming the node and the attribute, a
  ``poolswap::SoftPool`` node that the library would refuse (every session checks first).
* :func:`predict`: the top classes of image files, with the preprocessing stored in the model.
* :func:`library_path`: the library file, for C++ users (``Ort::SessionOptions::RegisterCustomOpsLibrary``).
* :mod:`.images`: image files to model inputs, with numpy and PIL alone.

Needs onnxruntime and numpy only (PIL for images): this is also what the
``poolswap-runtime`` wheel ships, with the prebuilt library and without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ..errors import PoolswapError
from ..kernels import ort_library_path
from .node_check import check_softpool_nodes
from .session import check_library, ort_library_status, resolve_providers, session

if TYPE_CHECKING:
    from .top_classes import Prediction, predict
    from .validation import PairResult, ValidationReport, compare_outputs, validate

# Imported on first use: predict needs PIL, validation the full package (torch, onnx).
_LAZY = {
    "Prediction": ".top_classes",
    "predict": ".top_classes",
    "PairResult": ".validation",
    "ValidationReport": ".validation",
    "compare_outputs": ".validation",
    "validate": ".validation",
}

__all__ = ["check_library", "check_softpool_nodes", "library_path", "ort_library_path", "ort_library_status",
           "resolve_providers", "session", *_LAZY]


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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
