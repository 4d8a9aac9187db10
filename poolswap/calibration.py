"""Zero-shot calibration: pick each SoftPool site's beta so the converted model matches its teacher.

No weight changes. On N cached batches, a coordinate search visits the sites in
module order and, for each, tries a log-spaced grid of temperatures (and the
current one), keeping the beta that minimises KL(teacher || student). The current
beta is always a candidate, so on the calibration batches the fit never gets worse.

Surgery (``inspect --data``, ``convert --min-agreement``) and fine-tuning both calibrate,
so this module sits below both (``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_device
from .errors import PoolswapError
from .ops import softpool_modules

__all__ = [
    "CalibrationResult", "DEFAULT_GRID", "TeacherOutputs", "calibrate", "calibrate_cached", "fit", "get_beta",
    "set_beta", "teacher_outputs",
]

logger = logging.getLogger(__name__)

DEFAULT_GRID: tuple[float, ...] = tuple(2.0**k for k in range(-2, 8))  # 0.25 ... 128


@dataclass
class CalibrationResult:
    """What calibration chose and how well the student matched the teacher before and after."""

    betas: dict[str, float] = field(default_factory=dict)
    agreement_before: float = 0.0
    agreement_after: float = 0.0
    kl_before: float = 0.0
    kl_after: float = 0.0
    samples: int = 0

    def summary(self) -> str:
        chosen = ", ".join(f"{k}={v:.3g}" for k, v in self.betas.items())
        return (f"calibrated {len(self.betas)} site(s) on {self.samples} images: agreement with the teacher "
                f"{self.agreement_before:.4f} -> {self.agreement_after:.4f}, KL {self.kl_before:.4g} -> "
                f"{self.kl_after:.4g}; betas {chosen}")


def get_beta(module: nn.Module):
    """A site's temperature: a float, or a tensor when it is learnt."""
    return module.beta


def set_beta(module: nn.Module, beta) -> None:
    """Set a site's temperature (a float, or a tensor matching a learnt ``log_beta``)."""
    if module.log_beta is not None:
        with torch.no_grad():
            if isinstance(beta, torch.Tensor):
                module.log_beta.copy_(beta.to(module.log_beta).log().expand_as(module.log_beta))
            else:
                module.log_beta.fill_(math.log(float(beta)))
    else:
        module.initial_beta = float(beta)


def _beta_float(beta) -> float:
    return float(beta.float().mean()) if isinstance(beta, torch.Tensor) else float(beta)


TeacherOutputs = list[tuple[torch.Tensor, torch.Tensor]]  # (images, the teacher's log-probabilities)


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, batches: Iterable, *, num_batches: Optional[int] = None,
                    device: Optional[torch.device] = None) -> TeacherOutputs:
    """The first ``num_batches`` batches of ``batches`` (images, or (images, labels)) on ``device``, each with
    the teacher's log-probabilities, computed once; the teacher runs in the mode it is in."""
    cached = []
    for i, batch in enumerate(batches):
        if num_batches is not None and i >= num_batches:
            break
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = images.to(device) if device is not None else images
        cached.append((images, F.log_softmax(teacher(images).float(), dim=1)))
    if not cached:
        raise PoolswapError("calibration got no batches: the data is empty")
    return cached


@torch.no_grad()
def fit(model: nn.Module, cached: TeacherOutputs) -> tuple[float, float]:
    """(mean KL(teacher || student), top-1 agreement) of ``model`` (in the mode it is in) over the cached batches."""
    kl_sum, agree, count = 0.0, 0, 0
    for images, teacher_logp in cached:
        logp = F.log_softmax(model(images).float(), dim=1)
        kl_sum += float(F.kl_div(logp, teacher_logp, reduction="sum", log_target=True))
        agree += int((logp.argmax(1) == teacher_logp.argmax(1)).sum())
        count += images.shape[0]
    return kl_sum / count, agree / count


def _check_grid(grid: Sequence[float]) -> None:
    if any(b <= 0 or not math.isfinite(b) for b in grid):
        raise PoolswapError("calibration betas must be finite and > 0")


@torch.no_grad()
def calibrate_cached(model: nn.Module, cached: TeacherOutputs, *, grid: Sequence[float] = DEFAULT_GRID,
                     rounds: int = 1) -> CalibrationResult:
    """:func:`calibrate` on teacher outputs already computed (:func:`teacher_outputs`); ``model`` in eval mode."""
    sites = list(softpool_modules(model).items())
    if not sites:
        raise PoolswapError("the model has no SoftPool layers to calibrate; convert it first")
    _check_grid(grid)
    samples = sum(images.shape[0] for images, _ in cached)
    kl_before, agreement_before = fit(model, cached)
    best_kl = kl_before
    for _ in range(rounds):
        for name, module in sites:
            best_beta = get_beta(module)
            for beta in grid:
                set_beta(module, beta)
                kl, _ = fit(model, cached)
                if kl < best_kl:
                    best_kl, best_beta = kl, beta
            set_beta(module, best_beta)
            logger.debug("calibrate %s: beta=%.4g KL=%.5g", name, _beta_float(best_beta), best_kl)
    kl_after, agreement_after = fit(model, cached)
    return CalibrationResult(
        betas={name: _beta_float(get_beta(m)) for name, m in sites},
        agreement_before=agreement_before,
        agreement_after=agreement_after,
        kl_before=kl_before,
        kl_after=kl_after,
        samples=samples,
    )


@torch.no_grad()
def calibrate(
    model: nn.Module,
    teacher: nn.Module,
    batches: Iterable,
    *,
    num_batches: Optional[int] = None,
    grid: Sequence[float] = DEFAULT_GRID,
    rounds: int = 1,
    device: Optional[torch.device] = None,
) -> CalibrationResult:
    """Choose every SoftPool site's beta on ``num_batches`` batches of ``batches``; weights stay as they are.

    ``batches`` yields images or (images, labels) tuples. Returns a
    :class:`CalibrationResult`; the model keeps the chosen betas and its
    train/eval mode.
    """
    if not softpool_modules(model):
        raise PoolswapError("the model has no SoftPool layers to calibrate; convert it first")
    _check_grid(grid)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = resolve_device(device)
    was_training, teacher_training = model.training, teacher.training
    model.eval()
    teacher.eval()
    try:
        cached = teacher_outputs(teacher, batches, num_batches=num_batches, device=device)
        return calibrate_cached(model, cached, grid=grid, rounds=rounds)
    finally:
        model.train(was_training)
        teacher.train(teacher_training)
