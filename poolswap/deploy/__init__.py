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
* :mod:`.images`: image files to model inputs, with numpy and PIL alone.
"""

from ..kernels import ort_library_path
from .node_check import check_softpool_nodes
from .session import check_library, ort_library_status, resolve_providers, session
from .validation import PairResult, ValidationReport, compare_outputs, validate

__all__ = [
    "PairResult",
    "ValidationReport",
    "check_library",
    "check_softpool_nodes",
    "compare_outputs",
    "ort_library_path",
    "ort_library_status",
    "resolve_providers",
    "session",
    "validate",
]
