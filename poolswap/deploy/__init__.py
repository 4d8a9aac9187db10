"""Deploy on ONNX Runtime: sessions with poolswap's custom-op library registered.

* :func:`session` returns an ``onnxruntime.InferenceSession`` with the library
  registered (CUDA provider first when available), falling back to the model's
  function body with a warning when the library is missing (or raising, ``strict``).
* :func:`ort_library_path` finds the compiled library; :func:`build_ort_library`
  compiles it (``poolswap build``); :func:`ort_library_status` is for ``poolswap doctor``.
"""

from ._build import build_ort_library, fetch_ort_headers, find_ort_include_dir, library_file, ort_build_command
from ._session import check_library, ort_library_path, ort_library_status, resolve_providers, session

__all__ = [
    "build_ort_library",
    "check_library",
    "fetch_ort_headers",
    "find_ort_include_dir",
    "library_file",
    "ort_build_command",
    "ort_library_path",
    "ort_library_status",
    "resolve_providers",
    "session",
]
