"""``ExportConfig`` and ``ValidateConfig``: the settings of ``poolswap export`` / ``validate`` and recipes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from ..options import OptionError, check_choice, check_fraction, check_int, check_number, option
from .defaults import BODIES, DEFAULT_BODY, DEFAULT_OPSET, MIN_OPSET, RUNTIMES

__all__ = ["ExportConfig", "ValidateConfig"]


def _max_opset() -> Optional[int]:
    try:
        import onnx
    except ImportError:
        return None
    return onnx.defs.onnx_opset_version()


@dataclass
class ExportConfig:
    """How a converted model is written as ONNX."""

    body: str = option(DEFAULT_BODY, "the function body plain ONNX runtimes run (the custom-op library replaces "
                                     "it): exact (per-window softmax, stable for any input) or fast (AvgPool ratio "
                                     "with a per-channel shift: NaN where a window lies more than ~80/beta below its "
                                     "channel's max)", choices=BODIES, group="output")
    opset: int = option(DEFAULT_OPSET, f"default-domain ONNX opset (>= {MIN_OPSET})", group="output")
    dynamic_batch: bool = option(True, "a symbolic batch dim", off_flag="--static", group="output")
    inline: bool = option(False, "standard ONNX operators only (the body inlined, static shapes): for runtimes that "
                                 "do not expand functions (OpenVINO, TensorRT); the default keeps poolswap::SoftPool "
                                 "nodes with the function, for ONNX Runtime with poolswap's library", group="output")

    def __post_init__(self) -> None:
        check_choice("body", self.body, BODIES)
        check_int("opset", self.opset, MIN_OPSET, _max_opset())

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`poolswap.export_onnx`."""
        return dataclasses.asdict(self)


@dataclass
class ValidateConfig:
    """How an exported model is compared with PyTorch and between runtimes."""

    n: int = option(8, "number of random standard-normal inputs (without image data)", group="inputs")
    seed: int = option(0, "seed of the random inputs", group="inputs")
    atol: float = option(1e-4, "absolute tolerance", group="tolerance")
    rtol: float = option(1e-4, "tolerance relative to the output's largest magnitude", group="tolerance")
    min_top1: Optional[float] = option(None, "also fail when top-1 agreement is below this", group="tolerance")
    runtimes: Optional[tuple[str, ...]] = option(
        None, f"runtimes to compare with PyTorch ({', '.join(RUNTIMES)}) (default: every one available here, the "
              "others listed as skipped)", flag="--runtime", metavar="RUNTIME", choices=RUNTIMES, group="runtime")
    providers: str = option("cpu", "ORT providers: auto, cpu, cuda or a comma-separated list", group="runtime")
    strict: bool = option(False, "fail when a runtime (the ORT library, openvino) is missing", group="runtime")

    def __post_init__(self) -> None:
        check_int("n", self.n)
        check_int("seed", self.seed, 0)
        check_number("atol", self.atol, allow_zero=True)
        check_number("rtol", self.rtol, allow_zero=True)
        if self.min_top1 is not None:
            check_fraction("min_top1", self.min_top1)
        for runtime in self.runtimes or ():
            check_choice("runtimes", runtime, RUNTIMES)
        if not isinstance(self.providers, str) or not self.providers.strip():
            raise OptionError("providers", f"must be auto, cpu, cuda or a comma-separated list, got {self.providers!r}")

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`poolswap.deploy.validate`."""
        values = dataclasses.asdict(self)
        if self.providers not in ("auto", "cpu", "cuda"):
            values["providers"] = [p.strip() for p in self.providers.split(",") if p.strip()]
        return values
