"""ONNX Runtime sessions for poolswap models: the custom-op library registered, CUDA first.

Needs only ``onnxruntime`` and ``numpy`` at run time (torch is imported only to
build the library or to find the cache folder).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..errors import PoolswapError, first_line
from ..kernels import ort_library_path
from .node_check import check_softpool_nodes, softpool_problem_for_inputs

logger = logging.getLogger(__name__)

__all__ = ["check_library", "ort_library_status", "resolve_providers", "session"]

#: The ORT C API version the library is built against (ORT >= 1.21).
MIN_ORT_API = 21

PathLike = Union[str, "os.PathLike[str]"]


def _ort_api_version() -> int:
    import onnxruntime

    match = re.match(r"(\d+)\.(\d+)", onnxruntime.__version__)
    return int(match.group(2)) if match and match.group(1) == "1" else 0


def check_library(path: Optional[PathLike]) -> tuple[bool, str]:
    """Whether ``path`` is a poolswap ORT library this process can register, and why not.

    Loads it with ``ctypes`` (it links no ORT, so this is safe) and reads its
    ``poolswap_ort_library_info()``: another architecture or ABI, a file that is not
    poolswap's library, or a library built for a newer ORT API each get their own message.
    """
    if path is None:
        return False, "not built: run `poolswap build` (or set ORT_INCLUDE_DIR and run it) to compile it"
    path = Path(path)
    if not path.is_file():
        return False, f"{path} does not exist: run `poolswap build`"
    try:
        handle = ctypes.CDLL(str(path))
    except OSError as exc:
        return False, f"{path} cannot be loaded on this machine (built for another ABI or architecture?): {exc}"
    try:
        info_fn = handle.poolswap_ort_library_info
        _ = handle.RegisterCustomOps
    except AttributeError:
        return False, f"{path} is not poolswap's ONNX Runtime library (no poolswap_ort_library_info/RegisterCustomOps)"
    info_fn.restype = ctypes.c_char_p
    info = info_fn().decode("utf-8", "replace")
    match = re.search(r"ort_api=(\d+)", info)
    built_api = int(match.group(1)) if match else 0
    have_api = _ort_api_version()
    if built_api > have_api:
        return False, f"{path} was built for ORT API {built_api} but onnxruntime here has API {have_api}; rebuild it"
    return True, f"{path} ({info})"


def ort_library_status() -> dict:
    """``{"active": bool, "detail": str}`` for ``poolswap doctor``."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {"active": False, "detail": "onnxruntime is not installed (pip install 'poolswap[onnx]')"}
    try:
        path = ort_library_path(build=False)
    except Exception as exc:  # a broken cache, an unreadable source tree: report, don't crash doctor
        return {"active": False, "detail": f"lookup failed: {exc}"}
    ok, detail = check_library(path)
    if ok:
        detail = f"{_provenance(Path(path))}, CPU ISA {library_cpu_isa(path)}: {detail}"
    return {"active": ok, "detail": detail}


def _provenance(path: Path) -> str:
    """Where the library came from: the wheel (prebuilt), ``POOLSWAP_ORT_LIBRARY``, or the JIT build's cache."""
    from ..kernels import _prebuilt

    if os.environ.get("POOLSWAP_ORT_LIBRARY"):
        return "from POOLSWAP_ORT_LIBRARY"
    if _prebuilt.PREBUILT_DIR in path.resolve().parents:
        return _prebuilt.describe("onnxruntime")
    return "JIT-built"


def library_cpu_isa(path: PathLike) -> str:
    """The instruction set the library's CPU kernels run here (``POOLSWAP_CPU_ISA`` forces one), or why none."""
    try:
        fn = ctypes.CDLL(str(path)).poolswap_ort_cpu_isa
    except (OSError, AttributeError):
        return "unknown (a library without ISA dispatch)"
    fn.restype = ctypes.c_char_p
    return fn().decode("utf-8", "replace")


def _cuda_device_present() -> bool:
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return bool(torch.cuda.is_available())
        except Exception:
            return False
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        if cuda.cuInit(0) != 0:
            return False
        count = ctypes.c_int(0)
        return cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except (OSError, AttributeError):
        return False


def resolve_providers(providers: Union[str, Sequence[Any], None] = "auto") -> list:
    """``"auto"``: CUDA first when onnxruntime has it and a GPU is present, then CPU; ``"cpu"``, ``"cuda"`` or a list."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if providers is None or providers == "auto":
        chosen = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in available and _cuda_device_present():
            chosen.insert(0, "CUDAExecutionProvider")
        return chosen
    if providers == "cpu":
        return ["CPUExecutionProvider"]
    if providers == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise PoolswapError(f"onnxruntime here has no CUDA provider (it has {', '.join(available)})")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if isinstance(providers, str):
        return [providers]
    return list(providers)


def _describe(arg: Any) -> str:
    shape = getattr(arg, "shape", None)
    dtype = getattr(arg, "dtype", None)
    if shape is None:
        return type(arg).__name__
    return f"{dtype} {tuple(shape)}"


def _onnx_type(ort_type: str) -> str:
    match = re.match(r"tensor\((\w+)\)", ort_type or "")
    return {"float": "float32", "double": "float64"}.get(match.group(1), match.group(1)) if match else str(ort_type)


_NODE_ERROR = "poolswap::SoftPool node"


def _node_error(exc: BaseException) -> Optional[str]:
    """The library's own message when ``exc`` is its refusal of a SoftPool node (ORT's prefix dropped), else None."""
    text = str(exc)
    at = text.find(_NODE_ERROR)
    return first_line(text[at:]) if at >= 0 else None


def _quiet_options(so: Any) -> None:
    """ORT logs a refused node as a coloured line before raising; poolswap's own one-line error says it.

    Errors still reach the caller as exceptions; with poolswap's logger at DEBUG, ORT's warnings show too.
    """
    so.log_severity_level = 2 if logger.isEnabledFor(logging.DEBUG) else 4


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise PoolswapError("onnxruntime is not installed: pip install 'poolswap[onnx]'") from exc
    return onnxruntime


def _session_class():
    onnxruntime = _import_ort()

    class PoolswapSession(onnxruntime.InferenceSession):
        """An ``onnxruntime.InferenceSession`` whose input errors are one line naming the expected inputs.

        ``poolswap_library`` is the registered library (None when the model runs its function body);
        ``poolswap_model`` the model file, to name the SoftPool node behind a failed run.
        """

        poolswap_library: Optional[Path] = None
        poolswap_model: Optional[Path] = None

        def expected_inputs(self) -> str:
            return ", ".join(f"'{i.name}' {_onnx_type(i.type)} {list(i.shape)}" for i in self.get_inputs())

        def run(self, output_names, input_feed, run_options=None):
            try:
                return super().run(output_names, input_feed, run_options)
            except Exception as exc:
                node_error = _node_error(exc)
                if node_error is None and self.poolswap_model is not None:  # the function body's ops failed: why?
                    shapes = {k: getattr(v, "shape", None) for k, v in dict(input_feed).items()}
                    node_error = softpool_problem_for_inputs(self.poolswap_model, shapes)
                if node_error is not None:  # the input fits; a node's attribute cannot work on it
                    raise PoolswapError(node_error) from exc
                if type(exc).__module__.startswith("onnxruntime") or isinstance(exc, (ValueError, TypeError, RuntimeError)):
                    given = ", ".join(f"'{k}' {_describe(v)}" for k, v in dict(input_feed).items())
                    raise PoolswapError(
                        f"the model expects input {self.expected_inputs()}; got {given}: {first_line(exc)}"
                    ) from exc
                raise

    return PoolswapSession


PoolswapSession = None  # the class is created on first use (it subclasses onnxruntime's)

#: ONNX Runtime's words for a poolswap::SoftPool node that neither a library nor a function runs.
_FUNCTION_DROPPED = "poolswap:SoftPool(-1) is not a registered function/op"


def _with_function_restored(path: Path) -> bytes:
    """The model at ``path`` with the SoftPool function a tool dropped attached again, in memory.

    ONNX's version converter and ORT's saved optimised model keep the nodes but not the
    model-local function. The full package rebuilds the body (the one the export recorded);
    the runtime wheel, which has no exporter, says in one line what to do.
    """
    try:
        import onnx

        from ..export._restore import restore_function
    except ImportError:
        raise PoolswapError(
            f"{path.name} has poolswap::SoftPool nodes but no SoftPool function (a tool such as ONNX's version "
            "converter dropped it) and poolswap's library is not registered: register the library, or put the body "
            "back with poolswap.export.restore_function (full poolswap package)") from None
    model = restore_function(onnx.load(str(path)))
    logger.warning("%s: a tool dropped the SoftPool function; running the body restored in memory "
                   "(poolswap.export.restore_function writes it back to the file)", path.name)
    return model.SerializeToString()


def session(
    path: PathLike,
    providers: Union[str, Sequence[Any], None] = "auto",
    *,
    library: Union[bool, str, PathLike] = True,
    strict: bool = False,
    options: Any = None,
    intra_op_threads: Optional[int] = None,
):
    """An ``onnxruntime.InferenceSession`` for ``path`` with poolswap's library registered.

    ``providers``: ``"auto"`` (CUDA first when available), ``"cpu"``, ``"cuda"`` or
    an ORT provider list. ``library``: True (find it, :func:`ort_library_path`),
    False (run the model's function body), or a path. When the library is missing
    or unusable, the session falls back to the function body with a warning, or
    raises :class:`PoolswapError` when ``strict``.
    """
    global PoolswapSession
    onnxruntime = _import_ort()
    if PoolswapSession is None:
        PoolswapSession = _session_class()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at {path}")
    check_softpool_nodes(path)  # the library's rules, for the function body too
    if options is None:
        so = onnxruntime.SessionOptions()
        _quiet_options(so)
    else:
        so = options
    if intra_op_threads is not None:
        so.intra_op_num_threads = int(intra_op_threads)
    registered: Optional[Path] = None
    if library is not False and library is not None:
        candidate = ort_library_path() if library is True or library == "auto" else Path(library)
        ok, detail = check_library(candidate)
        if ok:
            try:
                so.register_custom_ops_library(str(candidate))
                registered = candidate
            except Exception as exc:
                ok, detail = False, f"ONNX Runtime refused {candidate}: {first_line(exc)}"
        if not ok:
            message = f"poolswap's ONNX Runtime library is unusable: {detail}"
            if strict:
                raise PoolswapError(message)
            fallback = f"{message}; running SoftPool through the model's function body (slower)"
            logger.warning(fallback)
            warnings.warn(fallback, RuntimeWarning, stacklevel=2)
    try:
        sess = PoolswapSession(str(path), sess_options=so, providers=resolve_providers(providers))
    except Exception as exc:
        node_error = _node_error(exc)
        if node_error is not None:
            raise PoolswapError(f"{path.name}: {node_error}") from exc
        if _FUNCTION_DROPPED not in str(exc):
            raise PoolswapError(f"ONNX Runtime could not load {path}: {first_line(exc)}") from exc
        sess = PoolswapSession(_with_function_restored(path), sess_options=so, providers=resolve_providers(providers))
    sess.poolswap_library = registered
    sess.poolswap_model = path
    return sess
