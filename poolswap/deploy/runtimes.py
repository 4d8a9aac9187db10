"""Run an exported model on each runtime poolswap checks: one callable per runtime, numpy in and out.

=================  ===========================================================================
``ort``            ONNX Runtime, SoftPool through the model's function body (or the inlined ops)
``ort-library``    ONNX Runtime with poolswap's custom-op library registered (the fused kernels)
``reference``      ONNX's reference evaluator (``onnx.reference``): slow, the spec's reading
``openvino``       OpenVINO's CPU plugin; a model with ``poolswap::SoftPool`` nodes is inlined in
                   memory first, as OpenVINO does not expand functions of custom domains
=================  ===========================================================================
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np

from ..errors import PoolswapError, first_line
from ..export.defaults import RUNTIMES

logger = logging.getLogger(__name__)

__all__ = ["RUNTIMES", "available_runtimes", "runner"]


Runner = Callable[[np.ndarray], np.ndarray]


def _unavailable(name: str) -> str:
    """Why ``name`` cannot run here, or "" when it can."""
    if name in ("ort", "ort-library"):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed: pip install 'poolswap[onnx]'"
        if name == "ort-library":
            from ..kernels import ort_library_path
            from .session import check_library

            usable, detail = check_library(ort_library_path())
            return "" if usable else f"poolswap's ONNX Runtime library is unusable: {detail}"
        return ""
    if name == "reference":
        try:
            import onnx.reference  # noqa: F401
        except ImportError:
            return "onnx is not installed: pip install onnx"
        return ""
    if name == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed: pip install openvino"
        return ""
    raise PoolswapError(f"unknown runtime {name!r}: choose from {', '.join(RUNTIMES)}")


def available_runtimes(names: Sequence[str] = RUNTIMES) -> tuple[list[str], dict[str, str]]:
    """The runtimes of ``names`` that run here, and for the others why not."""
    usable, missing = [], {}
    for name in names:
        reason = _unavailable(name)
        if reason:
            missing[name] = reason
        else:
            usable.append(name)
    return usable, missing


def _ort(path: Path, providers, library: bool) -> Runner:
    from .session import session

    sess = session(path, providers, library=library, strict=library)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def _reference(path: Path) -> Runner:
    import onnx
    from onnx.reference import ReferenceEvaluator

    from ..export import read_onnx

    model = read_onnx(path, load_external_data=True)
    evaluator = ReferenceEvaluator(model)
    name = model.graph.input[0].name

    def run(x: np.ndarray) -> np.ndarray:
        # -inf * 0 in padded windows is masked by the body itself; numpy's warnings about an empty window
        # ("Mean of empty slice") would only precede the outcome, which the comparison reports (non-finite values)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            return np.asarray(evaluator.run(None, {name: x})[0])

    return run


def _openvino(path: Path) -> Runner:
    import onnx
    import openvino
    import openvino.properties.hint as hints

    from ..export import inline_softpool, is_inlined

    model = onnx.load(str(path))
    core = openvino.Core()
    with tempfile.TemporaryDirectory() as folder:
        if not is_inlined(model):
            # OpenVINO has no rule for poolswap.SoftPool and reports the next Conv as failed: deploy --inline
            logger.info("OpenVINO does not expand poolswap::SoftPool's function; checking the --inline form "
                        "of %s (export with --inline to deploy on OpenVINO)", path.name)
            path = Path(folder) / "inlined.onnx"
            onnx.save(inline_softpool(model), str(path))
        try:
            # float32 explicitly: on CPUs with bfloat16 units (AVX512-BF16, AMX) OpenVINO's default
            # inference precision is bfloat16, which would compare a rounded model, not this one.
            compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                          {hints.inference_precision: openvino.Type.f32})
        except Exception as exc:
            raise PoolswapError(f"OpenVINO could not compile {path.name}: {first_line(exc)[:300]}") from exc
    return lambda x: np.asarray(compiled([x])[0])


def runner(path: Union[str, Path], name: str, providers="cpu") -> Runner:
    """A callable running the model at ``path`` on runtime ``name``; raises with the fix when it cannot run here."""
    reason = _unavailable(name)
    if reason:
        raise PoolswapError(f"runtime {name}: {reason}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at {path}")
    if name in ("reference", "openvino"):  # ONNX Runtime sessions check their nodes themselves
        from .node_check import check_softpool_nodes

        check_softpool_nodes(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        if name == "ort":
            return _ort(path, providers, library=False)
        if name == "ort-library":
            return _ort(path, providers, library=True)
        if name == "reference":
            return _reference(path)
        return _openvino(path)
