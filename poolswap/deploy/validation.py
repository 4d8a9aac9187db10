"""Validate an exported model: PyTorch against every runtime poolswap checks (see :mod:`poolswap.deploy.runtimes`).

Each runtime's output is compared with PyTorch's (without a checkpoint, with the
first runtime's). Each pair of runs on the same inputs gets its max absolute difference, its max
relative difference (the absolute one divided by the reference's largest
magnitude, so near-zero logits do not blow it up) and, for (N, classes)
outputs, top-1 and top-5 agreement. A pair fails when
``max_abs > atol + rtol * max|reference|``, or when top-1 agreement falls
below ``min_top1`` (if given).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import PoolswapError

logger = logging.getLogger(__name__)

__all__ = ["PairResult", "ValidationReport", "compare_outputs", "validate"]


@dataclass
class PairResult:
    """How two runs of the model agree."""

    a: str
    b: str
    max_abs: float
    max_rel: float
    top1: Optional[float]
    top5: Optional[float]
    ok: bool
    reason: str = ""  # why a pair fails beyond the numbers (non-finite or empty outputs)

    def line(self) -> str:
        top = "" if self.top1 is None else f"  top-1 {self.top1:6.1%}  top-5 {self.top5:6.1%}"
        verdict = "ok" if self.ok else ("FAIL" + (f" ({self.reason})" if self.reason else ""))
        return f"{self.a:>11} vs {self.b:<11} max abs {self.max_abs:.3e}  max rel {self.max_rel:.3e}{top}  {verdict}"


@dataclass
class ValidationReport:
    """All pairs, what was skipped and why, and the verdict."""

    pairs: list[PairResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    n_inputs: int = 0
    atol: float = 1e-4
    rtol: float = 1e-4

    @property
    def ok(self) -> bool:
        return bool(self.pairs) and all(p.ok for p in self.pairs)

    def format(self) -> str:
        lines = [f"{self.n_inputs} input(s); tolerance max abs <= {self.atol:g} + {self.rtol:g} * max|reference|"]
        lines += [p.line() for p in self.pairs]
        lines += [f"skipped: {s}" for s in self.skipped]
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def _topk_agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Fraction of rows whose top-1 of ``a`` is in the top-k of ``b`` (k=1: same argmax)."""
    k = min(k, b.shape[1])
    top_b = np.argsort(-b, axis=1)[:, :k]
    return float(np.mean([a_row in b_row for a_row, b_row in zip(np.argmax(a, axis=1), top_b)]))


def compare_outputs(
    name_a: str,
    a: np.ndarray,
    name_b: str,
    b: np.ndarray,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    min_top1: Optional[float] = None,
) -> PairResult:
    """Compare two outputs; ``a`` is the reference for the relative difference."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return PairResult(name_a, name_b, float("inf"), float("inf"), None, None, False,
                          f"shapes differ: {a.shape} and {b.shape}")
    if a.size == 0:
        return PairResult(name_a, name_b, float("nan"), float("nan"), None, None, False, "no outputs to compare")
    diff = np.abs(a - b)
    finite = np.isfinite(a) & np.isfinite(b)
    same_nonfinite = ~finite & ((a == b) | (np.isnan(a) & np.isnan(b)))
    max_abs = float(np.max(np.where(same_nonfinite, 0.0, diff))) if diff.size else 0.0
    if np.isnan(max_abs):
        max_abs = float("inf")
    scale = float(np.max(np.abs(a[finite]))) if finite.any() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    top1 = top5 = None
    if a.ndim == 2 and a.shape[1] > 1:
        top1 = _topk_agreement(a, b, 1)
        top5 = _topk_agreement(a, b, 5)
    ok = max_abs <= atol + rtol * scale
    reason = ""
    # outputs that agree in being NaN agree on nothing: a comparison of non-finite outputs fails
    if not finite.all():
        ok, reason = False, f"{int((~finite).sum())} non-finite output value(s)"
    if min_top1 is not None and top1 is not None and top1 < min_top1:
        ok = False
    return PairResult(name_a, name_b, max_abs, max_rel, top1, top5, ok, reason)


def _pytorch(model, inputs: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        result = model.eval()(torch.from_numpy(inputs))
    if isinstance(result, (tuple, list)):
        result = result[0]
    elif hasattr(result, "logits"):  # torchvision's GoogLeNet/Inception named tuples
        result = result.logits
    return result.detach().float().cpu().numpy()


def validate(
    onnx_path: Union[str, Path],
    model=None,
    inputs: Optional[np.ndarray] = None,
    *,
    n: int = 8,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    min_top1: Optional[float] = None,
    providers="cpu",
    runtimes: Optional[Sequence[str]] = None,
    strict: bool = False,
    seed: int = 0,
) -> ValidationReport:
    """Run ``model`` (PyTorch, optional) and the exported model on each of ``runtimes`` on the same inputs.

    ``runtimes``: names from :data:`poolswap.deploy.runtimes.RUNTIMES`; None runs every
    one available here and lists the others as skipped with the reason (``strict``
    makes a missing one an error, as naming it does). Without ``inputs``, ``n``
    standard-normal inputs shaped like the model's input (a symbolic batch becomes ``n``).
    """
    from ..export._onnx_file import read_onnx
    from ..export._restore import MISSING_FUNCTION_FIX, function_missing, nodes_inlined_by_a_tool
    from .node_check import check_softpool_nodes
    from .runtimes import RUNTIMES, available_runtimes, runner

    onnx_path = Path(onnx_path)
    onnx_model = read_onnx(onnx_path)  # a damaged or empty file: one line, before any runtime
    graph_input = onnx_model.graph.input[0]
    check_softpool_nodes(onnx_model)  # a node no runtime should run: one line naming it, whichever runtimes
    asked = list(RUNTIMES if runtimes is None else runtimes)
    usable, missing = available_runtimes(asked)
    if missing and (strict or runtimes is not None):
        name, reason = next(iter(missing.items()))
        raise PoolswapError(f"runtime {name}: {reason}")
    inlined = nodes_inlined_by_a_tool(onnx_model)
    if inlined:
        logger.warning("%s: a tool expanded its %d poolswap::SoftPool node(s) into standard ONNX ops (ONNX Runtime's "
                       "offline optimiser does without poolswap's library); it runs anywhere, but poolswap's library "
                       "no longer applies: register the library before optimising to keep the nodes",
                       onnx_path.name, inlined)
    if function_missing(onnx_model):
        # only poolswap's library runs the nodes; the other runtimes need the body a tool dropped
        reason = f"{onnx_path.name} has poolswap::SoftPool nodes but no SoftPool function (a tool dropped it); " \
                 + MISSING_FUNCTION_FIX
        logger.warning("%s", reason)
        if "ort-library" not in usable or model is None:  # nothing to compare the library with
            raise PoolswapError(reason)
        missing.update({name: "the SoftPool function is missing (a tool dropped it; poolswap.export.restore_function puts it back)" for name in usable if name != "ort-library"})
        usable = ["ort-library"]
    if inputs is None:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in graph_input.type.tensor_type.shape.dim]
        shape = [n if d <= 0 else d for d in dims]
        inputs = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    outputs: dict[str, np.ndarray] = {}
    report = ValidationReport(n_inputs=int(inputs.shape[0]), atol=atol, rtol=rtol)
    if model is not None:
        outputs["pytorch"] = _pytorch(model, inputs)
    else:
        report.skipped.append("pytorch: no checkpoint given")
    for name in usable:
        outputs[name] = runner(onnx_path, name, providers)(inputs)
    report.skipped += [f"{name}: {reason}" for name, reason in missing.items()]
    names = list(outputs)
    for other in names[1:]:
        report.pairs.append(compare_outputs(names[0], outputs[names[0]], other, outputs[other], atol, rtol, min_top1))
    return report
